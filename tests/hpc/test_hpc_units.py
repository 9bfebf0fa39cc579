"""Fast checks of the HPC layer that need no cluster: project template, per-kind
resources, scheduler scripts rendered by qtoolkit, and MD segmentation with
jobflow's local manager. They run in the default test suite when jobflow-remote is
installed (``pip install -e '.[hpc]'``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("jobflow_remote")

from dataclasses import dataclass  # noqa: E402

from jobflow import Flow, Maker, job, run_locally  # noqa: E402
from jobflow.core.store import JobStore  # noqa: E402
from maggma.stores import MemoryStore  # noqa: E402

from viglas.md import walltime  # noqa: E402
from viglas.errors import ConfigError, SubmitError  # noqa: E402
from viglas.workflows import hpc_segments, hpc_templates, submit  # noqa: E402


@pytest.fixture
def projects(tmp_path, monkeypatch):
    """An isolated jobflow-remote projects folder holding a `viglas hpc init` project."""
    import jobflow_remote

    folder = tmp_path / "jfremote"
    monkeypatch.setenv("JFREMOTE_PROJECTS_FOLDER", str(folder))
    monkeypatch.setenv("JFREMOTE_CONFIG_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("JFREMOTE_PROJECT", "unit")
    monkeypatch.setattr(jobflow_remote, "SETTINGS", jobflow_remote.JobflowRemoteSettings())
    path = hpc_templates.write_project(folder / "unit.yaml", name="unit", mongo_port=27999,
                                       work_dir=tmp_path / "jobs", runner_delay_s=2)
    return path


def test_template_is_a_valid_jobflow_remote_project(projects):
    proj = hpc_templates.load_project(projects)
    assert proj.name == "unit"
    assert set(proj.workers) == {"slurm", "pbs", "local"}
    assert proj.workers["slurm"].scheduler_type == "slurm"
    assert proj.workers["pbs"].scheduler_type == "pbs"
    assert proj.workers["local"].scheduler_type == "shell"
    assert proj.runner.delay_checkout == 2.0
    # queue and docs in MongoDB, binary data in GridFS, never a file store
    assert proj.queue.store["type"] == "MongoStore" and proj.queue.store["port"] == 27999
    assert proj.jobstore["docs_store"]["type"] == "MongoStore"
    assert proj.jobstore["additional_stores"]["data"]["type"] == "GridFSStore"
    assert "gpu" in proj.exec_config
    # every worker's pre_run puts this Python first
    for w in proj.workers.values():
        assert hpc_templates.default_pre_run() in w.pre_run
    text = projects.read_text()
    assert "EDIT" in text and "gres" in text and "ngpus" in text


def test_template_refuses_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="name"):
        hpc_templates.project_template("bad name")
    with pytest.raises(ConfigError, match="runner_delay_s"):
        hpc_templates.project_template("ok", runner_delay_s=0)
    p = hpc_templates.write_project(tmp_path / "x.yaml", name="x")
    with pytest.raises(ConfigError, match="exists"):
        hpc_templates.write_project(p, name="x")


@pytest.mark.parametrize("text,seconds", [("30", 1800), ("05:30", 330), ("02:00:00", 7200),
                                          ("1-00", 86400), ("1-02:03:04", 93784), (90, 90)])
def test_parse_walltime(text, seconds):
    assert hpc_templates.parse_walltime_s(text) == seconds


def test_role_settings_merge_worker_defaults_and_derive_segments(projects):
    s = submit.role_settings("unit", "slurm")
    md, an = s["md"], s["analysis"]
    assert md.resources["cpus_per_task"] == 4 and md.resources["time"] == "04:00:00"
    assert md.resources["nodes"] == 1 and md.resources["ntasks"] == 1  # from the worker
    assert an.resources["cpus_per_task"] == 1 and an.resources["time"] == "00:30:00"
    assert md.segment_walltime_s == pytest.approx(0.9 * 4 * 3600 - 120)
    assert an.segment_walltime_s is None
    pbs = submit.role_settings("unit", "pbs")
    assert pbs["md"].resources["select"] == "select=1:ncpus=4"
    assert submit.role_settings("unit", "local")["md"].segment_walltime_s is None
    with pytest.raises(SubmitError, match="unknown worker"):
        submit.role_settings("unit", "nope")


def test_unknown_exec_config_is_refused(projects):
    text = projects.read_text().replace("        # exec_config: gpu\n      analysis:\n"
                                        "        resources: {cpus_per_task: 1",
                                        "        exec_config: gpux\n      analysis:\n"
                                        "        resources: {cpus_per_task: 1", 1)
    projects.write_text(text)
    with pytest.raises(SubmitError, match="exec_config"):
        submit.role_settings("unit", "slurm")


@pytest.mark.parametrize("scheduler,resources,expected", [
    ("slurm", {"cpus_per_task": 8, "gres": "gpu:1", "time": "12:00:00", "partition": "gpu"},
     ["#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:1", "#SBATCH --time=12:00:00",
      "#SBATCH --partition=gpu"]),
    ("pbs", {"select": "select=1:ncpus=8:ngpus=1", "walltime": "12:00:00", "queue": "gpu"},
     ["#PBS -l select=1:ncpus=8:ngpus=1", "#PBS -l walltime=12:00:00", "#PBS -q gpu"]),
])
def test_gpu_requests_reach_the_batch_script(scheduler, resources, expected):
    """The resources of the template's GPU examples render as real scheduler lines."""
    from qtoolkit.io import PBSIO, SlurmIO

    io = {"slurm": SlurmIO, "pbs": PBSIO}[scheduler]()
    script = io.get_submission_script(["jf execution run ."], options=resources)
    for line in expected:
        assert line in script


