"""Slow end-to-end checks of the MD engine (run with ``pytest -m slow``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from viglas.trajectory import H5MDTrajectory


def _ckpt_step(path) -> int:
    try:
        with np.load(path) as z:
            return int(json.loads(str(z["meta_json"]))["step"])
    except Exception:  # noqa: BLE001 - missing or being replaced
        return -1


@pytest.mark.slow
def test_100ps_nvt_200_atoms_resumes_after_kill(tmp_path, capsys):
    """Done-when check of issue 4: a 100 ps NVT run of a ~200-atom LACO cell with the ionic
    potential (trial parameters), killed with SIGKILL mid-run and resumed by rerunning the
    same ``viglas md`` command; every frame is present exactly once."""
    from ase.optimize import FIRE

    from viglas.potentials import IonicPotential
    from viglas.structures import GlassComposition, build_glass

    atoms = build_glass(GlassComposition.from_formula("LiAlCl2.5O0.75"), 200, seed=0)
    atoms.calc = IonicPotential("trial")
    FIRE(atoms, logfile=None).run(fmax=0.3, steps=300)
    atoms.calc = None
    start = tmp_path / "start.extxyz"
    atoms.write(start)
    out = tmp_path / "md" / "laco_800K.h5"
    steps, save_every = 100_000, 100
    cmd = [sys.executable, "-m", "viglas.cli", "md", str(start), "--calculator", "ionic",
           "--parameters", "trial", "--ensemble", "nvt", "--temperature", "800",
           "--timestep-fs", "1", "--steps", str(steps), "--save-every", str(save_every),
           "-o", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    ckpt = out.with_name("laco_800K.ckpt.npz")
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while proc.poll() is None and _ckpt_step(ckpt) < 40_000:
        time.sleep(0.5)
    time.sleep(float(np.random.default_rng().uniform(0, 3)))
    assert proc.poll() is None, "finished before the kill: " + proc.stderr.read().decode()[-500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t_kill = time.time() - t0
    killed_at = _ckpt_step(ckpt)
    t1 = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    t_resume = time.time() - t1
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[resumed]" in done.stdout
    with H5MDTrajectory(out) as t:
        np.testing.assert_array_equal(t.steps, np.arange(0, steps + 1, save_every))
        assert t.n_atoms == len(atoms)
        temps = t.observable("temperature")[1]
    log = np.genfromtxt(out.with_name("laco_800K.log.csv"), delimiter=",", names=True)
    np.testing.assert_array_equal(log["step"], np.arange(0, steps + 1, save_every))
    assert 700 < temps[len(temps) // 2:].mean() < 900
    with capsys.disabled():
        print(f"\n100 ps NVT, {len(atoms)} atoms, 800 K: killed after {t_kill:.0f} s "
              f"(checkpoint at step {killed_at}), resumed run {t_resume:.0f} s, total "
              f"{t_kill + t_resume:.0f} s wall; {len(temps)} frames, mean T "
              f"{temps.mean():.0f} K")


@pytest.mark.slow
def test_chgnet_20_steps_on_laco(tmp_path):
    """Optional smoke test: 20 CHGNet MD steps on ~50 atoms of LACO (torch, 1 thread)."""
    pytest.importorskip("chgnet")
    import torch

    torch.set_num_threads(1)
    from viglas.structures import GlassComposition, build_glass
    from viglas.md import run_md

    atoms = build_glass(GlassComposition.from_formula("LiAlCl2.5O0.75"), 50, seed=0)
    res = run_md(atoms, {"name": "chgnet", "params": {"device": "cpu", "threads": 1}},
                 ensemble="nvt", thermostat="bussi", temperature_K=600, timestep_fs=1.0,
                 steps=20, save_every=5, workdir=tmp_path, progress=False,
                 max_temperature_K=20000)
    assert res.steps_done == 20 and res.n_frames == 5
    with H5MDTrajectory(res.trajectory) as t:
        assert np.isfinite(t.observable("potential_energy")[1]).all()
