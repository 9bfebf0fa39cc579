"""End-to-end runs through every stage with real MD (ionic trial potential, toy sizes).

* one composition, uninterrupted vs killed mid-MD (SIGKILL on a subprocess) and
  resumed: identical numbers;
* an oxygen sweep over 4 x: percolation fit or the clear "not enough points above
  threshold" message, structural percolation, ranking;
* a screening over 3 formers: ranking table and the sigma300-vs-Ea/Tg plots.

Slow (minutes on a loaded 2-core machine): ``pytest -m slow tests/test_workflows_e2e.py``.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

TOY = {
    "seed": 3,
    "calculator": {"name": "ionic", "params": {"parameters": "trial"}},
    "structure": {"n_atoms": 42},
    "melt_quench": {"t_melt_K": 1200, "hold_ps": 0.2, "t_final_K": 600, "cool_rate_K_ps": 3000,
                    "timestep_fs": 2},
    "production": {"temperatures_K": [600, 800], "replicas": 1, "timestep_fs": 2,
                   "equilibration_ps": 0.2, "duration_ps": 2, "save_every_fs": 20,
                   "checkpoint_every_ps": 0.4},
}


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **data}))
    return path


def _strict_json(path: Path) -> dict:
    def no_nan(token):
        raise AssertionError(f"{token} in {path}")

    return json.loads(path.read_text(), parse_constant=no_nan)


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viglas.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def _check_complete_outputs(wd: Path, n_comps: int) -> dict:
    res = _strict_json(wd / "results.json")
    assert res["schema"] == "viglas-results/1"
    assert res["status"]["complete"], res["status"]
    assert len(res["compositions"]) == n_comps
    for name in ("runs.csv", "temperatures.csv", "compositions.csv", "report.md"):
        assert (wd / name).stat().st_size > 0
    for c in res["compositions"]:
        assert c["complete"] and c["n_atoms"] > 0
        assert {r["t_K"] for r in c["runs"]} == {600.0, 800.0}
        for r in c["runs"]:
            assert r["d_cm2_s"] is not None and r["d_err_cm2_s"] > 0
            assert (wd / r["trajectory"]).is_file()  # relative to the run directory
        for p in c["plots"].values():
            assert (wd / p).is_file()
    return res


def test_composition_interrupted_then_resumed_is_identical(tmp_path):
    from viglas.config import load_config
    from viglas.workflows.run import run_local

    cfg_path = _write(tmp_path, "tiny", {"composition": "LiAlCl2.5O0.75", **TOY})
    # reference: uninterrupted, in process
    ref = run_local(load_config(cfg_path), tmp_path / "ref", progress=False, workers=1)
    _check_complete_outputs(tmp_path / "ref", 1)
    c = ref["compositions"][0]
    # 2 ps toy runs rarely have a diffusive regime: each temperature is a fit point or a
    # bound, and Ea/sigma(300 K) exist exactly when two are fit points
    fit = c["fits"]["d_arrhenius"]
    assert (fit["n_points"] if fit else 0) + len(c["fits"]["bounds"]) == 2
    assert (c["ea_eV"] is not None) == (fit is not None)
    assert (c["sigma_300K_err_mS_cm"] is not None) == (fit is not None)
    assert c["density_g_cm3"] > 1.0

    # interrupted: kill -9 while a production MD run is between checkpoints
    wd = tmp_path / "cut"
    # (2 parallel job slots here, 1 in the reference: the numbers must not depend on it)
    proc = subprocess.Popen([sys.executable, "-m", "viglas.cli", "run", str(cfg_path),
                             "--workdir", str(wd), "--quiet", "--jobs", "2"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pattern = str(wd / "jobs" / "md_*_800K_*" / "prod" / "traj.ckpt.npz")
    t0 = time.time()
    while not glob.glob(pattern):
        assert proc.poll() is None, "run finished before it could be interrupted"
        assert time.time() - t0 < 900
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = json.loads((wd / "jobstore.json").read_text())
    stages = [d["metadata"]["viglas_stage"] for d in stored]
    assert "summary" not in stages and "build" in stages
    done_before = len(stored)
    assert 2 <= done_before < 7  # build, melt-quench and some runs finished, not all

    # a partial run can be inspected
    part = _cli("results", str(wd))
    assert part.returncode == 0, part.stderr
    assert "PARTIAL" in part.stdout and "LiAlCl2.5O0.75" in part.stdout

    # resume: finished jobs are skipped, the MD continues from its checkpoint
    again = _cli("run", str(cfg_path), "--workdir", str(wd), "--jobs", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("done, skipped") == done_before
    res = _check_complete_outputs(wd, 1)
    a, b = res["compositions"][0], ref["compositions"][0]
    for ra, rb in zip(a["runs"], b["runs"], strict=True):
        assert ra["d_cm2_s"] == rb["d_cm2_s"] and ra["sigma_mS_cm"] == rb["sigma_mS_cm"]
    for key in ("ea_eV", "ea_err_eV", "sigma_300K_mS_cm", "sigma_300K_err_mS_cm", "tg_K",
                "density_g_cm3", "temperatures"):
        assert a[key] == b[key], key
    assert a["fits"]["bounds"] == b["fits"]["bounds"]

    # the summary table also reads a copied results.json (no job store)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "results.json").write_text((wd / "results.json").read_text())
    shown = _cli("results", str(copy))
    assert shown.returncode == 0 and "complete" in shown.stdout and "Ea (eV)" in shown.stdout

    # a second rerun computes nothing
    third = _cli("run", str(cfg_path), "--workdir", str(wd), "--quiet")
    assert third.returncode == 0
    assert _strict_json(wd / "results.json")["compositions"][0]["ea_eV"] == a["ea_eV"]


def test_oxygen_sweep_end_to_end(tmp_path):
    toy = {**TOY, "structure": {"n_atoms": 30}}
    cfg = _write(tmp_path, "sweep", {"kind": "oxygen_sweep",
                                     "sweep": {"alkali": "Li", "former": "Al",
                                               "x": [0.25, 0.5, 0.75, 1.0]}, **toy})
    proc = _cli("run", str(cfg), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = _check_complete_outputs(tmp_path / "w", 4)
    perc = res["percolation"]
    assert perc is not None
    if "error" in perc:
        assert "not enough points above threshold" in perc["error"]
    else:
        assert perc["p_c"] is not None and perc["t"] is not None
    assert "percolation" in proc.stdout
    assert len(res["structural_percolation"]) == 4
    assert all("largest_cluster_fraction" in s for s in res["structural_percolation"])
    assert len(res["ranking"]) == 4
    assert (tmp_path / "w" / "ranking.csv").is_file()


def test_screening_end_to_end(tmp_path):
    cfg = _write(tmp_path, "screen", {"kind": "screening",
                                      "screening": {"alkali": ["Li"], "former": ["Al", "Ga", "In"],
                                                    "x": [0.75]}, **TOY})
    proc = _cli("run", str(cfg), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = _check_complete_outputs(tmp_path / "w", 3)
    formulas = [r["formula"] for r in res["ranking"]]
    assert sorted(formulas) == ["LiAlCl2.5O0.75", "LiGaCl2.5O0.75", "LiInCl2.5O0.75"]
    sig = [r["sigma_300K_mS_cm"] for r in res["ranking"]]
    # a composition without two diffusive toy temperatures (2 ps runs: usually none) has
    # no Arrhenius fit and so no sigma(300 K): it ranks last, and the run says why
    known = [s for s in sig if s is not None]
    assert sig[:len(known)] == sorted(known, reverse=True)
    assert all(s is None for s in sig[len(known):])
    for r in res["ranking"][len(known):]:
        assert f"{r['formula']}: d Arrhenius" in " ".join(proc.stdout.split())
    assert "Ranking by sigma(300 K)" in proc.stdout
    for name in ("sigma300_vs_ea.png", "sigma300_vs_tg.png"):
        assert (tmp_path / "w" / "plots" / name).stat().st_size > 1000
