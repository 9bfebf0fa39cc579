"""Runs you can trust (issue 14): no stale summaries after a rerun, no orphan MD
workers after the run is killed, no code run from a config without an opt-in.

The runs use a toy chain (42 atoms, trial ionic potential, no melt-quench, ~1 ps of MD
per temperature): about 10 s each on one core.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from viglas.config import parse_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

FAST = {"name": "fast", "composition": "LiAlCl2.5O0.75", "seed": 2,
        "calculator": {"name": "ionic", "params": {"parameters": "trial"}},
        "structure": {"n_atoms": 42}, "melt_quench": {"enabled": False},
        "production": {"temperatures_K": [600, 700, 800], "replicas": 1, "timestep_fs": 2,
                       "equilibration_ps": 0.1, "duration_ps": 1, "save_every_fs": 10,
                       "checkpoint_every_ps": 0.5},
        "analysis": {"plots": False, "vft": False, "structure_metrics": False}}


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viglas.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def _md_jobdir(cfg, workdir: Path, t_K: float) -> Path:
    from viglas.workflows.flows import build_flow
    from viglas.workflows.run import _slug

    job = next(j for j, _ in build_flow(cfg).iterflow()
               if j.metadata.get("viglas_stage") == "production" and j.metadata["t_K"] == t_K)
    return workdir / "jobs" / f"{_slug(job.name)}-{job.uuid[:8]}"


def _n_fitted_or_bound(comp) -> int:
    """Temperatures a composition's summary used: D Arrhenius fit points plus bounds."""
    fit = comp["fits"]["d_arrhenius"]
    return (fit["n_points"] if fit else 0) + len(comp["fits"]["bounds"])


