"""Probe jobs through a real single-node Slurm and through the local shell worker.

``viglas hpc check`` submits two tiny jobs (the second reads the first's output
through the store) and, with ``--resume N --md-segment-s S``, a resumable sleeping
job run as an MD job: it is cut after S seconds and continues as a new Slurm job
from its checkpoint, in the first segment's folder.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.hpc


def test_check_slurm_with_segments(jf_project, cluster, cli):
    from viglas.workflows.submit import flow_status, remote_results

    t0 = time.monotonic()
    r = cli.viglas("hpc", "check", "--worker", "slurm", "--project", jf_project,
                   "--resume", "4", "--md-segment-s", "2.5", "--timeout", "300")
    wall = time.monotonic() - t0
    print(f"\n[hpc] viglas hpc check on slurm (3 jobs, resume split): {wall:.1f} s")
    assert "probe OK" in r.stdout
    flow_id = re.search(r"flow id: (\S+)", r.stdout).group(1)
    st = flow_status(flow_id, jf_project)
    assert st["state"] == "COMPLETED"
    assert all(j["worker"] == "slurm" and j["process_id"] for j in st["jobs"])
    res = remote_results(jf_project, flow_id)
    outs = list(res["outputs"].values())
    first = next(o for o in outs if o and "host" in o)
    second = next(o for o in outs if o and "first_host" in o)
    resume = next(o for o in outs if o and "segments" in o)
    # two Slurm allocations; the output of the first reached the second
    assert second["ok"] is True and second["same_python"] is True
    assert first["slurm_job_id"] and second["second_slurm_job_id"]
    assert first["slurm_job_id"] != second["second_slurm_job_id"]
    # the resumable job: several segments, each a new Slurm job, each resuming
    segs = resume["segments"]
    assert resume["steps"] == 4 and len(segs) >= 2, resume
    starts = [s["start_step"] for s in segs]
    assert starts[0] == 0 and starts == sorted(starts) and starts[-1] > 0
    assert len({s["slurm_job_id"] for s in segs}) == len(segs)
    rows = sorted((j for j in st["jobs"] if j["name"].startswith("viglas probe: resume")),
                  key=lambda j: j["index"])
    assert [j["index"] for j in rows] == list(range(1, len(segs) + 1))
    assert all(j["kind"] == "md" for j in rows)
    assert all("[segment" in j["name"] for j in rows[1:])


def test_probe_flow_on_local_shell_worker(jf_project, cluster):
    from viglas.workflows.submit import probe_flow, remote_results, submit_flow, wait_for_flow

    t0 = time.monotonic()
    sub = submit_flow(probe_flow(), worker="local", project=jf_project)
    assert sub.n_jobs == 2 and sub.project == jf_project
    assert f"jf -p {jf_project} flow info {sub.flow_id}" in sub.follow_commands()
    st = wait_for_flow(sub.flow_id, jf_project, timeout_s=180, poll_s=1.0)
    print(f"\n[hpc] probe flow on local: {time.monotonic() - t0:.1f} s")
    assert st["state"] == "COMPLETED", st
    assert [j["state"] for j in st["jobs"]] == ["COMPLETED", "COMPLETED"]
    assert all(j["worker"] == "local" for j in st["jobs"])
    outs = list(remote_results(jf_project, sub.flow_id)["outputs"].values())
    first = next(o for o in outs if "host" in o)
    assert first["slurm_job_id"] is None
    assert next(o for o in outs if "first_host" in o)["ok"] is True
