"""Arrhenius/VFT, percolation, Tg, Gibbs-DiMarzio fits and structure metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms

from viglas.analysis import (ArrheniusFit, PercolationFit, VFTFit, bridging_oxygen, compare_models,
                             coordination_numbers, fit_arrhenius, fit_gibbs_dimarzio,
                             fit_percolation, fit_tg, fit_vft, network_clusters, plot_arrhenius,
                             plot_percolation, plot_tg, plot_vft, rdf, spanning_summary)
from viglas.errors import FitError
from viglas.units import KB_EV_K, R_J_MOLK

T = np.array([500.0, 600, 700, 800, 900, 1000])


def test_arrhenius_recovers_ea_within_error_over_replicates():
    ea, a = 0.35, 1e-3
    z = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        d = a * np.exp(-ea / (KB_EV_K * T))
        err = 0.1 * d
        dn = d * np.exp(rng.normal(0, 0.1, len(T)))
        f = fit_arrhenius(T, dn, err)
        z.append((f.ea_eV - ea) / f.ea_err_eV)
    z = np.array(z)
    assert abs(z.mean()) < 0.2
    assert 0.8 < z.std() < 1.25
    assert np.mean(np.abs(z) < 2) > 0.9


def test_arrhenius_fields_predict_band_and_roundtrip(tmp_path):
    d = 1e-3 * np.exp(-0.3 / (KB_EV_K * T))
    f = fit_arrhenius(T, d, 0.05 * d)
    assert f.ea_eV == pytest.approx(0.3, abs=1e-9)
    assert f.unit == "cm2/s" and f.n_points == 6 and f.t_min_K == 500.0
    v, e = f.predict(300.0)
    assert v == pytest.approx(1e-3 * np.exp(-0.3 / (KB_EV_K * 300)), rel=1e-9)
    # band widens when extrapolating away from the data
    _, e_mid = f.predict(700.0)
    assert e / v > 3 * (e_mid / f.predict(700.0)[0])
    vv, ee = f.predict(np.array([300.0, 700.0]))
    assert vv.shape == (2,)
    dd = f.to_dict()
    json.dumps(dd)
    assert "d_300K_cm2_s" in dd
    g = ArrheniusFit.from_dict(dd)
    assert g.predict(300.0) == pytest.approx((v, e))
    assert np.asarray(g.cov).shape == (2, 2)
    assert plot_arrhenius(T, d, 0.05 * d, f, tmp_path / "a.png").exists()
    with pytest.raises(FitError):
        fit_arrhenius([600.0], [1e-6], [1e-7])
    with pytest.raises(FitError, match="positive"):
        fit_arrhenius(T, -d, 0.05 * d)


def test_vft_recovers_t0_and_aic_prefers_true_model(tmp_path):
    t = np.linspace(420, 1100, 10)
    rng = np.random.default_rng(3)
    y = 1e-2 * np.exp(-900.0 / (t - 250.0))
    yn = y * np.exp(rng.normal(0, 0.03, len(t)))
    v = fit_vft(t, yn, 0.03 * yn)
    assert abs(v.t0_K - 250) < 3 * v.t0_err_K
    assert abs(v.b_K - 900) < 3 * v.b_err_K
    a = fit_arrhenius(t, yn, 0.03 * yn)
    cmp = compare_models(a, v)
    assert cmp["preferred_aic"] == "vft" and cmp["delta_aic"] < -10
    w = VFTFit.from_dict(v.to_dict())
    assert w.predict(500.0) == pytest.approx(v.predict(500.0))
    with pytest.raises(FitError):
        v.predict(200.0)
    # Arrhenius data: AIC does not prefer VFT by much
    ya = 1e-3 * np.exp(-0.4 / (KB_EV_K * t)) * np.exp(rng.normal(0, 0.03, len(t)))
    try:
        va = fit_vft(t, ya, 0.03 * ya)
        assert compare_models(fit_arrhenius(t, ya, 0.03 * ya), va)["delta_aic"] > -4
    except FitError:
        pass
    assert plot_vft(t, yn, 0.03 * yn, v, tmp_path / "v.png", arrhenius=a).exists()


def _perc_data(seed, pc=0.2, t=1.7):
    rng = np.random.default_rng(seed)
    p = np.array([0.05, 0.1, 0.15, 0.22, 0.26, 0.3, 0.35, 0.4, 0.5, 0.6])
    s = np.where(p > pc, 5.0 * np.clip(p - pc, 0, None) ** t, 0.0)
    e = np.where(p > pc, 0.05 * s, 2e-4)
    return p, np.abs(s + rng.normal(0, e)), e


def test_percolation_recovers_pc_and_exponent(tmp_path):
    p, s, e = _perc_data(0)
    f = fit_percolation(p, s, e, seed=1, n_bootstrap=300)
    assert f.n_below == 3 and f.n_above == 7
    assert f.p_c_ci95[0] <= 0.2 <= f.p_c_ci95[1]
    assert f.t_ci95[0] <= 1.7 <= f.t_ci95[1]
    assert abs(f.p_c - 0.2) < 3 * f.p_c_err and abs(f.t - 1.7) < 3 * f.t_err
    assert f.p_c >= 0.15  # bounded below by the insulating compositions
    g = fit_percolation(p, s, e, seed=1, n_bootstrap=300)
    assert g.p_c_ci68 == f.p_c_ci68  # seeded
    assert PercolationFit.from_dict(f.to_dict()).predict(0.1) == 0.0
    assert plot_percolation(p, s, e, f, tmp_path / "p.png").exists()


def test_percolation_not_enough_points_above_threshold():
    p, s, e = _perc_data(0)
    keep = p < 0.27
    with pytest.raises(FitError, match="not enough points above threshold"):
        fit_percolation(p[keep], s[keep], e[keep])


def test_tg_two_line_fit(tmp_path):
    rng = np.random.default_rng(5)
    t = np.linspace(300, 1200, 46)
    tg = 720.0
    v = np.where(t < tg, 1000 + 0.02 * (t - tg), 1000 + 0.08 * (t - tg)) + rng.normal(0, 0.3, len(t))
    f = fit_tg(t, v)
    assert abs(f.tg_K - tg) < 3 * f.tg_err_K and f.tg_err_K < 30
    assert f.slope_liquid > f.slope_glass
    assert plot_tg(t, v, f, tmp_path / "tg.png").exists()
    with pytest.raises(FitError):
        fit_tg(t[:4], v[:4])


def test_gibbs_dimarzio_fit():
    dh, ds = 30000.0, 40.0
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    tg = dh / (ds + R_J_MOLK * np.log1p(-x))
    f = fit_gibbs_dimarzio(x, tg, 2.0 * np.ones_like(x))
    assert f.dh_J_mol == pytest.approx(dh, rel=1e-4) and f.ds_J_molK == pytest.approx(ds, rel=1e-4)
    assert f.predict(0.2)[0] == pytest.approx(tg[2], rel=1e-6)


def _chain_structure(bonded: bool):
    """Al-O chain along x across a 8 Å cell (wraps when bonded), plus Li and Cl."""
    cell = np.diag([8.0, 10.0, 10.0])
    if bonded:
        sym = ["Al", "O", "Al", "O"]
        pos = [[0, 5, 5], [2, 5, 5], [4, 5, 5], [6, 5, 5]]
    else:  # a gap: Al-O-Al with the last O 4 A away
        sym = ["Al", "O", "Al", "O"]
        pos = [[0, 5, 5], [1.8, 5, 5], [3.6, 5, 5], [3.6, 1.0, 5]]
    sym += ["Li", "Cl"]
    pos += [[4, 0.5, 0.5], [2, 8, 8]]
    return Atoms(sym, positions=pos, cell=cell, pbc=True)


def test_network_clusters_wrap_detection():
    a = _chain_structure(True)
    n = network_clusters(a)
    assert n.spans and n.wrap_dimension == 1 and n.largest_cluster_fraction == 1.0
    b = _chain_structure(False)
    m = network_clusters(b)
    assert not m.spans and m.cluster_sizes == [3, 1]
    # bridging: in the periodic chain every O bridges two Al
    assert bridging_oxygen(a)["bridging_O_fraction"] == 1.0
    bo = bridging_oxygen(b)
    assert bo["bridging_O_fraction"] == 0.5 and bo["free_O_fraction"] == 0.5
    assert bridging_oxygen(a)["tricluster_O_fraction"] == 0.0
    s = spanning_summary([0.1, 0.1, 0.3, 0.3], [False, True, True, True], [0.4, 0.6, 1.0, 0.9])
    assert s["spanning_probability"] == [0.5, 1.0]


def test_rdf_and_coordination_of_a_crystal():
    from ase.build import bulk

    a = bulk("NaCl", "rocksalt", a=5.64).repeat(3)
    r, g = rdf(a, "Na", "Cl", r_max=6.0, n_bins=120)
    assert abs(r[np.argmax(g)] - 2.82) < 0.06
    cn = coordination_numbers(a, "Na", "Cl", 3.2)
    assert cn["mean"] == 6.0 and cn["std"] == 0.0


def test_bridging_oxygen_counts_triclusters():
    """An O bonded to three formers is bridging and also an OM3 tricluster; one bonded
    to two is bridging only."""
    from ase import Atoms

    from viglas.analysis.structure import bridging_oxygen

    pos = [[5, 5, 5], [6.8, 5, 5], [4.1, 6.56, 5], [4.1, 3.44, 5],  # O + 3 Al at 1.8 A
           [12, 5, 5], [13.8, 5, 5], [10.2, 5, 5]]  # O + 2 Al
    a = Atoms("OAl3OAl2", positions=pos, cell=[20, 20, 20], pbc=True)
    bo = bridging_oxygen(a, ("Al",))
    assert bo["bridging_O_fraction"] == 1.0 and bo["tricluster_O_fraction"] == 0.5
    assert bo["n_O"] == 2
