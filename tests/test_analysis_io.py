"""Trajectory readers, unwrapping, drift removal, conductivity and the analyze CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms

from viglas.analysis import (analyze_trajectory, nernst_einstein_sigma_mS_cm, read_trajectory)
from viglas.errors import AnalysisError, TrajectoryError
from viglas.trajectory import H5MDWriter
from viglas.units import A2_FS_TO_CM2_S

L = 12.0
CELL = np.eye(3) * L


def _walk(n_frames=400, n_li=16, n_fw=16, d=0.01, seed=0, drift=(0.0, 0.0, 0.0)):
    """Li random walkers + a framework that vibrates and drifts rigidly with `drift` Å/frame."""
    rng = np.random.default_rng(seed)
    li = rng.uniform(0, L, (n_li, 3)) + np.cumsum(rng.normal(0, np.sqrt(2 * d), (n_frames, n_li, 3)), axis=0)
    fw0 = rng.uniform(0, L, (n_fw, 3))
    fw = fw0 + rng.normal(0, 0.05, (n_frames, n_fw, 3))
    shift = np.arange(n_frames)[:, None, None] * np.asarray(drift)[None, None, :]
    pos = np.concatenate([li, fw], axis=1) + shift
    symbols = ["Li"] * n_li + ["Cl"] * n_fw
    return pos, symbols


def _write_h5(path, pos, symbols, dt=1.0, times=None):
    a = Atoms(symbols, positions=pos[0], cell=CELL, pbc=True)
    with H5MDWriter(path, a.numbers, a.get_masses(), timestep_fs=dt) as w:
        for k, p in enumerate(pos):
            w.append(k, k * dt if times is None else times[k], p, CELL)


def _write_ase(path, pos, symbols, fmt, wrap=True):
    import ase.io

    frames = []
    for p in pos:
        a = Atoms(symbols, positions=p, cell=CELL, pbc=True)
        if wrap:
            a.wrap()
        frames.append(a)
    ase.io.write(str(path), frames, format=fmt)


def test_h5md_reader_unwrapped_species_and_drift(tmp_path):
    pos, syms = _walk(n_frames=150, drift=(0.01, 0.0, -0.02))
    f = tmp_path / "t.h5"
    _write_h5(f, pos, syms, dt=2.0)
    d = read_trajectory(f, species="Li", drift="framework", chunk=64)
    assert d.positions.shape == (150, 16, 3) and d.dt_fs == 2.0
    assert d.counts == {"Cl": 16, "Li": 16}
    assert d.volume_A3 == pytest.approx(L**3)
    # the rigid framework drift is removed: Li displacement = walk only (+ tiny vib COM)
    true = pos[:, :16] - pos[:1, :16] - (np.arange(150) * np.array([0.01, 0, -0.02])[:, None]).T[:, None, :]
    got = d.positions - d.positions[:1]
    assert np.max(np.abs(got - true)) < 0.1
    raw = read_trajectory(f, species="Li", drift="none")
    np.testing.assert_allclose(raw.positions, pos[:, :16], atol=1e-9)
    sub = read_trajectory(f, species="Li", every=3, start_fs=100.0)
    assert sub.dt_fs == 6.0 and sub.time_fs[0] >= 100.0 and sub.n_frames == 33


@pytest.mark.parametrize("fmt,name", [("traj", "t.traj"), ("extxyz", "t.extxyz"),
                                      ("vasp-xdatcar", "XDATCAR")])
def test_ase_formats_unwrap_by_minimum_image(tmp_path, fmt, name):
    pos, syms = _walk(n_frames=120)
    f = tmp_path / name
    _write_ase(f, pos, syms, fmt)
    d = read_trajectory(f, species="Li", timestep_fs=1.0, stride=5, drift="none")
    assert d.dt_fs == 5.0
    np.testing.assert_allclose(d.positions - d.positions[:1], pos[:, :16] - pos[:1, :16], atol=1e-5)


def test_lammps_dump_with_specorder(tmp_path):
    pos, syms = _walk(n_frames=30)
    f = tmp_path / "t.dump"
    lines = []
    for k, p in enumerate(pos):
        lines += ["ITEM: TIMESTEP", str(k * 10), "ITEM: NUMBER OF ATOMS", str(len(p)),
                  "ITEM: BOX BOUNDS pp pp pp"] + [f"0 {L}"] * 3 + ["ITEM: ATOMS id type x y z"]
        w = np.mod(p, L)
        for i, (s, r) in enumerate(zip(syms, w)):
            lines.append(f"{i + 1} {1 if s == 'Li' else 2} {r[0]:.6f} {r[1]:.6f} {r[2]:.6f}")
    f.write_text("\n".join(lines) + "\n")
    d = read_trajectory(f, species="Li", timestep_fs=0.5, stride=10, drift="none",
                        specorder=["Li", "Cl"])
    assert d.positions.shape == (30, 16, 3) and d.dt_fs == 5.0
    np.testing.assert_allclose(d.positions - d.positions[:1], pos[:, :16] - pos[:1, :16], atol=1e-4)


def test_named_errors(tmp_path):
    pos, syms = _walk(n_frames=20)
    f = tmp_path / "t.h5"
    _write_h5(f, pos, syms)
    with pytest.raises(AnalysisError, match="species"):
        read_trajectory(f, species="Na")
    with pytest.raises(AnalysisError, match="n_frames"):
        read_trajectory(f, species="Li", min_frames=50)
    times = np.arange(20.0)
    times[5] = 3.5
    g = tmp_path / "unsorted.h5"
    _write_h5(g, pos, syms, times=times)
    with pytest.raises(TrajectoryError, match="not increasing"):
        read_trajectory(g, species="Li")
    times = np.arange(20.0)
    times[10:] += 0.5
    h = tmp_path / "nonuniform.h5"
    _write_h5(h, pos, syms, times=times)
    with pytest.raises(TrajectoryError, match="uniformly"):
        read_trajectory(h, species="Li")
    # an atom jumping 0.55 of the box in one frame cannot be unwrapped
    jump = pos.copy()
    jump[10:, 0, 0] += 0.55 * L
    j = tmp_path / "jump.traj"
    _write_ase(j, jump, syms, "traj")
    with pytest.raises(TrajectoryError, match="too far"):
        read_trajectory(j, species="Li", timestep_fs=1.0)
    k = tmp_path / "notimes.traj"
    _write_ase(k, pos, syms, "traj")
    with pytest.raises(TrajectoryError, match="timestep_fs"):
        read_trajectory(k, species="Li")
    with pytest.raises(TrajectoryError, match="format"):
        read_trajectory(tmp_path / "t.h5", fmt="pdb")


def test_nernst_einstein_value():
    # n = 1e22 cm^-3, D = 1e-6 cm^2/s, T = 300 K, z = 1 -> sigma = n e^2 D / kT
    s = nernst_einstein_sigma_mS_cm(1e-6, 1e22, 300.0)
    assert s == pytest.approx(1e22 * (1.602176634e-19) ** 2 * 1e-6 / (1.380649e-23 * 300) * 1e3)
    assert nernst_einstein_sigma_mS_cm(1e-6, 1e22, 300.0, charge=2, haven=0.5) == pytest.approx(8 * s)
    with pytest.raises(AnalysisError):
        nernst_einstein_sigma_mS_cm(1e-6, 1e22, -3.0)


def test_analyze_trajectory_replicas_and_haven_ratio_of_independent_ions(tmp_path):
    files = []
    for r in range(3):
        pos, syms = _walk(n_frames=250, n_li=32, seed=10 + r)
        f = tmp_path / f"r{r}.traj"
        _write_ase(f, pos, syms, "traj")  # wrapped; unwrapped by minimum image
        files.append(f)
    res = analyze_trajectory(files, "Li", 600.0, timestep_fs=1.0)
    assert res.n_replicas == 3 and res.n_ions == 32
    assert abs(res.d_cm2_s - 0.01 * A2_FS_TO_CM2_S) < 3 * res.d_err_cm2_s
    n = 32 / (L**3 * 1e-24)
    assert res.n_per_cm3 == pytest.approx(n)
    assert res.sigma_mS_cm == pytest.approx(nernst_einstein_sigma_mS_cm(res.d_cm2_s, n, 600.0))
    # independent ions: the charge-MSD sigma agrees with Nernst-Einstein (Haven ratio ~ 1)
    assert res.sigma_charge_mS_cm is not None
    assert abs(res.sigma_charge_mS_cm - res.sigma_mS_cm) < 3 * np.hypot(
        res.sigma_charge_err_mS_cm, res.sigma_err_mS_cm)
    d = res.to_dict()
    json.dumps(d)
    assert {"d_cm2_s", "d_err_cm2_s", "sigma_mS_cm", "sigma_err_mS_cm", "t_K"} <= set(d)


def test_cli_analyze_and_arrhenius(tmp_path):
    from viglas.cli import main

    pos, syms = _walk(n_frames=120)
    f = tmp_path / "r.h5"
    _write_h5(f, pos, syms)
    out = tmp_path / "out"
    assert main(["analyze", str(f), "--species", "Li", "--temperature", "600", "-o", str(out)]) == 0
    d = json.loads((out / "transport.json").read_text())
    assert d["d_cm2_s"] > 0 and d["d_err_cm2_s"] > 0 and (out / "msd.png").exists()
    assert main(["analyze", str(f), "--species", "Na", "--temperature", "600", "-o", str(out)]) == 2
    kb = 8.617333262e-5
    t = np.array([500.0, 600, 700, 800, 900])
    dd = 1e-3 * np.exp(-0.3 / (kb * t))
    csv = tmp_path / "d.csv"
    csv.write_text("T_K,D_cm2_s,D_err_cm2_s\n" + "\n".join(f"{a},{b},{0.05 * b}" for a, b in zip(t, dd)))
    struct = tmp_path / "s.extxyz"
    import ase.io

    ase.io.write(str(struct), Atoms(syms, positions=pos[0], cell=CELL, pbc=True))
    assert main(["arrhenius", str(csv), "--structure", str(struct), "--species", "Li",
                 "-o", str(tmp_path)]) == 0
    a = json.loads((tmp_path / "arrhenius.json").read_text())
    assert a["ea_eV"] == pytest.approx(0.3, abs=1e-6)
    assert a["d_extrapolated_cm2_s"] == pytest.approx(1e-3 * np.exp(-0.3 / (kb * 300)), rel=1e-5)
    assert a["sigma_extrapolated_mS_cm"] > 0 and a["sigma_extrapolated_err_mS_cm"] > 0
