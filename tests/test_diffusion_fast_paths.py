"""The fast paths of the D estimator give the numbers of the plain formulas (issue 15
item 4): the compiled covariance bases, the batched nested-window GLS fits, the batched
jitter search of ``gls_line`` and the vectorised start rule of ``diffusive_window``."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.analysis import diffusion as dif
from viglas.analysis import diffusion_coefficient, msd_fft
from viglas.analysis.msd import sample_lags


def _basis_reference(lags, t):
    """The covariance bases with numpy expressions (the former implementation)."""
    covs = dif._rw_cov_basis_numpy(np.asarray(lags, dtype=float), float(t))
    lags = np.asarray(lags, dtype=float)
    for i, j in zip(*np.where(lags[:, None] + lags[None, :] > t - 1)):
        mi, mj = int(lags[i]), int(lags[j])
        delta = np.arange(-mj + 1, mi, dtype=float)
        c = np.minimum(t - mi - 1, t - mj - 1 - delta) - np.maximum(0.0, -delta) + 1
        o = np.minimum(mi, delta + mj) - np.maximum(0.0, delta)
        cm = np.maximum(c, 0)
        norm = (t - mi) * (t - mj)
        covs[0, i, j] = np.sum(cm * o) / norm
        covs[1, i, j] = np.sum(cm * (o * o)) / norm
    return covs


def test_compiled_covariance_bases_equal_the_numpy_formulas_bit_for_bit():
    rng = np.random.default_rng(0)
    cases = [(sample_lags(t)[sample_lags(t) <= t // 2], t) for t in (1000, 10000, 100000)]
    for t in (5, 12, 40, 333, 2000, 10**6):
        for hi in (t, max(2, t // 2)):
            cases.append((np.unique(rng.integers(1, hi, int(rng.integers(1, 50)))), t))
    for lags, t in cases:
        lin, quad = dif._rw_cov_basis.__wrapped__(tuple(np.asarray(lags, float).tolist()), t)
        ref = _basis_reference(lags, t)
        assert np.array_equal(lin, ref[0]) and np.array_equal(quad, ref[1]), (t, len(lags))


def test_grid_bases_are_submatrices_of_one_computation():
    rng = np.random.default_rng(1)
    m = msd_fft(np.cumsum(rng.normal(0, 0.1, (1500, 6, 3)), axis=0), 10.0, charge_msd=False)
    rows = np.array([3, 7, 8, 20, 41, 60])
    lags = m.sample_lag[rows]
    (lin, quad), = dif._grid_bases(m, lags)
    ref = dif._rw_cov_basis.__wrapped__(tuple(lags.astype(float).tolist()), 1500)
    assert np.array_equal(lin, ref[0]) and np.array_equal(quad, ref[1])
    # lags off the sample grid: computed directly
    (lin2, _), = dif._grid_bases(m, np.array([2.5, 9.0]))
    assert lin2.shape == (2, 2)


def _jittered_loop(c):
    diag = np.diag_indices(len(c))
    base = c[diag].copy()
    for jitter in dif._JITTERS:
        c[diag] = base + float(jitter)
        try:
            np.linalg.cholesky(c)
            return c
        except np.linalg.LinAlgError:
            pass
    raise AssertionError("no jitter worked")


@pytest.mark.parametrize("shift", [0.0, -1e-9, -1e-5, -0.5, -50.0])
def test_batched_jitter_search_picks_the_jitter_of_the_loop(shift):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(30, 30))
    c = a @ a.T / 30
    c -= (np.linalg.eigvalsh(c)[0] - shift) * np.eye(30)  # smallest eigenvalue = shift
    assert np.array_equal(dif._jittered(c.copy()), _jittered_loop(c.copy()))


def test_nested_window_fits_equal_one_gls_line_per_window():
    rng = np.random.default_rng(3)
    k = 40
    t = np.geomspace(10.0, 5000.0, k)
    lags = np.round(t / 10.0)
    cov = dif.random_walk_msd_covariance(lags, 1001, 0.06, 0.01)
    y = 0.06 * t / 10.0 + rng.normal(0, 0.05, k)
    firsts = np.array([0, 3, 9, 20, 37, 38])
    rows = dif._gls_suffix_slopes(t, y, cov, firsts)
    for f, row in zip(firsts, rows):
        if k - f < 3:
            assert np.all(np.isnan(row))
            continue
        _, _, w = dif.gls_line(t[f:], y[f:], cov[f:, f:])
        assert np.all(row[:f] == 0.0)
        np.testing.assert_allclose(row[f:], w[0], rtol=1e-9, atol=1e-12 * np.abs(w[0]).max())


def _first_stable_loop(t, ok, cand, span):
    for k in cand:
        rest = cand[(cand >= k) & (t[cand] <= span * t[k] + 1e-9)]
        if ok[rest].all():
            return int(k)
    return None


def test_vectorised_start_rule_equals_the_loop():
    rng = np.random.default_rng(4)
    for _ in range(300):
        n = int(rng.integers(0, 60))
        t = np.cumsum(rng.uniform(0.5, 30.0, n))
        ok = rng.random(n) < rng.uniform(0.3, 1.0)
        cand = np.where(rng.random(n) < 0.8)[0]
        span = float(rng.choice([0.5, 1.0, 3.0, 10.0]))
        assert dif._first_stable(t, ok, cand, span) == _first_stable_loop(t, ok, cand, span)


def test_estimator_is_deterministic_and_independent_of_the_caches():
    """A second call (caches warm) gives the very same result as the first."""
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(0, np.sqrt(2e-4 * 10), (3000, 40, 3)), axis=0)
    m = msd_fft(x, 10.0, charge_msd=False)
    dif._rw_cov_basis.cache_clear()
    a = diffusion_coefficient(m).to_dict()
    b = diffusion_coefficient(m).to_dict()
    assert a == b


def test_msd_does_not_depend_on_the_fft_block_size():
    """msd_fft's default block (4 particles) gives the very numbers of any other."""
    rng = np.random.default_rng(6)
    x = np.cumsum(rng.normal(0, 0.1, (701, 11, 3)), axis=0)
    keys = ("msd_A2", "per_particle_A2", "var_sq_A4", "mean_sq_A2", "charge_msd_A2", "ngp")
    ref = msd_fft(x, 10.0, block=16)
    for block in (1, 3, 4, 64):
        m = msd_fft(x, 10.0, block=block)
        for k in keys:
            assert np.array_equal(getattr(m, k), getattr(ref, k), equal_nan=True), (block, k)
