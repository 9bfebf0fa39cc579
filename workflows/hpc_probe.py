"""Tiny jobs to test a cluster worker (``viglas hpc probe``): where a job runs,
whether outputs reach the next job through the store, and whether a segmented
``md`` job resumes from its checkpoint in a new allocation.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

from jobflow import Flow, job

from viglas.files import atomic_write_text
from viglas.md import walltime

__all__ = ["probe_flow", "probe_host", "probe_check", "probe_resume"]


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
