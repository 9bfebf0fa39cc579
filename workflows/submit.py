"""Run viglas flows on a cluster with jobflow-remote (Slurm, PBS or plain shell).

The flow is the same one ``viglas run`` executes locally
(:func:`viglas.workflows.flows.build_flow`); here it is stored in the jobflow-remote
queue database and a *runner* (``jf runner start``) submits each job to the
scheduler of the chosen worker when its inputs are ready. Outputs (small documents)
go to the project's MongoDB job store; MD trajectories stay as H5MD files in each
job's run directory on the cluster file system.

Per-job-kind settings come from the project file (``viglas hpc init`` writes a
commented one; :mod:`viglas.workflows.hpc_templates`): under
``metadata.viglas.<worker>.<kind>`` with kind ``md`` (melt-quench and production
MD) or ``analysis`` (everything else):

* ``resources`` — scheduler options merged over the worker's ``resources``
  (e.g. ``{gres: "gpu:1", cpus_per_task: 8, time: "12:00:00"}`` for an ML potential),
* ``exec_config`` — a named execution config of the project (modules, exports),
* ``segment_walltime_s`` — MD jobs only: after this many seconds of wall time the
  MD job stops and *replaces itself* with a continuation job (jobflow
  ``Response(replace=...)``) that runs in a new allocation, in the same work
  directory, where :func:`viglas.md.run_md` resumes from its checkpoint.
  Default: 90 % of the time limit minus 2 minutes, when a time limit is set.

Public API::

    submit_config(config, worker="slurm", project=None) -> Submission
    submit_flow(flow, worker="slurm", project=None) -> Submission
    flow_status(flow_id, project=None) -> dict
    wait_for_flow(flow_id, project=None, timeout_s=3600.0) -> dict
    remote_results(project, flow_id) -> dict        # results.json-shaped
    probe_flow() -> jobflow.Flow                    # tiny jobs to test a worker

jobflow-remote is an optional dependency (``pip install 'viglas[hpc]'``); it is
imported inside the functions.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jobflow import Flow, Job, Response, job

from viglas.md import walltime
from viglas.errors import MissingDependencyError, SubmitError
from viglas.files import atomic_write_text
from viglas.md.walltime import WallTimeUp  # re-exported: the stop segments catch

__all__ = [
    "Submission", "RoleSettings", "submit_config", "submit_flow", "configure_flow",
    "role_settings", "job_role", "flow_status", "wait_for_flow", "remote_results",
    "probe_flow", "probe_resume", "segmented_call", "SegmentTimeUp", "WallTimeUp", "MD_JOB_PATTERN",
    "MD_STAGES", "MAX_STALLED_SEGMENTS",
]

#: Job names matching this (case-insensitive) are MD jobs (kind ``md``) when a job has
#: no ``viglas_stage`` metadata; the rest are ``analysis`` jobs.
MD_JOB_PATTERN = r"melt|quench|production|(^|[\s_-])md([\s_-]|$)|equilibrat"
#: ``job.metadata["viglas_stage"]`` values (set by :mod:`viglas.workflows.flows`) of MD jobs.
MD_STAGES = ("melt_quench", "production")

_TERMINAL_JOB = {"COMPLETED", "FAILED", "REMOTE_ERROR", "CANCELLED", "STOPPED", "USER_STOPPED"}
_BAD_JOB = {"FAILED", "REMOTE_ERROR", "CANCELLED", "STOPPED", "USER_STOPPED"}


def _jfr():
    try:
        import jobflow_remote
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("jobflow-remote is not installed", field="jobflow_remote",
                                     hint="pip install 'viglas[hpc]'") from exc
    return jobflow_remote


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class RoleSettings:
    """What one kind of job asks of one worker (see module docstring)."""

    resources: dict[str, Any] | None = None
    exec_config: str | None = None
    segment_walltime_s: float | None = None


def _time_limit_s(resources: dict[str, Any] | None) -> float | None:
    from viglas.workflows.hpc_templates import parse_walltime_s

    if not resources:
        return None
    for key in ("time", "walltime", "time_limit"):
        if resources.get(key) is not None:
            return parse_walltime_s(resources[key])
    return None


def role_settings(project: str | None, worker: str) -> dict[str, RoleSettings]:
    """Per-kind settings (``md``, ``analysis``) of ``worker`` in a jobflow-remote project.

    Reads ``metadata.viglas.<worker>`` of the project file; resources are merged over
    the worker's own ``resources``. ``project=None`` means jobflow-remote's current
    project (``$JFREMOTE_PROJECT`` or the only one in the projects folder).
    """
    jfr = _jfr()
    try:
        cm = jfr.ConfigManager()
        proj = cm.get_project(project)
    except Exception as exc:  # jobflow-remote raises its own ConfigError family
        raise SubmitError(f"cannot load the jobflow-remote project: {exc}", field="project",
                          value=project, hint="write one with 'viglas hpc init'") from exc
    if worker not in proj.workers:
        raise SubmitError("unknown worker", field="worker", value=worker,
                          allowed=", ".join(proj.workers) or "(no workers in the project)")
    base = dict(proj.workers[worker].resources or {})
    meta = ((proj.metadata or {}).get("viglas") or {}).get(worker) or {}
    out: dict[str, RoleSettings] = {}
    for kind in ("md", "analysis"):
        spec = meta.get(kind) or {}
        unknown = set(spec) - {"resources", "exec_config", "segment_walltime_s"}
        if unknown:
            raise SubmitError("unknown key in the project's viglas metadata",
                              field=f"metadata.viglas.{worker}.{kind}", value=sorted(unknown),
                              allowed="resources, exec_config, segment_walltime_s")
        exec_config = spec.get("exec_config")
        if exec_config is not None and exec_config not in (proj.exec_config or {}):
            raise SubmitError("unknown exec_config", field=f"metadata.viglas.{worker}.{kind}"
                              ".exec_config", value=exec_config,
                              allowed=", ".join(proj.exec_config or {}) or "(none defined)")
        resources = {**base, **(spec.get("resources") or {})}
        seg = spec.get("segment_walltime_s")
        if seg is None and kind == "md":
            limit = _time_limit_s(resources)
            if limit:
                seg = max(60.0, 0.9 * limit - 120.0)
        if seg is not None and float(seg) <= 0:
            raise SubmitError("must be > 0 seconds", field=f"metadata.viglas.{worker}.{kind}"
                              ".segment_walltime_s", value=seg)
        out[kind] = RoleSettings(resources=resources or None, exec_config=exec_config,
                                 segment_walltime_s=float(seg) if seg is not None else None)
    return out


def job_role(j: Job) -> str:
    """``"md"`` for melt-quench/production MD jobs, else ``"analysis"``.

    Decided by ``job.metadata["viglas_role"]`` if set, else by the stage the viglas
    flow builder records (``viglas_stage`` in :data:`MD_STAGES`), else by matching the
    job name against :data:`MD_JOB_PATTERN`.
    """
    meta = j.metadata or {}
    role = meta.get("viglas_role")
    if role in ("md", "analysis"):
        return role
    if meta.get("viglas_stage"):
        return "md" if meta["viglas_stage"] in MD_STAGES else "analysis"
    return "md" if re.search(MD_JOB_PATTERN, j.name or "", flags=re.I) else "analysis"


# --------------------------------------------------------------------------- segments
class SegmentTimeUp(WallTimeUp):
    """Raised from ``SIGALRM`` inside a job that did not stop by itself within the
    grace period after its segment's wall-time budget was spent (see
    :func:`segmented_call`). A ``BaseException``, like :class:`WallTimeUp`.
    """


def _hard_stop_grace_s(budget_s: float) -> float:
    """Seconds a job gets, after the stop request, to checkpoint and stop by itself."""
    return min(60.0, max(1.0, 0.05 * float(budget_s)))


def _time_up_in(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a wall-time stop. A signal that arrives
    while C or numba code runs can surface wrapped, e.g. as a ``SystemError`` whose
    ``__cause__`` is the :class:`SegmentTimeUp` the handler raised."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, WallTimeUp):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _callable_path(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


#: A segment that writes nothing is retried this many times (a slow start on a busy
#: node) before the job fails: a new allocation would not get further.
MAX_STALLED_SEGMENTS = 2


@job
def segmented_call(function: Callable, args: list, kwargs: dict, budget_s: float,
                   segment: int = 0, workdir: str | None = None, started_utc: float | None = None,
                   stalled: int = 0):
    """Run ``function(*args, **kwargs)`` for at most ``budget_s`` seconds of wall time.

    The call runs with ``workdir`` as the current directory (the run directory of the
    first segment), so a resumable MD function that writes relative paths or uses the
    current directory finds its checkpoint again. When the budget is spent, a
    ``SIGALRM`` handler asks the call to stop (:func:`viglas.md.walltime.request_stop`):
    :func:`~viglas.md.run_md` then finishes its current step, writes a
    checkpoint there and raises :class:`~viglas.md.walltime.WallTimeUp`. A function that
    does not look at the request is interrupted (:class:`SegmentTimeUp`, raised
    between Python statements) after a grace period of 5 % of the budget (1 to 60 s).
    Either way this job is then replaced by segment ``segment + 1`` with the same
    arguments: jobflow-remote submits it as a new batch job, and the MD resumes from
    the last checkpoint. Its output is then the output of the original job, so later
    jobs see no difference. Only for functions that resume when called again in the
    same directory (:func:`viglas.md.run_md` and the viglas MD makers).
    """
    if budget_s <= 0:
        raise SubmitError("segment wall time must be > 0 s", field="segment_walltime_s",
                          value=budget_s)
    here = os.getcwd()
    workdir = workdir or here
    started_utc = started_utc or time.time()
    print(f"viglas: MD segment {segment} of {_callable_path(function)} in {workdir}, "
          f"budget {budget_s:.0f} s", flush=True)

    grace = _hard_stop_grace_s(budget_s)

    def _alarm(signum, frame):
        if not walltime.STOP:  # first: ask the MD loop to checkpoint and stop
            walltime.request_stop()
            signal.setitimer(signal.ITIMER_REAL, grace)
            return
        raise SegmentTimeUp(f"segment {segment} used its {budget_s:.0f} s and did not stop "
                            f"by itself within {grace:.0f} s more")

    t_start = time.time()
    walltime.clear()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(budget_s))
    try:
        os.chdir(workdir)
        try:
            result = _unwrap(function)(*args, **kwargs)
        except BaseException as exc:
            if not _time_up_in(exc):
                raise
            raise WallTimeUp(str(exc)) from exc
    except WallTimeUp:
        signal.setitimer(signal.ITIMER_REAL, 0)
        stalled = 0 if _wrote_since(Path(workdir), t_start) else stalled + 1
        if stalled > MAX_STALLED_SEGMENTS:
            raise SubmitError(f"{stalled} MD segments in a row wrote no checkpoint or output "
                              f"in {budget_s:.0f} s each, so a new segment would not get "
                              "further", field="segment_walltime_s", value=budget_s,
                              allowed="longer than one checkpoint interval plus start-up") \
                from None
        from jobflow import CURRENT_JOB

        nxt = segmented_call(function, args, kwargs, budget_s, segment=segment + 1,
                             workdir=workdir, started_utc=started_utc, stalled=stalled)
        current = CURRENT_JOB.job
        if current is not None:
            base = re.sub(r" \[segment \d+\]$", "", current.name or "md")
            nxt.name = f"{base} [segment {segment + 1}]"
            nxt._kwargs = dict(current._kwargs)  # additional stores (data=...)
            nxt.output_schema = current.output_schema
        print(f"viglas: wall-time budget reached; continuing as segment {segment + 1}",
              flush=True)
        return Response(replace=nxt, stored_data={"segment": segment, "workdir": workdir,
                                                  "interrupted": True})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        walltime.clear()
        os.chdir(here)
    if isinstance(result, Response):
        result.stored_data = {**(result.stored_data or {}), "segments": segment + 1,
                              "workdir": workdir}
        return result
    return Response(output=result, stored_data={"segments": segment + 1, "workdir": workdir,
                                                "wall_s": time.time() - started_utc})


def _unwrap(function: Callable) -> Callable:
    """The plain callable behind a ``@job``-decorated function or Maker method (as
    ``jobflow.Job.run`` does it): calling the decorated one would only build a Job."""
    import types

    fn = getattr(function, "original", function)
    bound = getattr(function, "__self__", None)
    if bound is not None and not isinstance(bound, types.ModuleType):
        fn = types.MethodType(fn, bound)
    return fn


def _wrote_since(folder: Path, t: float, max_files: int = 20000) -> bool:
    """Whether any file under ``folder`` was modified at or after time ``t``."""
    for n, p in enumerate(folder.rglob("*")):
        if n >= max_files:
            return True  # too many files to check: assume progress
        try:
            if p.is_file() and p.stat().st_mtime >= t:
                return True
        except OSError:
            continue
    return False


def _segment(j: Job, budget_s: float) -> None:
    """Turn MD job ``j`` in place into a :func:`segmented_call` of its function."""
    if getattr(j.function, "original", j.function) is segmented_call.original:  # done
        return
    function, args, kwargs = j.function, list(j.function_args), dict(j.function_kwargs)
    j.function = segmented_call.original
    j.function_args = (function, args, kwargs, float(budget_s))
    j.function_kwargs = {}
    j.metadata = {**(j.metadata or {}), "viglas_segment_walltime_s": float(budget_s)}


# --------------------------------------------------------------------------- configure
def configure_flow(flow: Flow | Job, settings: dict[str, RoleSettings], *,
                   segment_md: bool = True) -> Flow | Job:
    """Set jobflow-remote resources/exec config per job kind, in place.

    MD jobs get ``settings["md"]`` and, when it has ``segment_walltime_s`` and
    ``segment_md``, are wrapped in :func:`segmented_call`; all other jobs get
    ``settings["analysis"]``. Returns the same object.
    """
    jfr = _jfr()
    jobs = [flow] if isinstance(flow, Job) else [j for j, _ in flow.iterflow()]
    for j in jobs:
        kind = job_role(j)
        s = settings.get(kind) or RoleSettings()
        if kind == "md" and segment_md and s.segment_walltime_s:
            _segment(j, s.segment_walltime_s)
        j.metadata = {**(j.metadata or {}), "viglas_role": kind}
        jfr.set_run_config(j, resources=dict(s.resources) if s.resources else None,
                           exec_config=s.exec_config)
    return flow


# --------------------------------------------------------------------------- submit
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


def _project_name(project: str | None) -> str:
    jfr = _jfr()
    try:
        return jfr.ConfigManager().get_project(project).name
    except Exception as exc:
        raise SubmitError(f"cannot load the jobflow-remote project: {exc}", field="project",
                          value=project, hint="write one with 'viglas hpc init'") from exc


def submit_flow(flow: Flow | Job, *, worker: str, project: str | None = None,
                priority: int = 0, segment_md: bool = True, config: Any = None,
                md_segment_s: float | None = None) -> Submission:
    """Configure ``flow`` per job kind for ``worker`` and add it to the queue.

    ``config`` (the viglas config the flow was built from; path, dict or ``Config``)
    is stored in the flow's metadata so :func:`remote_results` can assemble
    ``results.json``. Nothing runs until a runner is active (``jf runner start``).
    Returns the :class:`Submission` (flow id = the jobflow flow uuid, accepted by
    ``jf flow info``). ``md_segment_s`` overrides the project's
    ``segment_walltime_s`` of MD jobs for this flow.
    """
    import dataclasses

    jfr = _jfr()
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
    name = _project_name(project)
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
    jc = _controller(project)
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
    flow's metadata so :func:`remote_results` can assemble ``results.json``.
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


# --------------------------------------------------------------------------- follow
def _controller(project: str | None):
    jfr = _jfr()
    try:
        return jfr.JobController.from_project_name(project)
    except Exception as exc:
        raise SubmitError(f"cannot open the jobflow-remote project: {exc}", field="project",
                          value=project, hint="write one with 'viglas hpc init'") from exc


def _state(x: Any) -> str:
    return getattr(x, "value", str(x)) if x is not None else "?"


def flow_status(flow_id: str, project: str | None = None) -> dict[str, Any]:
    """State of a submitted flow and of each of its jobs.

    Returns ``{"flow_id", "name", "state", "counts": {state: n}, "n_failed",
    "finished", "jobs": [{"db_id", "uuid", "index", "name", "kind", "state", "worker",
    "run_dir", "error", "process_id", "parents", ...}]}``; ``finished`` is true when no
    job can run any more; the error is the traceback text of a failed job (as ``jf job info``
    shows it). ``state`` is jobflow-remote's flow state: it is ``COMPLETED`` when the
    final jobs completed even if an intermediate job failed (viglas summaries accept
    missing runs), so check ``n_failed`` too.
    """
    jc = _controller(project)
    try:
        flows = jc.get_flows_info(flow_ids=[flow_id])
        if not flows:
            raise SubmitError("no such flow in the queue database", field="flow_id",
                              value=flow_id, hint="list flows with 'jf flow list'")
        info = flows[0]
        jobs = jc.get_jobs_info(flow_ids=[flow_id])
        allow = {(d["uuid"], d["index"]): ((d.get("job") or {}).get("config") or {})
                 .get("on_missing_references", "error") != "error"
                 for d in jc.jobs.find({"uuid": {"$in": [j.uuid for j in jobs]}},
                                       projection=["uuid", "index",
                                                   "job.config.on_missing_references"])}
    finally:
        jc.close()
    rows = []
    counts: dict[str, int] = {}
    for ji in sorted(jobs, key=lambda j: (j.created_on, j.index)):
        st = _state(ji.state)
        counts[st] = counts.get(st, 0) + 1
        rows.append({
            "db_id": ji.db_id, "uuid": ji.uuid, "index": ji.index, "name": ji.name,
            "kind": (ji.metadata or {}).get("viglas_role"), "state": st,
            "worker": ji.worker, "run_dir": ji.run_dir, "error": ji.error,
            "process_id": getattr(ji.remote, "process_id", None),
            "parents": list(ji.parents or []), "allow_failed_parents":
                allow.get((ji.uuid, ji.index), False),
        })
    n_bad = sum(n for st, n in counts.items() if st in _BAD_JOB)
    return {"flow_id": flow_id, "name": info.name, "state": _state(info.state),
            "counts": counts, "n_failed": n_bad, "finished": not _can_advance(rows),
            "jobs": rows}


def _can_advance(rows: list[dict[str, Any]]) -> bool:
    """Whether any job of the flow may still run or change state.

    A WAITING job is stuck when a parent failed (and the job does not accept missing
    inputs) or is itself stuck; PAUSED jobs wait for the user. Everything else that
    is not finished (READY, SUBMITTED, RUNNING, ...) is still on its way.
    """
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["uuid"] not in latest or r["index"] > latest[r["uuid"]]["index"]:
            latest[r["uuid"]] = r
    stuck: set[str] = set()
    changed = True
    while changed:
        changed = False
        for u, r in latest.items():
            if u in stuck or r["state"] != "WAITING":
                continue
            for p in r["parents"]:
                ps = latest[p]["state"] if p in latest else "COMPLETED"
                ok_failed = r["allow_failed_parents"] and ps in ("FAILED", "USER_STOPPED")
                if p in stuck or (ps in _BAD_JOB and not ok_failed) or ps == "PAUSED":
                    stuck.add(u)
                    changed = True
                    break
    return any(r["state"] not in _TERMINAL_JOB | {"PAUSED"} and u not in stuck
               for u, r in latest.items())


def wait_for_flow(flow_id: str, project: str | None = None, *, timeout_s: float = 3600.0,
                  poll_s: float = 3.0, progress: Callable[[dict], None] | None = None
                  ) -> dict[str, Any]:
    """Poll :func:`flow_status` until no job can advance any more (all jobs finished,
    or the remaining ones wait on failed parents). Raises :class:`SubmitError` after
    ``timeout_s`` seconds. Returns the last status."""
    t0 = time.monotonic()
    finished_at = None
    while True:
        st = flow_status(flow_id, project)
        if progress:
            progress(st)
        if st["finished"]:
            # jobflow-remote updates the flow's own state just after the last job's;
            # wait for it (a flow with a REMOTE_ERROR job stays RUNNING: give up then)
            finished_at = finished_at or time.monotonic()
            if st["state"] in ("COMPLETED", "FAILED", "STOPPED", "PAUSED") or \
                    time.monotonic() - finished_at > max(15.0, 5 * poll_s):
                return st
        else:
            finished_at = None
        if time.monotonic() - t0 > timeout_s:
            raise SubmitError(f"flow not finished after {timeout_s:.0f} s "
                              f"({st['counts']})", field="flow_id", value=flow_id,
                              hint="is the runner running? 'jf runner status'")
        time.sleep(poll_s)


def _last_line(text: str | None) -> str | None:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else None


def remote_results(project: str | None, flow_id: str) -> dict[str, Any]:
    """Read a submitted flow's outputs back from the project's job store.

    Returns the ``results.json`` dict (``schema: viglas-results/1``) assembled from the
    job outputs by the same code ``viglas run`` uses
    (:func:`viglas.workflows.results.collect_results`), plus a ``"remote"`` section:
    project, flow id, flow state, and one row per job (db_id, name, kind, state,
    worker, run_dir, error). Works on partial flows: failed jobs are listed under
    ``status.failed`` (one-line error) and ``remote.jobs`` (full traceback); the
    compositions they belong to have ``complete: false`` and ``null`` numbers where
    nothing was computed. Trajectory paths are absolute paths on the cluster.

    Flows not submitted from a viglas config (e.g. :func:`probe_flow`) give
    ``{"schema": ..., "outputs": {job uuid: output}, "remote": ...}``.
    """
    status = flow_status(flow_id, project)
    jc = _controller(project)
    try:
        fdoc = jc.flows.find_one({"uuid": flow_id}, projection=["metadata"]) or {}
        uuids = sorted({row["uuid"] for row in status["jobs"]})
        docs = list(jc.jobstore.docs_store.query({"uuid": {"$in": uuids}}))
    finally:
        jc.close()
    # one document per job: the last index (a segmented MD job is stored once per segment)
    latest: dict[str, dict[str, Any]] = {}
    for d in docs:
        d.pop("_id", None)
        if d["uuid"] not in latest or d.get("index", 1) > latest[d["uuid"]].get("index", 1):
            latest[d["uuid"]] = d
    failed = {row["uuid"]: _last_line(row["error"]) or row["state"]
              for row in status["jobs"] if row["state"] in _BAD_JOB}
    cfg = (fdoc.get("metadata") or {}).get("viglas_config")
    if cfg is not None:
        results = _collect(cfg, list(latest.values()), failed, uuids)
    else:
        from viglas.analysis.export import RESULTS_SCHEMA

        results = {"schema": RESULTS_SCHEMA,
                   "outputs": {u: _json_safe(d.get("output")) for u, d in latest.items()},
                   "status": {"failed": [{"uuid": u, "error": e} for u, e in failed.items()]}}
    results["remote"] = {
        "project": status.get("project") or _project_name(project), "flow_id": flow_id,
        "flow_name": status["name"], "state": status["state"], "counts": status["counts"],
        "jobs": [{k: row[k] for k in ("db_id", "uuid", "name", "kind", "state", "worker",
                                      "run_dir", "error")} for row in status["jobs"]],
    }
    return _json_safe(results)


def _collect(cfg: dict[str, Any], docs: list[dict[str, Any]], failed: dict[str, str],
             expected: list[str]) -> dict[str, Any]:
    """results.json from store documents, through ``viglas.workflows.results.collect_results``
    (the code ``viglas run`` uses; paths stay as stored on the cluster)."""
    from viglas.config import Config
    from viglas.workflows.results import collect_results

    config = Config.model_validate(cfg)
    return collect_results(None, config=config, failed=failed, expected=expected,
                           docs=_json_safe(docs))


def _json_safe(obj: Any) -> Any:
    """Plain JSON types: datetimes as ISO strings, NaN/inf as None, tuples as lists,
    anything else unknown as its string."""
    from viglas.serialize import clean

    return clean(obj, default=str)


# --------------------------------------------------------------------------- probe
@job
def probe_host(sleep_s: float = 0.0) -> dict[str, Any]:
    """Where and how a job runs: host, Python, viglas version, scheduler ids, GPUs."""
    import viglas

    time.sleep(max(0.0, float(sleep_s)))
    env = os.environ
    gpus = env.get("CUDA_VISIBLE_DEVICES") or env.get("SLURM_JOB_GPUS")
    return {
        "host": socket.gethostname(), "platform": platform.platform(),
        "python": sys.version.split()[0], "executable": sys.executable,
        "viglas_version": viglas.__version__, "cwd": os.getcwd(),
        "slurm_job_id": env.get("SLURM_JOB_ID"), "pbs_job_id": env.get("PBS_JOBID"),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "omp_num_threads": env.get("OMP_NUM_THREADS"), "gpus": gpus,
    }


@job
def probe_check(first: dict[str, Any]) -> dict[str, Any]:
    """Second probe job: proves outputs of one job reach the next through the store."""
    return {"first_host": first["host"], "first_slurm_job_id": first["slurm_job_id"],
            "same_python": first["executable"] == sys.executable,
            "second_slurm_job_id": os.environ.get("SLURM_JOB_ID"), "ok": True}


@job
def probe_resume(n_steps: int = 6, step_s: float = 1.0) -> dict[str, Any]:
    """A resumable stand-in for MD: ``n_steps`` steps of ``step_s`` s (sleeping), with a
    checkpoint (``probe_resume.json`` in the current directory) after each step.

    Run as an ``md`` job with a short ``segment_walltime_s`` it shows whether a
    continuation job in a new allocation (maybe on another node) finds the
    checkpoint: the output lists where each segment started, on which host and in
    which scheduler job.
    """
    import json

    ck = Path("probe_resume.json")
    state = json.loads(ck.read_text()) if ck.exists() else {"step": 0, "segments": []}
    state["segments"].append({"start_step": state["step"], "host": socket.gethostname(),
                              "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                              "pbs_job_id": os.environ.get("PBS_JOBID")})
    while state["step"] < n_steps:
        time.sleep(float(step_s))
        state["step"] += 1
        atomic_write_text(ck, json.dumps(state))
        if walltime.STOP and state["step"] < n_steps:  # as run_md: stop at a checkpoint
            raise walltime.WallTimeUp(f"stopped at step {state['step']}")
    ck.write_text(json.dumps(state))
    return {"steps": state["step"], "segments": state["segments"], "workdir": os.getcwd()}


def probe_flow(sleep_s: float = 0.0, resume_steps: int = 0, resume_step_s: float = 1.0) -> Flow:
    """Tiny jobs to test a worker: host info, then a job reading its output; with
    ``resume_steps > 0`` also :func:`probe_resume` as an ``md`` job (segmented when
    the submission sets a segment wall time)."""
    a = probe_host(sleep_s)
    a.name = "viglas probe: host"
    b = probe_check(a.output)
    b.name = "viglas probe: check"
    jobs = [a, b]
    if resume_steps > 0:
        c = probe_resume(int(resume_steps), float(resume_step_s))
        c.name = "viglas probe: resume"
        c.metadata = {"viglas_role": "md"}
        jobs.append(c)
    return Flow(jobs, name="viglas probe")
