"""Real MD cut into wall-time segments by :func:`viglas.workflows.submit.segmented_call`.

The MD run is interrupted (``SIGALRM``) at arbitrary points, replaced by a
continuation job that resumes from ``run_md``'s checkpoint in the same folder, and
must end bit-for-bit where an uninterrupted run of the same call ends. Runs with
jobflow's local manager (no cluster needed) but belongs to the ``hpc`` set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from jobflow import job, run_locally
from jobflow.core.store import JobStore
from maggma.stores import MemoryStore

pytestmark = pytest.mark.hpc


@job
def md_job(symbols: list[str], positions: list, cell: list, steps: int) -> dict:
    """NVT MD of a small LACO cell in ./md (relative: the segment's folder)."""
    from ase import Atoms

    from viglas.calculators import get_calculator
    from viglas.md import run_md

    atoms = Atoms(symbols, positions=positions, cell=cell, pbc=True)
    calc = get_calculator({"name": "ionic", "params": {"parameters": "trial"}})
    res = run_md(atoms, calc, ensemble="nvt", thermostat="bussi", temperature_K=900.0,
                 timestep_fs=2.0, steps=steps, save_every=10, checkpoint_every=20,
                 workdir="md", seed=11, progress=False)
    ck = np.load(Path("md") / "traj.ckpt.npz")
    return {"steps_done": res.steps_done, "n_frames": res.n_frames, "resumed": res.resumed,
            "positions": ck["positions"].tolist(), "momenta": ck["momenta"].tolist(),
            "cwd": os.getcwd()}


def _glass():
    from viglas.structures import GlassComposition, build_glass

    a = build_glass(GlassComposition.from_formula("LiAlCl2.5O0.75"), 42, seed=3)
    return [a.get_chemical_symbols(), a.get_positions().tolist(), a.cell.tolist()]


def test_segmented_md_equals_uninterrupted_md(tmp_path, monkeypatch):
    from viglas.workflows import submit

    args = _glass()
    steps = 2000
    monkeypatch.chdir(tmp_path)
    # warm up (imports, compiled kernels) so the timing below is the MD itself
    run_locally(md_job(*args, 20), store=JobStore(MemoryStore()), create_folders=True,
                root_dir=tmp_path / "warm", ensure_success=True, log=False)
    ref_job = md_job(*args, steps)
    t0 = time.perf_counter()
    ref = run_locally(ref_job, store=JobStore(MemoryStore()), create_folders=True,
                      root_dir=tmp_path / "ref", ensure_success=True, log=False)
    t_ref = time.perf_counter() - t0
    ref_out = ref[ref_job.uuid][1].output

    # a quarter of the uninterrupted run's wall time: several segments on any machine
    budget = max(0.3, t_ref / 4)
    seg_job = md_job(*args, steps)
    submit._segment(seg_job, budget)
    out = run_locally(seg_job, store=JobStore(MemoryStore()), create_folders=True,
                      root_dir=tmp_path / "seg", ensure_success=True, log=False)
    indices = sorted(out[seg_job.uuid])
    seg_out = out[seg_job.uuid][indices[-1]].output
    print(f"\n[hpc] {steps} MD steps ({t_ref:.1f} s in one go) ran as {len(indices)} "
          f"segments of <= {budget:.2f} s")
    assert len(indices) >= 2, "expected several segments"
    assert seg_out["resumed"] is True and ref_out["resumed"] is False
    assert seg_out["steps_done"] == ref_out["steps_done"] == steps
    assert seg_out["n_frames"] == ref_out["n_frames"] == steps // 10 + 1
    np.testing.assert_array_equal(seg_out["positions"], ref_out["positions"])
    np.testing.assert_array_equal(seg_out["momenta"], ref_out["momenta"])
    # every segment used the first segment's folder: one md/ folder in all job folders
    md_dirs = list((tmp_path / "seg").glob("*/md"))
    assert md_dirs == [Path(seg_out["cwd"]) / "md"]
    assert list(md_dirs[0].glob("*.h5"))