def test_configure_flow_per_kind():
    @job
    def melt(x):
        return x

    @job
    def analyse(x):
        return x

    a = melt(1)
    a.metadata = {"viglas_stage": "melt_quench"}
    b = analyse(a.output)
    b.metadata = {"viglas_stage": "diffusion"}
    c = melt(2)
    c.name = "md LiAlCl4 600K r0"  # no stage: decided by the name
    flow = Flow([a, b, c])
    settings = {"md": submit.RoleSettings(resources={"time": "01:00:00", "gres": "gpu:1"},
                                          exec_config="gpu", segment_walltime_s=3000),
                "analysis": submit.RoleSettings(resources={"time": "00:10:00"})}
    submit.configure_flow(flow, settings)
    cfg = {j.uuid: j.config.manager_config for j in (a, b, c)}
    assert cfg[a.uuid]["resources"]["gres"] == "gpu:1" and cfg[a.uuid]["exec_config"] == "gpu"
    assert cfg[b.uuid]["resources"] == {"time": "00:10:00"}
    assert "exec_config" not in cfg[b.uuid] or cfg[b.uuid]["exec_config"] is None
    assert cfg[c.uuid]["resources"]["gres"] == "gpu:1"
    assert [submit.job_role(j) for j in (a, b, c)] == ["md", "analysis", "md"]
    # MD jobs are wrapped for segmentation; the analysis job is untouched
    assert a.function is submit.segmented_call.original
    assert a.function_args[3] == 3000
    assert b.function is not submit.segmented_call.original


