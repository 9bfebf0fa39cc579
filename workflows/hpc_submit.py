"""Submit viglas flows to a jobflow-remote queue (Slurm, PBS or plain shell).

The flow is the same one ``viglas run`` executes locally
(:func:`viglas.workflows.flows.build_flow`); here it is stored in the jobflow-remote
queue database and a *runner* (``jf runner start``) submits each job to the
scheduler of the chosen worker when its inputs are ready. Each job gets the
settings of its kind (:mod:`viglas.workflows.hpc_settings`); MD jobs with a segment
wall time are cut into segments (:mod:`viglas.workflows.hpc_segments`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import Flow, Job

from viglas.errors import SubmitError
from viglas.workflows.hpc_segments import segment_job
from viglas.workflows.hpc_settings import (RoleSettings, job_controller, job_role,
                                           project_name, require_jobflow_remote,
                                           role_settings)

__all__ = ["Submission", "submit_config", "submit_flow", "configure_flow"]


def configure_flow(flow: Flow | Job, settings: dict[str, RoleSettings], *,
                   segment_md: bool = True) -> Flow | Job:
    """Set jobflow-remote resources/exec config per job kind, in place.

    MD jobs get ``settings["md"]`` and, when it has ``segment_walltime_s`` and
    ``segment_md``, are wrapped in
    :func:`~viglas.workflows.hpc_segments.segmented_call`; all other jobs get
    ``settings["analysis"]``. Returns the same object.
    """
    jfr = require_jobflow_remote()
    jobs = [flow] if isinstance(flow, Job) else [j for j, _ in flow.iterflow()]
    for j in jobs:
        kind = job_role(j)
        s = settings.get(kind) or RoleSettings()
        if kind == "md" and segment_md and s.segment_walltime_s:
            segment_job(j, s.segment_walltime_s)
        j.metadata = {**(j.metadata or {}), "viglas_role": kind}
        jfr.set_run_config(j, resources=dict(s.resources) if s.resources else None,
                           exec_config=s.exec_config)
    return flow


@dataclass
class Submission:
    """A flow stored in the jobflow-remote queue."""

    flow_id: str
    project: str
    worker: str
    db_ids: list[str]
    n_jobs: int
    name: str = ""
    kinds: dict[str, int] = field(default_factory=dict)

    def follow_commands(self) -> list[str]:
        """The shell commands to follow this flow."""
        p = f" -p {self.project}"
        return [
            f"jf{p} runner status            # is the runner running? (start: jf{p} runner start --single)",
            f"jf{p} flow info {self.flow_id}",
            f"jf{p} job list -fid {self.flow_id}",
            f"jf{p} job info <DB_ID>         # state, run_dir, error of one job",
            f"viglas hpc status {self.flow_id} --project {self.project}",
            f"viglas hpc results {self.flow_id} --project {self.project} -o results.json",
        ]




def submit_flow(flow: Flow | Job, *, worker: str, project: str | None = None,
                priority: int = 0, segment_md: bool = True, config: Any = None,
                md_segment_s: float | None = None) -> Submission:
    """Configure ``flow`` per job kind for ``worker`` and add it to the queue.

    ``config`` (the viglas config the flow was built from; path, dict or ``Config``)
    is stored in the flow's metadata so
    :func:`~viglas.workflows.hpc_status.remote_results` can assemble
    ``results.json``. Nothing runs until a runner is active (``jf runner start``).
    Returns the :class:`Submission` (flow id = the jobflow flow uuid, accepted by
    ``jf flow info``). ``md_segment_s`` overrides the project's
    ``segment_walltime_s`` of MD jobs for this flow.
    """
    import dataclasses

    jfr = require_jobflow_remote()
    settings = role_settings(project, worker)
    if md_segment_s is not None:
        if md_segment_s <= 0:
            raise SubmitError("must be > 0 seconds", field="md_segment_s", value=md_segment_s)
        settings["md"] = dataclasses.replace(settings["md"], segment_walltime_s=float(md_segment_s))
    if isinstance(flow, Job):
        flow = Flow([flow], name=flow.name)
    if config is not None:
        flow.metadata = {**(flow.metadata or {}), "viglas_config": _as_config(config).to_dict(),
                         "viglas_worker": worker}
    configure_flow(flow, settings, segment_md=segment_md)
    kinds: dict[str, int] = {}
    for j, _ in flow.iterflow():
        kinds[j.metadata["viglas_role"]] = kinds.get(j.metadata["viglas_role"], 0) + 1
    name = project_name(project)
    _check_not_queued(flow, name)
    try:
        db_ids = jfr.submit_flow(flow, worker=worker, project=name, priority=priority)
    except SubmitError:
        raise
    except Exception as exc:
        raise SubmitError(f"jobflow-remote refused the flow: {exc}", field="worker",
                          value=worker) from exc
    return Submission(flow_id=flow.uuid, project=name, worker=worker, db_ids=list(db_ids),
                      n_jobs=len(db_ids), name=flow.name, kinds=kinds)


def _check_not_queued(flow: Flow, project: str) -> None:
    """Refuse a flow whose jobs are already in the queue.

    viglas job ids are deterministic (same config and seed -> same ids), and
    jobflow-remote cannot hold two jobs with one id.
    """
    uuids = [j.uuid for j, _ in flow.iterflow()]
    jc = job_controller(project)
    try:
        doc = jc.jobs.find_one({"uuid": {"$in": uuids}},
                               projection=["uuid", "db_id", "job.name"])
        if doc is None:
            return
        owner = jc.flows.find_one({"jobs": doc["uuid"]}, projection=["uuid"])
    finally:
        jc.close()
    fid = owner["uuid"] if owner else "?"
    raise SubmitError("this flow is already in the queue (same config and seed give the "
                      "same job ids)", field="config", value=f"job {doc['db_id']} "
                      f"'{(doc.get('job') or {}).get('name', '?')}' of flow {fid}",
                      hint=f"follow it with 'viglas hpc status {fid}', retry failed jobs with "
                           "'jf job retry', or change 'seed'/'name' for a new run")


def submit_config(config: Any, *, worker: str, project: str | None = None,
                  priority: int = 0, md_segment_s: float | None = None,
                  allow_import: bool = False) -> Submission:
    """Build the flow of a viglas config (path, dict or ``Config``) and submit it.

    The flow is exactly the one ``viglas run`` runs
    (:func:`viglas.workflows.flows.build_flow`); the validated config is kept in the
    flow's metadata so :func:`~viglas.workflows.hpc_status.remote_results` can assemble
    ``results.json``.
    ``allow_import`` lets the MD jobs import a ``package.module:factory`` calculator
    (refused otherwise: the config would be code run on the cluster).
    """
    from viglas.workflows.flows import build_flow

    config = _as_config(config)
    flow = build_flow(config, allow_import=allow_import)
    return submit_flow(flow, worker=worker, project=project, priority=priority, config=config,
                       md_segment_s=md_segment_s)


def _as_config(config: Any):
    from viglas.config import Config, load_config, parse_config

    if isinstance(config, Config):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config)
    if isinstance(config, dict):
        return parse_config(config)
    raise SubmitError("not a viglas config", field="config", value=type(config).__name__,
                      allowed="a YAML path, a dict or a viglas.config.Config")