# ----------------------------------------------------------------------------- item 1
def test_rerun_recomputes_a_summary_that_missed_a_failed_run(tmp_path):
    """The 600 K MD fails in the first run (something in its way), the summary is made
    from 700-800 K. The rerun finishes 600 K; the summary must be made again from all
    three temperatures, and 'complete' must mean every run was used."""
    from viglas.workflows.results import collect_results
    from viglas.workflows.run import run_local

    cfg = parse_config(FAST)
    wd = tmp_path / "w"
    blocker = _md_jobdir(cfg, wd, 600.0) / "equil" / "traj.h5"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"not a trajectory")  # run_md refuses: no checkpoint to resume
    first = run_local(cfg, wd, progress=False, workers=1)
    assert not first["status"]["complete"]
    c = first["compositions"][0]
    assert not c["complete"]  # the summary exists, but it did not use every run
    assert [t["t_K"] for t in c["temperatures"]] == [700.0, 800.0]
    assert collect_results(wd)["compositions"][0]["complete"] is False

    blocker.unlink()
    second = run_local(cfg, wd, progress=False, workers=1)
    assert second["status"]["complete"], second["status"]
    c2 = second["compositions"][0]
    assert c2["complete"]
    assert [t["t_K"] for t in c2["temperatures"]] == [600.0, 700.0, 800.0]
    assert not any("failed or missing" in m for m in c2["messages"])
    # the summary was made again: every temperature is now a fit point or a bound
    assert _n_fitted_or_bound(c) == 2 and _n_fitted_or_bound(c2) == 3
    # `viglas results` reads the same from the store
    again = collect_results(wd)["compositions"][0]
    assert [t["t_K"] for t in again["temperatures"]] == [600.0, 700.0, 800.0]
    assert again["ea_eV"] == c2["ea_eV"] and again["complete"]
    # a third run has nothing left to do
    proc = _cli("run", str(_write(tmp_path, FAST)), "--workdir", str(wd), "-j", "1")
    assert proc.returncode == 0, proc.stderr
    assert "reruns" not in proc.stderr and proc.stderr.count("done, skipped") == 9
    # a summary made under older analysis rules is redone from the stored MD results
    from viglas.analysis.summary import RULES_VERSION
    from viglas.workflows.store import RULES_FIELD, STORE_FILE

    docs = json.loads((wd / STORE_FILE).read_text())
    summ = [d for d in docs if (d.get("metadata") or {}).get("viglas_stage") == "summary"]
    assert summ and all(d[RULES_FIELD] == RULES_VERSION for d in summ)
    for d in summ:
        d[RULES_FIELD] = "1"
    (wd / STORE_FILE).write_text(json.dumps(docs))
    proc = _cli("run", str(_write(tmp_path, FAST)), "--workdir", str(wd), "-j", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("made under older analysis rules") == 1
    assert proc.stderr.count("done, skipped") == 8  # no MD, no analysis reruns
    docs = json.loads((wd / STORE_FILE).read_text())
    assert all(d[RULES_FIELD] == RULES_VERSION for d in docs
               if (d.get("metadata") or {}).get("viglas_stage") == "summary")
    # item 10: `viglas arrhenius` reads the run's own temperatures.csv
    arr = _cli("arrhenius", str(wd / "temperatures.csv"), "-o", str(tmp_path / "arr"),
               "--no-plot")
    if arr.returncode == 0:  # 1 ps runs: usually no diffusive regime, so no fit
        assert "Ea = " in arr.stdout
    else:
        assert "with a diffusive regime, need >= 2" in arr.stderr, arr.stderr
        assert "Traceback" not in arr.stderr
    # item 10: `viglas results` on a directory a run is using says so and claims no files
    import fcntl

    from viglas.workflows.run import LOCK_FILE

    with open(wd / LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        res = _cli("results", str(wd))
    assert res.returncode == 0, res.stderr
    assert "in progress" in res.stdout and "nothing written by this command" in res.stdout


def _write(tmp_path: Path, data: dict, name: str = "fast.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_freshness_of_stores_written_before_inputs_were_recorded():
    """Stores of older versions have no record of a job's inputs: a parent that
    finished after its child makes the child outdated (the stale-summary case), a
    parent without output makes it partial, and outdated outputs propagate."""
    from viglas.workflows.store import job_freshness

    jobs = [("md1", []), ("md2", []), ("an1", ["md1"]), ("an2", ["md2"]),
            ("summ", ["an1", "an2"]), ("series", ["summ"])]
    t = {"md1": "2026-01-01T10:00:00", "an1": "2026-01-01T10:01:00",
         "summ": "2026-01-01T10:02:00", "series": "2026-01-01T10:03:00",
         "md2": "2026-01-01T11:00:00", "an2": "2026-01-01T11:01:00"}
    docs = {u: {"uuid": u, "index": 1, "completed_at": w} for u, w in t.items()}
    fresh, partial, outdated = job_freshness(jobs, docs)
    assert fresh == {"md1", "md2", "an1", "an2"} and outdated == {"summ", "series"}
    del docs["an2"], docs["md2"]
    fresh, partial, outdated = job_freshness(jobs, docs)
    assert partial == {"summ", "series"} and not outdated
    # recorded inputs: a parent rerun since is detected whatever the clock says
    docs = {u: {"uuid": u, "index": 1, "completed_at": w} for u, w in t.items()}
    docs["summ"]["viglas_inputs"] = {"an1": t["an1"], "an2": None}
    docs["series"]["viglas_inputs"] = {"summ": t["summ"]}
    docs["an2"]["viglas_inputs"] = {"md2": t["md2"]}
    docs["an1"]["viglas_inputs"] = {"md1": t["md1"]}
    assert job_freshness(jobs, docs)[2] == {"summ", "series"}
    # analysis rules: a summary recorded by run_local under other rules (or none, an
    # older store) is outdated with what depends on it; documents without recorded
    # inputs (made elsewhere) are not judged
    from viglas.analysis.summary import RULES_VERSION

    docs = {u: {"uuid": u, "index": 1, "completed_at": w} for u, w in t.items()}
    docs["md2"]["completed_at"] = docs["an2"]["completed_at"] = "2026-01-01T09:00:00"
    for u in ("an1", "an2", "summ", "series"):
        docs[u]["viglas_inputs"] = {p: docs[p]["completed_at"] for p in dict(jobs)[u]}
    docs["summ"]["metadata"] = {"viglas_stage": "summary"}
    docs["summ"]["viglas_rules"] = RULES_VERSION
    assert job_freshness(jobs, docs)[2] == set()
    docs["summ"]["viglas_rules"] = "1"
    assert job_freshness(jobs, docs)[2] == {"summ", "series"}
    del docs["summ"]["viglas_rules"]
    assert job_freshness(jobs, docs)[2] == {"summ", "series"}
    del docs["summ"]["viglas_inputs"]
    assert job_freshness(jobs, docs)[2] == set()


# ----------------------------------------------------------------------------- item 2
def _session_pids(sid: int) -> list[int]:
    """PIDs of live (not zombie) processes in session ``sid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append(int(entry))
    return out


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_leaves_no_workers_and_reruns_cleanly(tmp_path, sig):
    """`kill -9` / `kill -TERM` of `viglas run -j 2` while its workers run MD: within a
    few seconds no process of the run is left (checked in the process table), and an
    immediate rerun finishes with a complete, readable result."""
    data = {**FAST, "production": {**FAST["production"], "duration_ps": 4}}
    cfg = _write(tmp_path, data)
    wd = tmp_path / "w"
    proc = subprocess.Popen([sys.executable, "-m", "viglas.cli", "run", str(cfg), "--workdir",
                             str(wd), "-j", "2", "--quiet"], env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sid = proc.pid
    try:
        deadline = time.time() + 120
        # wait until MD is running in the workers: a production log exists
        while time.time() < deadline and not list(wd.glob("jobs/*/equil/traj.log.csv")):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
        assert list(wd.glob("jobs/*/equil/traj.log.csv")), "MD never started"
        workers = [p for p in _session_pids(sid) if p != sid]
        assert len(workers) >= 2, workers  # spawned workers (and the resource tracker)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        deadline = time.time() + 20
        while time.time() < deadline and _session_pids(sid):
            time.sleep(0.2)
        assert _session_pids(sid) == [], "processes of the killed run are still running"
    finally:
        for p in _session_pids(sid):  # never leave our own test processes behind
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if sig == signal.SIGTERM:
        err = proc.stderr.read().decode()
        assert "interrupted" in err and "Traceback" not in err, err
        assert (wd / "results.json").is_file()  # partial outputs written on the way out
    rerun = _cli("run", str(cfg), "--workdir", str(wd), "-j", "2", "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    res = json.loads((wd / "results.json").read_text())
    assert res["status"]["complete"] and res["compositions"][0]["complete"]
    for job in wd.glob("jobs/*/prod/traj.log.csv"):  # every step logged exactly once
        steps = [int(float(line.split(",")[0])) for line in job.read_text().splitlines()[1:]]
        assert steps == sorted(set(steps)), job


def test_lock_waits_for_workers_of_an_earlier_run(tmp_path):
    """A worker of a killed run still holding its shared lock keeps a new run out."""
    import fcntl

    from viglas.errors import ViglasError
    from viglas.workflows.run import WORKERS_LOCK_FILE, _lock

    with open(tmp_path / WORKERS_LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        with pytest.raises(ViglasError, match="worker processes of an earlier viglas run"):
            with _lock(tmp_path, wait_workers_s=0.5):
                pass
    with _lock(tmp_path, wait_workers_s=0.5):
        pass


# ----------------------------------------------------------------------------- item 3
def test_config_cannot_run_code_without_opt_in(tmp_path, monkeypatch):
    """calculator: {name: "os:system", ...} is refused by --check, run and submit unless
    --allow-import is given; nothing is executed."""
    from viglas.errors import CalculatorError
    from viglas.workflows.submit import submit_config

    monkeypatch.delenv("VIGLAS_ALLOW_IMPORT", raising=False)
    marker = tmp_path / "pwned"
    data = {**FAST, "calculator": {"name": "os:system",
                                   "params": {"command": f"touch {marker}"}}}
    cfg = _write(tmp_path, data, "evil.yaml")
    for extra in (["--check"], []):
        proc = _cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--quiet", *extra)
        assert proc.returncode == 2, proc.stderr
        assert "--allow-import" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(CalculatorError, match="allow-import"):
        submit_config(data, worker="local")
    assert not marker.exists()
    ok = _cli("run", str(cfg), "--workdir", str(tmp_path / "w"), "--check", "--allow-import")
    assert ok.returncode == 0, ok.stderr
    assert not marker.exists()