# --- segmentation: a resumable "MD" that checkpoints to the current directory -------
def resumable_steps(n_steps: int, step_s: float, cooperative: bool = True) -> dict:
    """Advance a counter to ``n_steps``, checkpointing every step in ./ckpt.json; stops
    at a checkpoint when a wall-time stop is requested (unless not ``cooperative``)."""
    import time

    ck = Path("ckpt.json")
    state = json.loads(ck.read_text()) if ck.exists() else {"step": 0, "starts": []}
    state["starts"].append(state["step"])
    ck.write_text(json.dumps(state))
    while state["step"] < n_steps:
        time.sleep(step_s)
        state["step"] += 1
        tmp = Path("ckpt.json.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, ck)
        if cooperative and walltime.STOP and state["step"] < n_steps:  # as run_md
            raise walltime.WallTimeUp(f"stopped at step {state['step']}")
    return {"step": state["step"], "starts": state["starts"], "cwd": os.getcwd()}


@job
def resumable_job(n_steps: int, step_s: float, cooperative: bool = True) -> dict:
    return resumable_steps(n_steps, step_s, cooperative)


@job
def after(result: dict) -> int:
    return result["step"] * 10


def test_segmented_md_resumes_across_segments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    md = resumable_job(12, 0.1)  # 1.2 s of work
    md.metadata = {"viglas_stage": "production"}
    nxt = after(md.output)
    flow = Flow([md, nxt])
    submit.configure_flow(flow, {"md": submit.RoleSettings(segment_walltime_s=0.45)})
    store = JobStore(MemoryStore())
    out = run_locally(flow, store=store, create_folders=True, root_dir=tmp_path,
                      ensure_success=True, log=False)
    final = out[md.uuid]
    last_index = max(final)
    res = final[last_index].output
    assert res["step"] == 12
    assert len(res["starts"]) >= 3, res  # ran as several segments ...
    assert res["starts"][0] == 0 and res["starts"] == sorted(res["starts"])  # ... each resuming
    assert last_index == len(res["starts"])  # one replacement job per extra segment
    # every segment ran in the first segment's directory; the next job saw the final output
    assert json.loads((Path(res["cwd"]) / "ckpt.json").read_text())["starts"] == res["starts"]
    assert out[nxt.uuid][1].output == 120


def test_job_that_ignores_the_stop_request_is_interrupted_after_the_grace(tmp_path,
                                                                          monkeypatch):
    """A function that never looks at viglas.md.walltime.STOP still gets cut into segments:
    SIGALRM raises SegmentTimeUp in it once the grace period after the budget is over."""
    monkeypatch.chdir(tmp_path)
    # segmented_call reads the grace where it lives (hpc_segments; submit re-exports it)
    monkeypatch.setattr(hpc_segments, "_hard_stop_grace_s", lambda budget: 0.2)
    md = resumable_job(10, 0.1, cooperative=False)
    submit._segment(md, 0.3)
    out = run_locally(md, store=JobStore(MemoryStore()), create_folders=True,
                      root_dir=tmp_path, ensure_success=True, log=False)
    res = out[md.uuid][max(out[md.uuid])].output
    assert res["step"] == 10 and len(res["starts"]) >= 2
    assert not walltime.STOP  # the request does not leak out of the segment


def test_wrapped_time_up_is_recognised():
    """SIGALRM during numba/C code can surface as SystemError caused by SegmentTimeUp."""
    try:
        try:
            raise submit.SegmentTimeUp("segment 0 used its 1 s")
        except submit.SegmentTimeUp as inner:
            raise SystemError("returned a result with an exception set") from inner
    except SystemError as exc:
        assert submit._time_up_in(exc)
    assert not submit._time_up_in(ValueError("x"))
    assert submit._hard_stop_grace_s(0.5) == 1.0
    assert submit._hard_stop_grace_s(600) == 30.0
    assert submit._hard_stop_grace_s(4 * 3600) == 60.0


def test_segmented_call_passes_short_jobs_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    md = resumable_job(2, 0.01)
    submit._segment(md, 30)
    out = run_locally(md, store=JobStore(MemoryStore()), create_folders=True,
                      root_dir=tmp_path, ensure_success=True, log=False)
    assert list(out[md.uuid]) == [1]
    assert out[md.uuid][1].output["starts"] == [0]


@dataclass
class CountingMaker(Maker):
    """A Maker whose make() is resumable (as the viglas MD makers are)."""

    name: str = "md counting"
    n_steps: int = 8
    step_s: float = 0.1

    @job
    def make(self, offset: int) -> dict:
        out = resumable_steps(self.n_steps, self.step_s)
        out["step"] += offset
        return out


def test_segmented_maker_job(tmp_path, monkeypatch):
    """Maker jobs (bound @job methods) run their real body inside the segments."""
    monkeypatch.chdir(tmp_path)
    md = CountingMaker().make(100)
    submit._segment(md, 0.35)
    out = run_locally(md, store=JobStore(MemoryStore()), create_folders=True,
                      root_dir=tmp_path, ensure_success=True, log=False)
    res = out[md.uuid][max(out[md.uuid])].output
    assert res["step"] == 108 and len(res["starts"]) >= 2


def test_segment_without_progress_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    md = stalled_job(5.0)
    submit._segment(md, 0.3)
    with pytest.raises(Exception, match="3 MD segments in a row wrote no checkpoint"):
        run_locally(md, store=JobStore(MemoryStore()), create_folders=True,
                    root_dir=tmp_path, ensure_success=True, log=False, raise_immediately=True)


@job
def stalled_job(seconds: float) -> int:
    import time

    time.sleep(seconds)  # writes nothing: a segment can never get further
    return 1


def _row(u, state, parents=(), allow=False, index=1):
    return {"uuid": u, "index": index, "state": state, "parents": list(parents),
            "allow_failed_parents": allow}


@pytest.mark.parametrize("rows,expected", [
    ([_row("a", "FAILED"), _row("b", "WAITING", ["a"])], False),  # b can never run
    ([_row("a", "FAILED"), _row("b", "WAITING", ["a"], allow=True)], True),  # b will run
    ([_row("a", "FAILED"), _row("b", "WAITING", ["a"]), _row("c", "WAITING", ["b"], True)],
     False),  # c waits on a stuck job
    ([_row("a", "COMPLETED"), _row("b", "WAITING", ["a"])], True),  # about to be READY
    ([_row("a", "COMPLETED"), _row("a", "RUNNING", index=2), _row("b", "WAITING", ["a"])],
     True),  # a replaced (next MD segment) job is still running
    ([_row("a", "COMPLETED"), _row("b", "COMPLETED", ["a"])], False),
    ([_row("a", "PAUSED"), _row("b", "WAITING", ["a"])], False),
])
def test_flow_finished_detection(rows, expected):
    assert submit._can_advance(rows) is expected


def test_segmented_maker_job_survives_json(tmp_path, monkeypatch):
    """jobflow-remote stores jobs as JSON: a segmented Maker job (bound method inside
    the arguments) must round-trip and still resume across segments."""
    from monty.json import MontyDecoder, MontyEncoder

    monkeypatch.chdir(tmp_path)
    md = CountingMaker(n_steps=6).make(5)
    submit._segment(md, 0.35)
    text = json.dumps(md, cls=MontyEncoder)
    back = json.loads(text, cls=MontyDecoder)
    assert getattr(back.function, "original", None) is submit.segmented_call.original
    out = run_locally(back, store=JobStore(MemoryStore()), create_folders=True,
                      root_dir=tmp_path, ensure_success=True, log=False)
    res = out[back.uuid][max(out[back.uuid])].output
    assert res["step"] == 11 and len(res["starts"]) >= 2
