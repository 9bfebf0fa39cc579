"""Tg at laboratory cooling rates: recovery of known laws, honest errors, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.analysis.tg_rate import LAB_RATE_K_PS, fit_tg_rate, k_min_to_k_ps
from viglas.errors import FitError


def _vkb(q, t0, b, lna):
    return t0 + b / (lna - np.log(q))


def test_lab_rate_units():
    assert LAB_RATE_K_PS == pytest.approx(1.0 / 6.0 * 1e-12)
    assert k_min_to_k_ps(600.0) == pytest.approx(1e-11)


def test_arrhenius_law_recovers_the_extrapolation_and_covers_it():
    # 1/Tg = a - b ln q with Tg(lab) = 250 K and Tg(10 K/ps) = 400 K
    lnq_lab, lnq_md = np.log(LAB_RATE_K_PS), np.log(10.0)
    b = (1 / 250 - 1 / 400) / (lnq_md - lnq_lab)
    a = 1 / 400 + b * lnq_md
    q = np.array([1.0, 3.0, 10.0, 30.0, 100.0])
    true = 1.0 / (a - b * np.log(q))
    rng = np.random.default_rng(0)
    z = []
    for _ in range(200):
        tg = true + rng.normal(0, 3.0, size=q.size)
        fit = fit_tg_rate(q, tg, np.full(q.size, 3.0), law="arrhenius")
        v, e = fit.lab()
        z.append((v - 250.0) / e)
    z = np.array(z)
    assert abs(np.mean(z)) < 0.25 and 0.8 < np.std(z) < 1.25
    noiseless = fit_tg_rate(q, true, np.full(q.size, 3.0), law="arrhenius")
    assert noiseless.lab()[0] == pytest.approx(250.0, rel=1e-9)
    # the extrapolation over ~13 decades is much less certain than each point
    assert noiseless.lab()[1] > 3.0


def test_vkb_law_with_four_rates_recovers_t0_and_lab_tg():
    q = np.array([0.3, 1.0, 3.0, 10.0, 30.0, 100.0])
    tg = _vkb(q, 180.0, 2500.0, 12.0)
    fit = fit_tg_rate(q, tg, np.full(q.size, 0.5))
    assert fit.law == "vkb"
    assert fit.params[0] == pytest.approx(180.0, rel=1e-3)
    v, e = fit.lab()
    assert v == pytest.approx(_vkb(LAB_RATE_K_PS, 180.0, 2500.0, 12.0), rel=1e-3)
    d = fit.to_dict()
    assert d["param_names"] == ["T0_K", "B_K", "lnA"] and d["tg_lab_K"] == pytest.approx(v)
    # auto with three rates falls back to the two-parameter law
    assert fit_tg_rate(q[:3], tg[:3], np.full(3, 0.5)).law == "arrhenius"


def test_bad_input_names_the_field():
    with pytest.raises(FitError, match="q_K_ps"):
        fit_tg_rate([1.0], [300.0])
    with pytest.raises(FitError, match="q_K_ps"):
        fit_tg_rate([1.0, -2.0], [300.0, 310.0])
    with pytest.raises(FitError, match="tg_err_K"):
        fit_tg_rate([1.0, 2.0], [300.0, 310.0], [1.0, 0.0])
    with pytest.raises(FitError, match="tg_err_K"):
        fit_tg_rate([1.0, 2.0], [300.0, 310.0])  # two points, no errors: no error bar
    with pytest.raises(FitError, match="four or more"):
        fit_tg_rate([1.0, 2.0, 4.0], [300.0, 310.0, 320.0], law="vkb")
    with pytest.raises(FitError, match="law"):
        fit_tg_rate([1.0, 2.0, 4.0], [300.0, 310.0, 320.0], law="magic")
