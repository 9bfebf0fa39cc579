"""Arrhenius with a kink (e.g. across Tg): recovery, model choice, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.analysis.arrhenius import fit_arrhenius
from viglas.analysis.arrhenius_kink import KB_EV_K, fit_arrhenius_kink
from viglas.errors import FitError

T = np.array([300.0, 350.0, 400.0, 450.0, 500.0, 600.0, 700.0])


def _kinked(t, tk=420.0, eh=0.45, el=0.25, yk=1e-7):
    x, xk = 1 / t, 1 / tk
    return yk * np.exp(-np.where(x < xk, eh, el) * (x - xk) / KB_EV_K)


def test_recovers_kink_and_both_activation_energies():
    rng = np.random.default_rng(4)
    y = _kinked(T) * np.exp(rng.normal(0, 0.03, T.size))
    fk = fit_arrhenius_kink(T, y, 0.03 * y)
    assert fk.tk_K == pytest.approx(420.0, abs=3 * fk.tk_err_K + 10)
    assert fk.ea_high_eV == pytest.approx(0.45, abs=3 * fk.ea_high_err_eV + 0.02)
    assert fk.ea_low_eV == pytest.approx(0.25, abs=3 * fk.ea_low_err_eV + 0.02)
    fa = fit_arrhenius(T, y, 0.03 * y, quantity="D")
    assert fk.aic < fa.aic - 2.0  # the kink is what the data show
    v, e = fk.predict(303.15)
    assert v == pytest.approx(_kinked(np.array([303.15]))[0], rel=4 * e / v + 0.05)


def test_straight_arrhenius_data_do_not_prefer_a_kink():
    wins = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        y = 1e-3 * np.exp(-0.3 / (KB_EV_K * T)) * np.exp(rng.normal(0, 0.03, T.size))
        fa = fit_arrhenius(T, y, 0.03 * y, quantity="D")
        try:
            fk = fit_arrhenius_kink(T, y, 0.03 * y)
        except FitError:
            continue
        wins += fk.aic < fa.aic - 2.0
    assert wins <= 3  # the AIC margin rarely picks a kink that is not there


def test_bad_input():
    with pytest.raises(FitError, match="five or more"):
        fit_arrhenius_kink(T[:4], _kinked(T[:4]))
    with pytest.raises(FitError, match="positive"):
        fit_arrhenius_kink(T, -_kinked(T))


def test_summary_prefers_the_kink_and_uses_it_at_303K(tmp_path, monkeypatch):
    from viglas.workflows.documents import DiffusionDoc, MeltQuenchDoc, StructureDoc
    from viglas.workflows.makers import CompositionSummaryMaker

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(8)
    ts = [350.0, 400.0, 450.0, 500.0, 600.0, 700.0]
    runs = []
    for t in ts:
        for r in range(2):
            d = _kinked(np.array([t]))[0] * (1 + 0.02 * rng.normal())
            runs.append(DiffusionDoc(formula="LiAlCl2.5O0.75", t_K=t, replica=r, seed=r,
                                     species="Li", trajectory="/x.h5", d_cm2_s=d,
                                     d_err_cm2_s=0.02 * d, sigma_mS_cm=d * 1e9 / t,
                                     sigma_err_mS_cm=0.02 * d * 1e9 / t,
                                     number_density_per_cm3=1e22))
    glass = MeltQuenchDoc(formula="LiAlCl2.5O0.75", structure_path="unused", seed=0,
                          t_melt_K=1500, t_final_K=300, cool_rate_K_ps=100, pressure_GPa=0.0,
                          density_g_cm3=2.2, volume_A3=600.0)
    st = StructureDoc(formula="LiAlCl2.5O0.75", label="LACO", x=0.75, oxygen_fraction=0.231,
                      alkali={"Li": 1.0}, former={"Al": 1.0}, mobile_species=["Li"],
                      n_atoms=63, structure_path="unused", method="substitution",
                      density_g_cm3=2.2, seed=0, volume_A3=600.0,
                      counts={"Li": 12, "Al": 12, "Cl": 30, "O": 9})
    maker = CompositionSummaryMaker(structure_metrics=False, plots=False)
    doc = CompositionSummaryMaker.make.original(maker, st, glass, runs,
                                                calculator={"name": "ionic", "params": {}})
    assert doc.fits["preferred_model"] == "arrhenius_kink"
    assert doc.fits["d_arrhenius_kink"]["tk_K"] == pytest.approx(420.0, abs=30.0)
    assert doc.sigma_303K_source == "extrapolated"
    assert doc.sigma_303K_model == "arrhenius_kink"
    true = _kinked(np.array([303.15]))[0] * 1e9 / 303.15
    assert doc.sigma_303K_mS_cm == pytest.approx(true, rel=0.25)
