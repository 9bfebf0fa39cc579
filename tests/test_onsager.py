"""Onsager coefficients, Haven ratio and transference numbers on walks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.analysis.onsager import _xcorr_msd, onsager_transport
from viglas.errors import AnalysisError


def _walk(rng, n_frames, n, d_A2_ps, dt_ps):
    step = rng.normal(0.0, np.sqrt(2 * d_A2_ps * dt_ps), size=(n_frames, n, 3))
    step[0] = 0.0
    return np.cumsum(step, axis=0)


def test_xcorr_msd_matches_the_direct_average():
    rng = np.random.default_rng(1)
    a = np.cumsum(rng.normal(size=(50, 3)), axis=0)
    b = np.cumsum(rng.normal(size=(50, 3)), axis=0)
    got = _xcorr_msd(a, b)
    for lag in (0, 1, 7, 30, 49):
        direct = np.mean([np.dot(a[t + lag] - a[t], b[t + lag] - b[t])
                          for t in range(50 - lag)])
        assert got[lag] == pytest.approx(direct, abs=1e-9)


def test_independent_ions_haven_one_and_transference_from_diffusivities():
    rng = np.random.default_rng(7)
    dt, nf, n_li, n_cl = 0.1, 4000, 16, 16
    d_li, d_cl = 0.05, 0.0125  # Å²/ps: cations 4x faster
    runs = [np.concatenate([_walk(rng, nf, n_li, d_li, dt), _walk(rng, nf, n_cl, d_cl, dt)],
                           axis=1) for _ in range(2)]
    species = ["Li"] * n_li + ["Cl"] * n_cl
    res = onsager_transport(runs, dt, species, {"Li": 1.0, "Cl": -1.0}, 600.0, 4000.0,
                            cation="Li", n_blocks=5)
    t_expect = d_li / (d_li + d_cl)  # equal numbers, |z| = 1
    assert abs(res.transference["Li"] - t_expect) < 3 * res.transference_err["Li"] + 0.02
    assert res.transference["Li"] + res.transference["Cl"] == pytest.approx(1.0)
    assert abs(res.haven_ratio - 1.0) < 3 * res.haven_ratio_err + 0.05
    assert abs(res.sigma_mS_cm - res.sigma_ne_mS_cm) < 3 * res.sigma_err_mS_cm
    # Nernst-Einstein by hand: sigma = e^2 N D / (V kB T) summed over species
    e, kb = 1.602176634e-19, 1.380649e-23
    ne = sum(n * d * 1e-8 for n, d in ((n_li, d_li), (n_cl, d_cl))) * e**2 / (
        4000e-30 * kb * 600.0) * 10.0
    assert res.sigma_ne_mS_cm == pytest.approx(ne, rel=0.1)
    assert res.sigma_ne_err_mS_cm < 0.1 * res.sigma_ne_mS_cm
    assert res.notes == []


def test_ion_pairs_carry_no_current():
    rng = np.random.default_rng(3)
    dt, nf, n = 0.1, 3000, 20
    li = _walk(rng, nf, n, 0.05, dt)
    cl = li + rng.normal(0.0, 0.05, size=li.shape)  # each Cl moves with its Li
    runs = [np.concatenate([li, cl], axis=1)]
    res = onsager_transport(runs, dt, ["Li"] * n + ["Cl"] * n, {"Li": 1, "Cl": -1}, 600.0,
                            4000.0, cation="Li", n_blocks=5)
    assert abs(res.sigma_mS_cm) < 0.05 * res.sigma_ne_mS_cm  # neutral pairs: no current
    assert res.sigma_ij_mS_cm["Li-Cl"] < 0  # z+ z- L+- < 0 for co-moving ions
    assert res.notes  # the collective conductivity is not resolved: said so


def test_bad_input():
    x = np.zeros((100, 2, 3))
    with pytest.raises(AnalysisError, match="charges"):
        onsager_transport([x], 0.1, ["Li", "Cl"], {"Li": 1}, 300, 1000)
    with pytest.raises(AnalysisError, match="cation"):
        onsager_transport([x], 0.1, ["Li", "Cl"], {"Li": 1, "Cl": -1}, 300, 1000, cation="Na")
    with pytest.raises(AnalysisError, match="n_blocks"):
        onsager_transport([x[:50]], 0.1, ["Li", "Cl"], {"Li": 1, "Cl": -1}, 300, 1000)
