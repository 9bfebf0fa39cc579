"""A two-job flow through a real single-node Slurm and through the local shell worker."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.hpc


@pytest.mark.parametrize("worker", ["slurm", "local"])
def test_probe_flow_runs_on_worker(jf_project, cluster, worker):
    from viglas.workflows.submit import (flow_status, probe_flow, remote_results, submit_flow,
                                         wait_for_flow)

    t0 = time.monotonic()
    sub = submit_flow(probe_flow(), worker=worker, project=jf_project)
    assert sub.n_jobs == 2 and sub.project == jf_project
    assert f"jf -p {jf_project} flow info {sub.flow_id}" in sub.follow_commands()
    st = wait_for_flow(sub.flow_id, jf_project, timeout_s=180, poll_s=1.0)
    wall = time.monotonic() - t0
    print(f"[hpc] probe flow on {worker}: {wall:.1f} s")
    assert st["state"] == "COMPLETED", st
    assert [j["state"] for j in st["jobs"]] == ["COMPLETED", "COMPLETED"]
    assert all(j["worker"] == worker for j in st["jobs"])
    res = remote_results(jf_project, sub.flow_id)
    outs = list(res["outputs"].values())
    first = next(o for o in outs if "host" in o)
    second = next(o for o in outs if "first_host" in o)
    assert second["ok"] is True and second["same_python"] is True
    if worker == "slurm":
        # both ran as Slurm batch jobs, as two different allocations
        assert first["slurm_job_id"] and second["second_slurm_job_id"]
        assert first["slurm_job_id"] != second["second_slurm_job_id"]
        assert all(j["process_id"] for j in flow_status(sub.flow_id, jf_project)["jobs"])
    else:
        assert first["slurm_job_id"] is None
