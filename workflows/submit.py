"""Run viglas flows on a cluster with jobflow-remote (Slurm, PBS or plain shell).

The flow is the same one ``viglas run`` executes locally
(:func:`viglas.workflows.flows.build_flow`); here it is stored in the jobflow-remote
queue database and a *runner* (``jf runner start``) submits each job to the
scheduler of the chosen worker when its inputs are ready. Outputs (small documents)
go to the project's MongoDB job store; MD trajectories stay as H5MD files in each
job's run directory on the cluster file system.

This module only re-exports the HPC layer, one job per file:

* :mod:`viglas.workflows.hpc_settings` — the project's per-kind settings
  (``RoleSettings``, ``role_settings``, ``job_role``) and access to jobflow-remote,
* :mod:`viglas.workflows.hpc_segments` — MD jobs cut into wall-time segments
  (``segmented_call``, ``segment_job``),
* :mod:`viglas.workflows.hpc_submit` — ``configure_flow``, ``submit_flow``,
  ``submit_config``, ``Submission``,
* :mod:`viglas.workflows.hpc_status` — ``flow_status``, ``wait_for_flow``,
  ``remote_results``,
* :mod:`viglas.workflows.hpc_probe` — ``probe_flow`` (tiny jobs to test a worker).

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

from viglas.workflows.hpc_probe import probe_check, probe_flow, probe_host, probe_resume
from viglas.workflows.hpc_segments import (MAX_STALLED_SEGMENTS, SegmentTimeUp, WallTimeUp,
                                           _hard_stop_grace_s, _time_up_in,  # noqa: F401
                                           segment_job, segmented_call)
from viglas.workflows.hpc_settings import (MD_JOB_PATTERN, MD_STAGES, RoleSettings, job_role,
                                           role_settings)
from viglas.workflows.hpc_status import (_can_advance, flow_status,  # noqa: F401
                                         remote_results, wait_for_flow)
from viglas.workflows.hpc_submit import Submission, configure_flow, submit_config, submit_flow

# _hard_stop_grace_s, _time_up_in, _can_advance and _segment stay reachable here for
# old code and tests; their homes are hpc_segments and hpc_status.
#: the old private name of :func:`~viglas.workflows.hpc_segments.segment_job`
_segment = segment_job

__all__ = [
    "Submission", "RoleSettings", "submit_config", "submit_flow", "configure_flow",
    "role_settings", "job_role", "flow_status", "wait_for_flow", "remote_results",
    "probe_flow", "probe_resume", "segmented_call", "SegmentTimeUp", "WallTimeUp", "MD_JOB_PATTERN",
    "MD_STAGES", "MAX_STALLED_SEGMENTS", "segment_job", "probe_host", "probe_check",
]
