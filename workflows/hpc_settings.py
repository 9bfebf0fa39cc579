"""Which jobflow-remote project and worker settings an HPC submission uses.

Per-job-kind settings come from the project file (``viglas hpc init`` writes a
commented one; :mod:`viglas.workflows.hpc_templates`): under
``metadata.viglas.<worker>.<kind>`` with kind ``md`` (melt-quench and production
MD) or ``analysis`` (everything else):

* ``resources`` — scheduler options merged over the worker's ``resources``
  (e.g. ``{gres: "gpu:1", cpus_per_task: 8, time: "12:00:00"}`` for an ML potential),
* ``exec_config`` — a named execution config of the project (modules, exports),
* ``segment_walltime_s`` — MD jobs only: after this many seconds of wall time the
  MD job stops and *replaces itself* with a continuation job
  (:mod:`viglas.workflows.hpc_segments`). Default: 90 % of the time limit minus
  2 minutes, when a time limit is set.

Also the access to jobflow-remote itself (an optional dependency, imported inside
the functions): :func:`require_jobflow_remote`, :func:`project_name`,
:func:`job_controller`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jobflow import Job

from viglas.errors import MissingDependencyError, SubmitError

__all__ = ["RoleSettings", "role_settings", "job_role", "MD_JOB_PATTERN", "MD_STAGES",
           "require_jobflow_remote", "project_name", "job_controller"]

#: Job names matching this (case-insensitive) are MD jobs (kind ``md``) when a job has
#: no ``viglas_stage`` metadata; the rest are ``analysis`` jobs.
MD_JOB_PATTERN = r"melt|quench|production|(^|[\s_-])md([\s_-]|$)|equilibrat"
#: ``job.metadata["viglas_stage"]`` values (set by :mod:`viglas.workflows.flows`) of MD jobs.
MD_STAGES = ("melt_quench", "production")


def require_jobflow_remote():
    """The ``jobflow_remote`` module, or a :class:`MissingDependencyError` naming the
    install command (it is an optional dependency)."""
    try:
        import jobflow_remote
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("jobflow-remote is not installed", field="jobflow_remote",
                                     hint="pip install 'viglas[hpc]'") from exc
    return jobflow_remote


def project_name(project: str | None) -> str:
    """The name of jobflow-remote project ``project`` (``None``: the current one)."""
    jfr = require_jobflow_remote()
    try:
        return jfr.ConfigManager().get_project(project).name
    except Exception as exc:
        raise SubmitError(f"cannot load the jobflow-remote project: {exc}", field="project",
                          value=project, hint="write one with 'viglas hpc init'") from exc


def job_controller(project: str | None):
    """A jobflow-remote ``JobController`` of ``project`` (close it after use)."""
    jfr = require_jobflow_remote()
    try:
        return jfr.JobController.from_project_name(project)
    except Exception as exc:
        raise SubmitError(f"cannot open the jobflow-remote project: {exc}", field="project",
                          value=project, hint="write one with 'viglas hpc init'") from exc


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
    jfr = require_jobflow_remote()
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
