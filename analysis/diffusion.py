"""Self-diffusion coefficient from the MSD with a calibrated uncertainty.

Estimator
---------
In the diffusive window the MSD is a line, ``MSD(t) = 2 d D t + c`` (d = 3). The
time-averaged MSD at different lags is strongly correlated, so ordinary least
squares gives far too small error bars. We fit by **generalised least squares**
with the MSD covariance, the approach of kinisi (McCluskey, Coles, Morgan,
*J. Chem. Theory Comput.* 20, 1 (2024), doi:10.1021/acs.jctc.4c01249) and of
Bullerjahn, von Bülow, Hummer, *J. Chem. Phys.* 153, 024116 (2020):

1. start: kinisi's covariance form ``Sigma_ij = v_i n_i / n_j`` (``t_i <= t_j``) with
   ``v_i = Var(|Δr(t_i)|^2) / n_i`` measured over ``n_i = N floor((T-1)/i)``
   non-overlapping displacements;
2. then (iterated) the *exact* covariance of the time-averaged MSD of a walk with
   independent increments (:func:`random_walk_msd_covariance`): two squared
   displacements whose windows share O steps have covariance
   ``kappa O + (2/d) sigma2^2 O^2``, with ``sigma2 = 2 d D dt`` from the current fit
   and the **non-Gaussian part** ``kappa`` (excess fourth moment per step; 0 for a
   Gaussian walk, large for hopping) measured from ``Var(|Δr|^2)`` at the window lags.
   Without ``kappa`` the error bars of hopping ions come out ~1.5x too small.

Two errors are computed: the GLS model error ``sqrt[(X^T Sigma^-1 X)^-1]_00 / (2d)``,
and a model-free one: the GLS estimate is a fixed linear functional of the mean MSD,
``D = mean_i w . m_i / (2d)``, so its standard error is ``std(D_i) / sqrt(N)`` over
the per-particle values ``D_i`` (particles and replicas are independent samples;
this also captures dynamic heterogeneity between ions). The reported
``d_err_cm2_s`` is the larger of the two (``err_method``), or the model error with
fewer than ``min_particles_resampling`` particles. The seeded replicate study in
``tests/test_analysis_diffusion.py`` checks that the z-scores ``(D - D_true)/err``
have a standard deviation within 0.8–1.25 for Gaussian random walks and for
lattice hopping (2.5 Å jumps at Poisson times).

The number of effective jumps ``n_eff = N * MSD(t_total) / a^2`` and the empirical
relative-error floor of He, Zhu, Epstein, Mo, *npj Comput. Mater.* 4, 18 (2018),
``RSD = 3.43 / sqrt(n_eff) + 0.04``, are reported alongside for comparison.

Window (automatic)
------------------
The window ends at ``end_fraction`` (1/2) of the shortest replica. Its start is chosen
in two steps, so that it is unbiased when the ions' displacements are correlated
(back-hopping: an ion that jumped returns to its old site with probability
``p_back`` within a correlation time ``tau``; the MSD then has a steeper short-time
part ``6 D_short t`` that bends over to ``6 D t`` only after several ``tau``).

1. *End of the ballistic/caged part* (:func:`diffusive_window`): the earliest lag
   from which the local log–log slope of the MSD (with or without the long-time
   offset ``c``) stays within ``1 ± slope_tol`` over a factor ``span`` (10) in lag.
   This only looks at a decade of lags: at long lags the local slope is too noisy
   for a fixed tolerance (that made the start of plain random walks jump to tens of
   ps in ~10 % of replicas).
2. *Settled start* (:func:`_settled_start`): ``n_settle`` (10) log-spaced candidate
   starts ``s_k`` between step 1 and a quarter of the window end are fitted on one
   common set of lags. The windows are nested, so ``D(s_k) - D(s_j)`` is far less
   noisy than either value; its standard deviation follows from the GLS weights
   (fixed linear functionals of the MSD) with the model covariance, and, with >= 10
   ions, from the spread of the per-particle differences (the larger is used). The
   settled start is the earliest ``s_k`` whose D agrees with the D of each of the
   next three candidates (a factor ~10 in time) within ``settle_z`` (3) such
   standard deviations: from there on the data show no dependence of D on the
   start. Comparing only with the next candidates keeps the noisy longest windows,
   whose MSD fluctuates most, from pushing the start of plain random walks late. A
   correlated regime too weak to be detected leaves a bias of up to a few standard
   deviations of the difference at that point; it decays roughly exponentially with
   the start, so the fit starts ``settle_factor`` (2) times later (at most at the
   middle of the window).
3. *Cross-fitting*: with >= 2 x ``min_particles_resampling`` ions, steps 1–2 run on
   each half of the ions (even / odd), and the start chosen on one half is used to
   fit the other; D is the mean of the two halves and its error combines theirs.
   The choice of the window is then independent of the data it is applied to.
   Without it, replicas whose late MSD happened to fluctuate low had their start
   pushed late by the test and then used that same low part (selection bias:
   sd(z) 1.3 and 95 % coverage 0.83 for p_back = 0.7 in the test below, 0.88 and
   0.95 with cross-fitting).

   The factor 2 costs ~10–20 % in the error bar of hopping ions (their error is set
   by the number of jumps and depends little on the start) and ~40 % for a Gaussian
   walk whose first lags are already diffusive.

This is a data-driven version of what kinisi leaves to the user (the start of the
diffusive regime, ``dt_skip``; McCluskey, Coles, Morgan, *J. Chem. Theory Comput.*,
doi:10.1021/acs.jctc.4c01249, the kinisi estimator) and follows the advice there and
in He et al. (2018) to fit only where the MSD is linear. ``tests/test_estimator_windows.py`` checks on
seeded replicas (Gaussian walks, Poisson hops of 2.5 Å, caged rattling with rare hops,
anti-correlated back-hopping with p_back 0.5–0.7 and correlation times 1–5 ps) that
the bias of D is <= 2 %, that sd(z) of ``z = (D - D_true)/err`` is within 0.85–1.2,
that the 95 % interval covers >= 90 % of replicas, and that <= 2 % of random-walk
replicas get an error bar above twice the median. A scan of D against the fit
start (``scan_*``) shows whether the choice matters.

No diffusive regime
-------------------
``diffusive`` is False (and ``warning`` says why) when step 1 finds no linear part,
when the log–log slope of ``MSD - offset`` over the window is outside
``1 ± diffusive_slope_tol``, or when there are fewer than ``min_jumps`` effective
jumps. D is then reported as an *estimate* (``d_estimate``: ``"upper"`` for a
sub-diffusive or nearly static MSD, whose slope still falls; ``"lower"`` for a
super-diffusive one, still rising) and its error is at least the He et al. floor.

Units: Å, fs inside; D in cm²/s in the result (1 Å²/fs = 0.1 cm²/s).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viglas.analysis._records import DictRecord
from viglas.errors import AnalysisError
from viglas.units import A2_FS_TO_CM2_S

from .msd import MSDResult

__all__ = ["DiffusionResult", "diffusion_coefficient", "gls_line", "diffusive_window",
           "he2018_rsd", "collective_diffusion"]


def he2018_rsd(n_eff: float) -> float:
    """Empirical relative standard deviation of D, He et al. (2018): 3.43/sqrt(N_eff)+0.04."""
    if not n_eff > 0:
        return float("inf")
    return 3.43 / np.sqrt(n_eff) + 0.04


def _kinisi_covariance(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sigma_ij = v_i n_i / n_j for i <= j (lags ascending), symmetrised."""
    lo, hi = _lo_hi(len(v))
    return v[lo] * n[lo] / n[hi]


@functools.lru_cache(maxsize=32)
def _lo_hi(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Index grids ``min(i, j)`` and ``max(i, j)`` of a k x k matrix (cached)."""
    a = np.arange(k)
    return np.minimum.outer(a, a), np.maximum.outer(a, a)


def random_walk_msd_covariance(lags: np.ndarray, n_frames: int, sigma2: float, kappa: float,
                               dimension: int = 3) -> np.ndarray:
    """Exact covariance of the time-averaged MSD of one particle with iid increments.

    For a walk of ``n_frames`` frames whose per-frame increments ``u`` have
    ``E|u|^2 = sigma2`` (Å²) and excess fourth moment
    ``kappa = E|u|^4 - (1 + 2/d) sigma2^2`` (Å⁴; 0 for a Gaussian walk, > 0 for
    hopping), two squared displacements whose windows share ``O`` increments have
    covariance ``Var|X_O|^2 = kappa O + (2/d) sigma2^2 O^2``. Summing this over all
    pairs of time origins (piecewise-polynomial sums, exact) gives
    ``Cov[MSD(m), MSD(m')]`` for all lags (frames) in ``lags``; Å⁴.
    """
    lags = np.asarray(lags, dtype=float)
    lin, quad = _rw_cov_basis(tuple(lags.tolist()), int(n_frames))
    return kappa * lin + (2.0 / dimension * sigma2**2) * quad


@functools.lru_cache(maxsize=64)
def _rw_cov_basis(lags: tuple, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The covariance of :func:`random_walk_msd_covariance` is ``kappa A + b B``
    (linear in kappa and b = (2/d) sigma2^2); ``(A, B)`` for these lags, cached."""
    lags = np.asarray(lags, dtype=float)
    t = float(n_frames)
    k = len(lags)
    kern = _basis_kernel()
    if kern is not None:  # the same elementwise formulas, compiled (no temporaries)
        covs = np.empty((2, k, k))
        kern(lags, t, covs)
    else:  # pragma: no cover - numba is a dependency
        covs = _rw_cov_basis_numpy(lags, t)
    # windows longer than half the run: the count c(delta) is clipped, not polynomial
    bad = np.where(lags[:, None] + lags[None, :] > t - 1)
    for i, j in zip(*bad):
        mi, mj = int(lags[i]), int(lags[j])
        delta = np.arange(-mj + 1, mi, dtype=float)
        c = np.minimum(t - mi - 1, t - mj - 1 - delta) - np.maximum(0.0, -delta) + 1
        o = np.minimum(mi, delta + mj) - np.maximum(0.0, delta)
        cm = np.maximum(c, 0)
        norm = (t - mi) * (t - mj)
        covs[0, i, j] = np.sum(cm * o) / norm
        covs[1, i, j] = np.sum(cm * (o * o)) / norm
    out = []
    for cov in (covs[0].copy(), covs[1].copy()):
        cov.setflags(write=False)
        out.append(cov)
    return out[0], out[1]


def _rw_cov_basis_numpy(lags: np.ndarray, t: float) -> np.ndarray:
    """The bases of :func:`_rw_cov_basis` (before the clipped long-window pairs are
    redone), as numpy expressions: (2, k, k)."""
    k = len(lags)
    m = np.repeat(lags, k)
    mp = np.tile(lags, k)
    # both bases at once (leading axis: A, B): p = c*(kappa*o + b*o*o) is c*o for
    # (kappa, b) = (1, 0) and c*(o*o) for (0, 1), the same floating-point values

    def p(delta):
        c = np.maximum(np.minimum(t - m - 1, t - mp - 1 - delta) - np.maximum(0.0, -delta) + 1,
                       0.0)
        o = np.minimum(m, delta + mp) - np.maximum(0.0, delta)
        return np.stack([c * o, c * (o * o)])

    x1 = np.minimum(0.0, m - mp)
    x2 = np.maximum(0.0, m - mp)
    total = np.zeros((2, len(m)))
    for lo, hi in ((-mp + 1, x1), (x1, x2), (x2, m)):
        n = hi - lo
        pts = [p(lo + j) for j in range(4)]
        direct = sum(np.where(j < n, pts[j], 0.0) for j in range(4))
        d1 = [pts[1] - pts[0], pts[2] - pts[1], pts[3] - pts[2]]
        d2 = [d1[1] - d1[0], d1[2] - d1[1]]
        d3 = d2[1] - d2[0]
        nn = np.maximum(n, 0.0)
        formula = (nn * pts[0] + nn * (nn - 1) / 2 * d1[0]
                   + nn * (nn - 1) * (nn - 2) / 6 * d2[0]
                   + nn * (nn - 1) * (nn - 2) * (nn - 3) / 24 * d3)
        total += np.where(n >= 4, formula, np.where(n > 0, direct, 0.0))
    return (total / ((t - m) * (t - mp))).reshape(2, k, k)


_BASIS: list = []


def _basis_kernel():
    """The compiled form of :func:`_rw_cov_basis_numpy` (numba, cached on disk), or None."""
    if not _BASIS:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency
            _BASIS.append(None)
        else:
            _BASIS.append(_build_basis_kernel(numba))
    return _BASIS[0]


def _build_basis_kernel(numba):
    @numba.njit(cache=True, nogil=True)
    def basis(lags, t, out):
        """out[0/1, i, j]: the sums of :func:`_rw_cov_basis_numpy`, pair by pair, with
        the operations of its numpy expressions in the same order (IEEE, no fused
        multiply-add), so the same values. ``a*``/``b*``: ``p(lo + j)`` of that
        function for the two bases, ``c*o`` and ``c*(o*o)``."""
        k = lags.shape[0]
        for i in range(k):
            m = lags[i]
            for j in range(k):
                mp = lags[j]
                dm = m - mp
                x1 = dm if dm < 0.0 else 0.0
                x2 = dm if dm > 0.0 else 0.0
                tot_a = 0.0
                tot_b = 0.0
                for r in range(3):
                    if r == 0:
                        lo = -mp + 1
                        hi = x1
                    elif r == 1:
                        lo = x1
                        hi = x2
                    else:
                        lo = x2
                        hi = m
                    n = hi - lo
                    a0 = a1 = a2 = a3 = 0.0
                    b0 = b1 = b2 = b3 = 0.0
                    for q in range(4):
                        delta = lo + q
                        u = t - mp - 1 - delta
                        v = t - m - 1
                        nd = -delta
                        c = (v if v <= u else u) - (nd if nd > 0.0 else 0.0) + 1
                        c = c if c > 0.0 else 0.0
                        e = delta + mp
                        o = (m if m <= e else e) - (delta if delta > 0.0 else 0.0)
                        pa = c * o
                        pb = c * (o * o)
                        if q == 0:
                            a0 = pa
                            b0 = pb
                        elif q == 1:
                            a1 = pa
                            b1 = pb
                        elif q == 2:
                            a2 = pa
                            b2 = pb
                        else:
                            a3 = pa
                            b3 = pb
                    if n >= 4:
                        nn = n
                        f1 = nn * (nn - 1) / 2
                        f2 = nn * (nn - 1) * (nn - 2) / 6
                        f3 = nn * (nn - 1) * (nn - 2) * (nn - 3) / 24
                        da0 = a1 - a0
                        da1 = a2 - a1
                        da2 = a3 - a2
                        dda0 = da1 - da0
                        dda1 = da2 - da1
                        sa = nn * a0 + f1 * da0 + f2 * dda0 + f3 * (dda1 - dda0)
                        db0 = b1 - b0
                        db1 = b2 - b1
                        db2 = b3 - b2
                        ddb0 = db1 - db0
                        ddb1 = db2 - db1
                        sb = nn * b0 + f1 * db0 + f2 * ddb0 + f3 * (ddb1 - ddb0)
                    elif n > 0:  # 0 + p0 + (p1 if n > 1) + (p2 if n > 2) + 0
                        sa = 0.0 + a0
                        sb = 0.0 + b0
                        sa = sa + (a1 if n > 1 else 0.0)
                        sb = sb + (b1 if n > 1 else 0.0)
                        sa = sa + (a2 if n > 2 else 0.0)
                        sb = sb + (b2 if n > 2 else 0.0)
                        sa = sa + 0.0
                        sb = sb + 0.0
                    else:
                        sa = 0.0
                        sb = 0.0
                    tot_a += sa
                    tot_b += sb
                norm = (t - m) * (t - mp)
                out[0, i, j] = tot_a / norm
                out[1, i, j] = tot_b / norm

    return basis


def _grid_bases(msd: MSDResult, lags: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(A, B)`` of :func:`_rw_cov_basis` at ``lags`` for every replica of ``msd``.

    Every entry of the bases depends only on its own pair of lags and the run length,
    so when ``lags`` are sample lags of ``msd`` the bases are taken from one cached
    computation on the sample lags up to the largest one asked (sub-matrices: the very
    same numbers as a computation on ``lags`` alone, without recomputing them for every
    fit window of the estimator)."""
    lags = np.asarray(lags)
    grid = np.asarray(msd.sample_lag)
    k = len(lags)
    pos = np.searchsorted(grid, lags) if k else np.zeros(0, dtype=int)
    if k == 0 or pos[-1] >= len(grid) or not np.array_equal(grid[pos], lags) \
            or np.any(np.diff(pos) <= 0):
        key = tuple(np.asarray(lags, dtype=float).tolist())
        return [_rw_cov_basis(key, int(nf)) for nf in msd.n_frames]
    key = tuple(grid[:pos[-1] + 1].astype(float).tolist())
    ix = np.ix_(pos, pos)
    out = []
    for nf in msd.n_frames:
        lin, quad = _rw_cov_basis(key, int(nf))
        out.append((lin[ix], quad[ix]))
    return out


# the jitters tried on the diagonal of a scaled covariance, in order: 1e-10 times 100^k,
# the very floats of the former loop (jitter *= 100)
_JITTERS = [1e-10]
for _ in range(7):
    _JITTERS.append(_JITTERS[-1] * 100)
_JITTERS = np.array(_JITTERS)


def _cholesky_ok_batch():
    """numpy's own Cholesky gufunc (the one behind ``np.linalg.cholesky``), which marks
    a failed factorisation with NaN instead of raising; None if it is not there."""
    try:
        from numpy.linalg import _umath_linalg

        return _umath_linalg.cholesky_lo
    except (ImportError, AttributeError):  # pragma: no cover - other numpy layouts
        return None


_CHOL_LO = _cholesky_ok_batch()


def _jittered(c: np.ndarray) -> np.ndarray:
    """``c + jitter * I`` with the smallest jitter of :data:`_JITTERS` for which
    ``np.linalg.cholesky`` succeeds (``c`` is modified in place and returned).

    The first jitter is tried alone and, if it fails, all the others in one batched
    call of numpy's Cholesky kernel (the same LAPACK factorisation per matrix as
    ``np.linalg.cholesky``, so the same one succeeds first); without that kernel, or
    with non-finite entries, one ``np.linalg.cholesky`` per jitter as before. Raises
    AnalysisError if none works.
    """
    diag = np.diag_indices(len(c))
    base = c[diag].copy()
    if _CHOL_LO is not None and np.all(np.isfinite(c)):
        # the first jitter alone (enough for most model covariances), then the others
        # in one batch (the kinisi-form start covariance typically needs 1e0-1e2)
        for first, last in ((0, 1), (1, len(_JITTERS))):
            stack = np.repeat(c[None], last - first, axis=0)
            stack[:, diag[0], diag[1]] = base[None, :] + _JITTERS[first:last, None]  # same sums
            with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
                fac = _CHOL_LO(stack, signature="d->d")
            good = ~np.isnan(fac).any(axis=(1, 2))
            if good.any():
                c[diag] = stack[int(np.argmax(good))][diag]
                return c
        raise AnalysisError("MSD covariance is not positive definite", field="msd", value="cov")
    for jitter in _JITTERS:  # numpy, not scipy.linalg: its wrappers cost more than these tiny solves
        c[diag] = base + float(jitter)  # = c + jitter * I, the same values
        try:
            np.linalg.cholesky(c)
            return c
        except np.linalg.LinAlgError:
            pass
    raise AnalysisError("MSD covariance is not positive definite", field="msd", value="cov")


def gls_line(t: np.ndarray, y: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GLS fit of ``y = a t + b`` with covariance ``cov``.

    Returns ``(beta=[a, b], beta_cov (2x2), w)`` with ``w`` (2, K) the rows such that
    ``beta = w @ y``.
    """
    x = np.empty((len(t), 2))
    x[:, 0] = t
    x[:, 1] = 1.0
    c = np.asarray(cov, dtype=float)
    scale = np.mean(np.diag(c))
    if not np.isfinite(scale) or scale <= 0:
        raise AnalysisError("MSD covariance is degenerate (zero variance)", field="msd",
                            value="zero variance", hint="is the species moving at all?")
    c = c / scale
    c = _jittered(c)
    cix = np.linalg.solve(c, x)
    a = x.T @ cix
    ainv = np.linalg.inv(a)
    w = ainv @ cix.T
    beta = w @ y
    return beta, ainv * scale, w


def _gls_suffix_slopes(t: np.ndarray, y: np.ndarray, cov: np.ndarray,
                       firsts: np.ndarray) -> np.ndarray:
    """Slope rows of :func:`gls_line` on the nested windows ``t[f:]`` for ``f`` in ``firsts``.

    Row ``a`` holds ``w[0]`` of ``gls_line(t[f:], y[f:], cov[f:, f:])`` at the
    positions ``f:`` and 0 before (NaN where fewer than 3 lags remain). All windows are
    solved in one batched call: window ``a`` is the block matrix ``diag(I, C_a)`` with
    ``C_a`` the same scaled and jittered sub-covariance as in :func:`gls_line`, and the
    design rows before ``f`` are zero, so the solution is ``gls_line``'s up to rounding
    (a few ulp). Falls back to one :func:`gls_line` per window when the batch needs more
    jitter or a covariance is degenerate (same results and errors as before).
    """
    kk = len(t)
    firsts = np.asarray(firsts, dtype=np.int64)
    out = np.zeros((len(firsts), kk))
    valid = kk - firsts >= 3
    out[~valid] = np.nan
    fv = firsts[valid]
    if len(fv) == 0:
        return out
    c = np.asarray(cov, dtype=float)
    dg = np.diag(c)
    # gls_line's scale of each window: the mean of its diagonal (same reduction)
    scales = np.array([np.mean(dg[f:]) for f in fv])
    ok = (_CHOL_LO is not None and np.all(np.isfinite(scales)) and np.all(scales > 0)
          and np.all(np.isfinite(c)))
    if ok:
        nb = len(fv)
        m = np.zeros((nb, kk, kk))
        x = np.zeros((nb, kk, 2))
        ar = np.arange(kk)
        for b, f in enumerate(fv):
            sub = c[f:, f:] / scales[b]
            m[b, f:, f:] = sub
            m[b, ar[f:], ar[f:]] = np.diag(sub) + 1e-10
            m[b, ar[:f], ar[:f]] = 1.0
            x[b, f:, 0] = t[f:]
            x[b, f:, 1] = 1.0
        with np.errstate(invalid="ignore", over="ignore", divide="ignore", under="ignore"):
            fac = _CHOL_LO(m, signature="d->d")
        redo = np.isnan(fac).any(axis=(1, 2))  # these need more jitter: gls_line
        ok = not redo.all()
    if not ok:  # degenerate, non-finite or needing more jitter: gls_line, window by window
        for a in np.where(valid)[0]:
            f = firsts[a]
            _, _, w = gls_line(t[f:], y[f:], c[f:, f:])
            out[a, f:] = w[0]
        return out
    if redo.any():
        m[redo] = np.eye(kk)  # solved below by gls_line instead
    cix = np.linalg.solve(m, x)
    a2 = np.matmul(np.swapaxes(x, 1, 2), cix)
    ainv = np.linalg.inv(a2)
    w = np.matmul(ainv, np.swapaxes(cix, 1, 2))  # (nb, 2, kk)
    rows = w[:, 0, :]
    for b, f in enumerate(fv):
        rows[b, :f] = 0.0
        if redo[b]:
            _, _, wb = gls_line(t[f:], y[f:], c[f:, f:])
            rows[b] = 0.0
            rows[b, f:] = wb[0]
    out[valid] = rows
    return out


def _local_slopes(t: np.ndarray, y: np.ndarray, width: float = 3.0) -> np.ndarray:
    """d ln y / d ln t by a least-squares line over [t_k, width * t_k] (nan if < 2 pts)."""
    lt, ly = np.log(t), np.log(np.maximum(y, 1e-300))
    m = (t[None, :] >= t[:, None]) & (t[None, :] <= width * t[:, None]) & np.isfinite(ly)[None, :]
    lyz = np.where(np.isfinite(ly), ly, 0.0)[None, :]
    n = m.sum(axis=1).astype(float)
    sx = (m * lt).sum(axis=1)
    sy = (m * lyz).sum(axis=1)
    sxx = (m * lt * lt).sum(axis=1)
    sxy = (m * lt * lyz).sum(axis=1)
    det = n * sxx - sx**2
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (n * sxy - sx * sy) / det
    out[(n < 2) | (np.abs(det) < 1e-14) | ~np.isfinite(ly)] = np.nan
    return out


def _first_stable(t: np.ndarray, ok: np.ndarray, cand: np.ndarray, span: float) -> int | None:
    """The first candidate ``k`` (indices into the ascending times ``t``, ascending)
    such that ``ok`` holds at every candidate from ``k`` up to ``span * t[k]``
    (``+ 1e-9``), or None. Those candidates are a contiguous run of ``cand``, so the
    failures in it are counted with one prefix sum (the former loop over ``k`` tested
    ``ok[cand[(cand >= k) & (t[cand] <= span * t[k] + 1e-9)]].all()`` one by one)."""
    if len(cand) == 0:
        return None
    tc = t[cand]
    upto = np.searchsorted(tc, span * tc + 1e-9, side="right")
    nbad = np.concatenate(([0], np.cumsum(~ok[cand])))
    pos = np.arange(len(cand))
    passing = np.where(nbad[np.maximum(upto, pos)] - nbad[pos] == 0)[0]
    return int(cand[passing[0]]) if len(passing) else None


def diffusive_window(msd: MSDResult, *, slope_tol: float = 0.15, end_fraction: float = 0.5,
                     t_start_fs: float | None = None,
                     t_end_fs: float | None = None,
                     span: float = 10.0) -> tuple[float, float, bool, float]:
    """Choose the fit window ``(t_start_fs, t_end_fs, diffusive, loglog_slope)``.

    The end is ``end_fraction`` of the shortest replica (or ``t_end_fs``). The start is
    the earliest sample lag from which every local log–log slope (over a factor-3
    window) of ``MSD - c`` up to the end stays within ``1 ± slope_tol``, with ``c`` the
    intercept of the GLS line through the last two thirds of the window (the
    vibrational offset) when it is significant (> 2 errors), else 0; if none does, the start is
    ``t_end/5`` and ``diffusive`` is False. ``loglog_slope`` is the slope over the window.
    """
    t = msd.sample_time_fs
    y = msd.per_particle_A2.mean(axis=0)
    t_total = (min(msd.n_frames) - 1) * msd.dt_fs
    end = float(t_end_fs) if t_end_fs is not None else end_fraction * t_total
    if end > t_total + 1e-9:
        raise AnalysisError("fit window ends after the trajectory", field="t_end_fs",
                            value=end, allowed=f"<= {t_total:g} fs")
    inwin = t <= end + 1e-9
    if t_start_fs is not None:
        start = float(t_start_fs)
        diffusive = True
    else:
        tw, yw = t[inwin], y[inwin]
        # remove the vibrational/caging offset c of the long-time line MSD = a t + c,
        # so that a diffusive MSD has log-log slope 1 from where it becomes linear
        c = 0.0
        try:  # GLS line over [end/3, end]; subtract its intercept only if significant
            b, _, _, _, _, _, c_err = _fit_window(msd, end / 3.0, end, n_iter=1, max_lags=25)
            if abs(b[1]) > 2.0 * c_err:
                c = float(b[1])
        except AnalysisError:
            pass
        valid_end = tw * 3.0 <= end * 1.0001
        start = None
        # the earliest lag at which the MSD is linear, with or without the offset c
        # (a spurious c distorts the short lags of a plain random walk; the real offset
        # of rattling ions hides the linear part until it is removed)
        for off in ({0.0, c}):
            yc = yw - off
            sl = _local_slopes(tw, np.where(yc > 0, yc, np.nan))
            ok = np.abs(sl - 1.0) <= slope_tol
            cand = np.where(np.isfinite(sl) & valid_end)[0]
            # within tolerance over a factor `span` in lag; later curvature is judged
            # statistically by _settled_start (the local slope at long lags is too
            # noisy for a fixed tolerance)
            k = _first_stable(tw, ok, cand, span)
            if k is not None:
                start = float(tw[k]) if start is None else min(start, float(tw[k]))
        diffusive = start is not None and start <= end / 3.0
        if start is None or not diffusive:
            start = end / 5.0
    sel = (t >= start - 1e-9) & (t <= end + 1e-9)
    if sel.sum() < 3:
        raise AnalysisError("too few frames in the fit window", field="t_start_fs",
                            value=start, allowed=f"a window [t_start, t_end={end:g} fs] "
                            "holding >= 3 sampled lags; use a longer trajectory or an "
                            "earlier start")
    ts, ys = t[sel], y[sel]
    slope = float(np.polyfit(np.log(ts), np.log(np.maximum(ys, 1e-300)), 1)[0]) \
        if np.all(ys > 0) else float("nan")
    return start, end, diffusive, slope


@dataclass
class DiffusionResult(DictRecord):
    """Self-diffusion coefficient of one species (1 sigma errors).

    ``d_err_cm2_s`` is the error reported (method in ``err_method``: the larger of
    the GLS model error and the spread of per-particle estimates, or the model error).
    ``n_eff``: effective number of jumps of length ``jump_length_A``;
    ``rsd_he2018``: He et al. (2018) relative error floor for that n_eff;
    ``scan_*``: D against the fit start (same window end);
    ``kappa_A4``: excess fourth moment of the per-frame displacement used in the
    covariance (0 for a Gaussian walk, > 0 for hopping).
    ``diffusive``: a linear (diffusive) regime was found and has enough jumps; if not,
    ``warning`` says why and ``d_estimate`` is ``"upper"`` or ``"lower"`` (else
    ``"value"``); ``source``: ``"trajectory"`` or ``"msd-table"``.
    """

    species: str
    d_cm2_s: float
    d_err_cm2_s: float
    d_err_model_cm2_s: float
    d_err_particles_cm2_s: float
    err_method: str
    intercept_A2: float
    t_start_fs: float
    t_end_fs: float
    auto_window: bool
    diffusive: bool
    loglog_slope: float
    n_particles: int
    n_frames: list[int]
    dt_fs: float
    n_fit_lags: int
    n_eff: float
    jump_length_A: float
    rsd_he2018: float
    rsd: float
    ngp_max: float
    chi2_red: float
    scan_t_start_fs: list[float] = field(default_factory=list)
    scan_d_cm2_s: list[float] = field(default_factory=list)
    scan_d_err_cm2_s: list[float] = field(default_factory=list)
    kappa_A4: float = float("nan")
    d_estimate: str = "value"
    warning: str = ""
    source: str = "trajectory"
    loglog_slope_offset_corrected: float = float("nan")
    t_start_halves_fs: list[float] = field(default_factory=list)

    @property
    def d_a2_fs(self) -> float:
        """D in Å²/fs."""
        return self.d_cm2_s / A2_FS_TO_CM2_S

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (units in field names)."""
        return {k: (list(v) if isinstance(v, (list, tuple)) else v)
                for k, v in dataclasses.asdict(self).items()}


def _model_covariance(msd: MSDResult, lags: np.ndarray, sigma2: float, kappa: float,
                      bases: list | None = None) -> np.ndarray:
    """Covariance of the particle-averaged MSD at ``lags``, pooled over replicas
    (``bases``: :func:`_grid_bases` of these lags, when the caller has them)."""
    ntot = float(sum(msd.replica_particles))
    cov = np.zeros((len(lags), len(lags)))
    if bases is None:
        bases = _grid_bases(msd, lags)
    for (lin, quad), npart in zip(bases, msd.replica_particles):
        # = npart * random_walk_msd_covariance(lags, nf, sigma2, kappa, d), same values
        cov += npart * (kappa * lin + (2.0 / msd.dimension * sigma2**2) * quad)
    cov /= ntot**2
    if msd.point_err_A2 is not None:  # MSD table with errors: model correlations, given sizes
        e = msd.point_err_A2[np.searchsorted(msd.sample_lag, lags)]
        sd = np.sqrt(np.diag(cov))
        cov = cov / np.outer(sd, sd) * np.outer(e, e)
    return cov


def _thin_lags(t: np.ndarray, idx: np.ndarray, max_lags: int,
               keep_times: np.ndarray | None = None) -> np.ndarray:
    """``idx`` (indices into the sample times ``t``, fs) thinned to ~``max_lags``
    log-spaced lags (GLS gains nothing from more), keeping the lags nearest to
    ``keep_times``; unchanged when it holds at most ``max_lags``."""
    if len(idx) <= max_lags:
        return idx
    want = np.geomspace(t[idx[0]], t[idx[-1]], max_lags)
    keep = np.searchsorted(t[idx], want).clip(0, len(idx) - 1)
    if keep_times is not None:
        keep = np.union1d(keep, np.searchsorted(t[idx], keep_times).clip(0, len(idx) - 1))
    return idx[np.unique(keep)]


def _window_data(msd: MSDResult, rows: np.ndarray, end: float):
    """The MSD data at the lags ``rows`` (mask or indices of the sample lags): times
    (fs), lags, per-particle MSDs, their mean, independent samples, variance and mean
    of the squared displacements. Raises when a lag has < 2 independent samples."""
    ts, lags = msd.sample_time_fs[rows], msd.sample_lag[rows]
    pp = msd.per_particle_A2[:, rows]
    y = pp.mean(axis=0)
    n = msd.n_independent[rows]
    var = msd.var_sq_A4[rows]
    mu = msd.mean_sq_A2[rows]
    if np.any(~np.isfinite(var)) or np.any(n < 2):
        raise AnalysisError("too few frames for the chosen window", field="t_end_fs", value=end,
                            allowed="a window end with >= 2 independent displacements per lag")
    return ts, lags, pp, y, n, var, mu


def _fit_window(msd: MSDResult, start: float, end: float, n_iter: int = 3, max_lags: int = 40):
    """GLS fit on the window; returns
    (beta, err_particles, err_model, sel, chi2, kappa, intercept_err); errors of D in Å²/fs."""
    t = msd.sample_time_fs
    sel = (t >= start - 1e-9) & (t <= end + 1e-9)
    if sel.sum() < 3:
        raise AnalysisError("too few frames in the fit window", field="t_start_fs", value=start,
                            allowed=f"a window holding >= 3 sampled lags (end {end:g} fs)")
    idx = np.where(sel)[0]
    if len(idx) > max_lags:
        sel = np.zeros_like(sel)
        sel[_thin_lags(t, idx, max_lags)] = True
    ts, lags, pp, y, n, var, mu = _window_data(msd, sel, end)
    d = msd.dimension
    # start: kinisi's covariance form with the measured variances
    beta, bcov, w = gls_line(ts, y, _kinisi_covariance(var / n, n))
    # excess 4th moment per frame from the measured variance of |dr|^2 (non-Gaussian part)
    kap_m = (var - (2.0 / d) * mu**2) / lags
    kappa = float(np.sum(n * kap_m) / np.sum(n))
    cov = None
    bases = _grid_bases(msd, lags) if n_iter > 0 else None
    for _ in range(n_iter):
        sigma2 = max(beta[0], 1e-30) * msd.dt_fs
        kap = max(kappa, -0.99 * (2.0 / d) * sigma2**2)
        cov = _model_covariance(msd, lags, sigma2, kap, bases)
        beta, bcov, w = gls_line(ts, y, cov)
    di = (pp @ w[0]) / (2 * d)
    npart = pp.shape[0]
    err_p = float(np.std(di, ddof=1) / np.sqrt(npart)) if npart > 1 else float("nan")
    err_m = float(np.sqrt(bcov[0, 0]) / (2 * d))
    r = y - (beta[0] * ts + beta[1])
    try:
        chi2 = float(r @ np.linalg.solve(cov, r)) / max(len(ts) - 2, 1)
    except np.linalg.LinAlgError:
        chi2 = float("nan")
    return beta, err_p, err_m, sel, chi2, kappa, float(np.sqrt(bcov[1, 1]))


def _start_candidates(msd: MSDResult, lo: float, hi: float, n: int) -> np.ndarray:
    """Sample times nearest to ``n`` log-spaced starts in ``[lo, hi]`` (fs), unique."""
    t = msd.sample_time_fs
    want = np.geomspace(max(lo, t[0]), max(hi, lo, t[0]), n)
    return np.unique(t[np.clip(np.searchsorted(t, want), 0, len(t) - 1)])


def _subset(msd: MSDResult, rows: np.ndarray) -> MSDResult:
    """The MSD data of the particles ``rows`` only (per-particle MSDs; the pooled moments
    of squared displacements are kept, with the number of samples scaled)."""
    edges = np.cumsum([0] + list(msd.replica_particles))
    counts = [int(np.sum((rows >= a) & (rows < b))) for a, b in zip(edges[:-1], edges[1:])]
    keep = [k for k, c in enumerate(counts) if c > 0]
    return dataclasses.replace(
        msd, per_particle_A2=msd.per_particle_A2[rows], n_particles=len(rows),
        replica_particles=[counts[k] for k in keep], n_frames=[msd.n_frames[k] for k in keep],
        n_independent=msd.n_independent * len(rows) / max(msd.per_particle_A2.shape[0], 1))


def _nested_fits(msd: MSDResult, starts: np.ndarray, end: float, min_particles: int,
                 max_lags: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GLS D (Å²/fs) of the nested windows ``[s_k, end]`` on one common set of lags.

    Returns ``(d, err, sd_diff)`` with ``sd_diff[k, j]`` the standard deviation of
    ``d[k] - d[j]``: the windows share data, so the difference is far less noisy than
    either value. It is computed from the model covariance (the GLS weights are fixed
    linear functionals of the MSD) and, with enough particles, also from the spread of
    the per-particle differences; the larger of the two is used.
    """
    t = msd.sample_time_fs
    idx = np.where((t >= starts[0] - 1e-9) & (t <= end + 1e-9))[0]
    idx = _thin_lags(t, idx, max_lags, keep_times=starts)  # every start is a fitted lag
    ts, lags, pp, y, n, var, mu = _window_data(msd, idx, end)
    d = msd.dimension
    beta, _, _ = gls_line(ts, y, _kinisi_covariance(var / n, n))
    kappa = float(np.sum(n * (var - (2.0 / d) * mu**2) / lags) / np.sum(n))
    sigma2 = max(beta[0], 1e-30) * msd.dt_fs
    cov = _model_covariance(msd, lags, sigma2, max(kappa, -0.99 * (2.0 / d) * sigma2**2))
    k = len(starts)
    wmat = _gls_suffix_slopes(ts, y, cov, np.searchsorted(ts, np.asarray(starts) - 1e-9)) / (2 * d)
    dvals = wmat @ y
    diff = wmat[:, None, :] - wmat[None, :, :]
    dflat = diff.reshape(-1, len(ts))
    var_m = np.sum((dflat @ cov) * dflat, axis=1).reshape(k, k)  # diff_kj' cov diff_kj
    use_p = msd.n_particles >= min_particles and pp.shape[0] > 1
    if use_p:
        per = pp @ diff.reshape(-1, len(ts)).T  # (N, k*k)
        var_p = (np.var(per, axis=0, ddof=1) / pp.shape[0]).reshape(k, k)
        var_m = np.maximum(var_m, var_p)
        self_p = np.var(pp @ wmat.T, axis=0, ddof=1) / pp.shape[0]
    else:
        self_p = np.zeros(k)
    self_m = np.sum((wmat @ cov) * wmat, axis=1)
    err = np.sqrt(np.maximum(self_m, self_p))
    return dvals, err, np.sqrt(np.maximum(var_m, 0.0))


def _settled_start(msd: MSDResult, start: float, end: float, min_particles: int,
                   n_candidates: int = 10, z: float = 3.0, margin: float = 2.0,
                   last_fraction: float = 0.25, max_fraction: float = 0.5,
                   n_compare: int = 3) -> float:
    """Earliest start after which D no longer changes with the start (see module doc)."""
    starts = _start_candidates(msd, start, last_fraction * end, n_candidates)
    if len(starts) < 2:
        return float(start)
    try:
        dv, _, sd = _nested_fits(msd, starts, end, min_particles)
    except AnalysisError:
        return float(start)
    ok = np.isfinite(dv)
    good = np.where(ok)[0]
    for a in good:
        later = good[good > a][:n_compare]
        if len(later) == 0:
            return float(starts[a])
        tstat = np.abs(dv[a] - dv[later]) / np.maximum(sd[a, later], 1e-300)
        if np.all(tstat <= z):
            s_new = min(margin * starts[a], max_fraction * end)
            t = msd.sample_time_fs
            return float(t[np.argmin(np.abs(t - s_new))])
    return float(starts[good[-1]])


def diffusion_coefficient(msd: MSDResult, *, t_start_fs: float | None = None,
                          t_end_fs: float | None = None, slope_tol: float = 0.15,
                          end_fraction: float = 0.5, jump_length_A: float = 2.5,
                          min_particles_resampling: int = 10,
                          n_scan: int = 10, settle_z: float = 3.0, settle_factor: float = 2.0,
                          n_settle: int = 10, min_jumps: float = 20.0,
                          diffusive_slope_tol: float = 0.3) -> DiffusionResult:
    """Self-diffusion coefficient D (cm²/s) with a calibrated 1-sigma error.

    Parameters
    ----------
    msd : from :func:`viglas.analysis.msd_fft` (or :func:`pool_msd` over replicas, or
        :func:`msd_from_table`).
    t_start_fs, t_end_fs : fit window in fs; None = automatic (module doc, *Window*).
    slope_tol : tolerance on the log–log slope that ends the ballistic/caged part.
    end_fraction : automatic window end as a fraction of the shortest replica.
    jump_length_A : jump length (Å) used for the effective number of jumps.
    min_particles_resampling : with fewer particles the model (GLS) error is used.
    n_scan : number of fit starts in the D-vs-start scan (0 = none).
    settle_z : threshold (in standard deviations of the paired difference) above which
        D is taken to still depend on the fit start.
    settle_factor : the start is this factor after the earliest settled start.
    n_settle : number of log-spaced candidate starts tested.
    min_jumps : fewer effective jumps than this mark D as an upper estimate.
    diffusive_slope_tol : the offset-corrected log–log slope over the window must be
        within ``1 ± diffusive_slope_tol`` for a diffusive regime.

    Raises
    ------
    AnalysisError : too few frames for the window, window outside the trajectory.
    """
    auto = t_start_fs is None
    start, end, found, slope = diffusive_window(
        msd, slope_tol=slope_tol, end_fraction=end_fraction, t_start_fs=t_start_fs,
        t_end_fs=t_end_fs)

    def choose(m: MSDResult) -> tuple[float, bool]:
        s0, _, ok, _ = diffusive_window(m, slope_tol=slope_tol, t_end_fs=end)
        if not ok:
            return s0, False
        return _settled_start(m, s0, end, min_particles_resampling, z=settle_z,
                              margin=settle_factor, n_candidates=n_settle), True

    halves_t: list[float] = []
    cross = (auto and found and msd.source == "trajectory"
             and msd.per_particle_A2.shape[0] >= 2 * min_particles_resampling)
    if cross:
        # cross-fitting: the start chosen on one half of the ions is used to fit the other
        # half, so the choice of window is independent of the data it is applied to
        rows = np.arange(msd.per_particle_A2.shape[0])
        halves = [_subset(msd, rows[0::2]), _subset(msd, rows[1::2])]
        (sa, oka), (sb, okb) = choose(halves[0]), choose(halves[1])
        fa = _fit_window(halves[0], sb, end)
        fb = _fit_window(halves[1], sa, end)
        halves_t = [float(sa), float(sb)]
        start = float(np.sqrt(sa * sb))
        _, _, _, sel, chi2, kappa, _ = _fit_window(msd, start, end, n_iter=1)  # diagnostics
        d = msd.dimension
        beta = (fa[0] + fb[0]) / 2.0
        err_p = float(np.hypot(fa[1], fb[1]) / 2.0)
        err_m = float(np.hypot(fa[2], fb[2]) / 2.0)
    else:
        if auto and found:
            start = _settled_start(msd, start, end, min_particles_resampling, z=settle_z,
                                   margin=settle_factor, n_candidates=n_settle)
        beta, err_p, err_m, sel, chi2, kappa, _ = _fit_window(msd, start, end)
        d = msd.dimension
    dval = beta[0] / (2 * d)
    use_p = msd.n_particles >= min_particles_resampling and np.isfinite(err_p) \
        and msd.source == "trajectory"
    err = max(err_p, err_m) if use_p else err_m
    if msd.source != "trajectory" and np.isfinite(chi2) and chi2 > 1.0:
        err *= np.sqrt(chi2)  # table: no per-particle check of the model, trust the scatter
    # effective jumps over all particles and replicas: sum_i MSD_i(T_i) / a^2
    tot_time = sum((f - 1) * msd.dt_fs for f in msd.n_frames) / len(msd.n_frames)
    n_eff = max(msd.n_particles * 2 * d * dval * tot_time / jump_length_A**2, 0.0)
    if not msd.n_particles_known:
        n_eff = float("nan")  # MSD table without n_ions: the jump count is unknown
    # regime: offset-corrected log-log slope over the window, effective jumps
    ts = msd.sample_time_fs[sel]
    yc = msd.per_particle_A2[:, sel].mean(axis=0) - beta[1]
    slope_c = float(np.polyfit(np.log(ts), np.log(yc), 1)[0]) if np.all(yc > 0) \
        else float("nan")
    reasons = []
    if auto and not found:
        reasons.append("the MSD never becomes linear (log-log slope 1) before the window end")
    if not (abs(slope_c - 1.0) <= diffusive_slope_tol):
        reasons.append(f"log-log slope of MSD - offset over the window is {slope_c:.2f}, "
                       f"not 1 ± {diffusive_slope_tol:g}")
    if dval <= 0:
        reasons.append("the MSD does not grow")
    if np.isfinite(n_eff) and n_eff < min_jumps:
        reasons.append(f"only {n_eff:.1f} effective jumps of {jump_length_A:g} A "
                       f"(< {min_jumps:g})")
    diffusive = not reasons
    kind = "value"
    if not diffusive:
        kind = "lower" if (np.isfinite(slope_c) and slope_c > 1.0 + diffusive_slope_tol
                           and n_eff >= min_jumps) else "upper"
        # never a small error bar on an estimate outside the diffusive regime
        if np.isfinite(n_eff):
            floor = he2018_rsd(n_eff) * abs(dval)
            if np.isfinite(floor):
                err = max(err, floor)
        # no jumps at all (n_eff 0: the floor is infinite) or a fit without an error:
        # at least 100 % of |D|, a finite, honest "not known" rather than inf/None
        if not np.isfinite(err) or err < abs(dval):
            err = max(abs(dval), err if np.isfinite(err) else 0.0)
    warning = "" if diffusive else ("no diffusive regime: " + "; ".join(reasons)
                                    + f". D is an {kind} estimate, not a measurement")
    scan_t, scan_d, scan_e = [], [], []
    if n_scan > 0 and end / 3.0 > msd.sample_time_fs[0]:
        # D against the fit start, all windows on one covariance (cheap)
        starts = _start_candidates(msd, msd.sample_time_fs[0], end / 3.0, n_scan)
        try:
            sd_, se_, _ = _nested_fits(msd, starts, end,
                                       min_particles_resampling if use_p else 10**9)
        except AnalysisError:
            sd_ = se_ = np.full(len(starts), np.nan)
        for s_, d_, e_ in zip(starts, sd_, se_):
            if np.isfinite(d_):
                scan_t.append(float(s_))
                scan_d.append(float(d_ * A2_FS_TO_CM2_S))
                scan_e.append(float(e_ * A2_FS_TO_CM2_S))
    ngp = msd.ngp[sel]
    return DiffusionResult(
        species=msd.species, d_cm2_s=float(dval * A2_FS_TO_CM2_S),
        d_err_cm2_s=float(err * A2_FS_TO_CM2_S),
        d_err_model_cm2_s=float(err_m * A2_FS_TO_CM2_S),
        d_err_particles_cm2_s=float(err_p * A2_FS_TO_CM2_S),
        err_method=("max(model, particles)" if use_p else
                    "model" if msd.source == "trajectory" else "model (table), x sqrt(chi2_red) if > 1"),
        intercept_A2=float(beta[1]),
        t_start_fs=float(start), t_end_fs=float(end), auto_window=auto,
        diffusive=bool(diffusive), loglog_slope=float(slope), n_particles=msd.n_particles,
        n_frames=list(msd.n_frames), dt_fs=msd.dt_fs, n_fit_lags=int(sel.sum()),
        n_eff=float(n_eff), jump_length_A=float(jump_length_A),
        rsd_he2018=float(he2018_rsd(n_eff)) if np.isfinite(n_eff) else float("nan"),
        rsd=float(abs(err / dval)) if dval != 0 else float("inf"),
        ngp_max=float(np.nanmax(ngp)) if np.any(np.isfinite(ngp)) else float("nan"),
        chi2_red=chi2, scan_t_start_fs=scan_t, scan_d_cm2_s=scan_d, scan_d_err_cm2_s=scan_e,
        kappa_A4=float(kappa), d_estimate=kind, warning=warning, source=msd.source,
        t_start_halves_fs=halves_t,
        loglog_slope_offset_corrected=slope_c)


def collective_diffusion(msd: MSDResult, t_start_fs: float, t_end_fs: float) -> tuple[float, float]:
    """Collective ("charge") diffusion coefficient ``D_sigma`` (cm²/s) and its error.

    ``D_sigma = slope of |sum_i Δr_i|^2 / N over (2d)``; with equal charges the
    Haven ratio is ``D / D_sigma``. The summed displacement of many ions is close to
    Gaussian, so the covariance model uses the Gaussian variance
    ``Var(|R|^2) = (2/d) <|R|^2>^2`` with ``floor((T-1)/m)`` independent origins per
    replica (kinisi's form), and the error is the GLS model error.
    """
    if msd.charge_msd_A2 is None:
        raise AnalysisError("no collective MSD stored", field="charge_msd", value=None,
                            hint="compute the MSD with charge_msd=True")
    lags = msd.sample_lag
    t = lags * msd.dt_fs
    sel = (t >= t_start_fs - 1e-9) & (t <= t_end_fs + 1e-9)
    lags, t = lags[sel], t[sel]
    y = msd.charge_msd_A2[lags]
    n = np.array([sum((f - 1) // m for f in msd.n_frames) for m in lags], dtype=float)
    if len(t) < 3 or np.any(n < 2):
        raise AnalysisError("too few frames for the collective MSD window", field="t_end_fs",
                            value=t_end_fs)
    d = msd.dimension
    var = (2.0 / d) * np.maximum(y, 1e-30) ** 2
    beta, bcov, _ = gls_line(t, y, _kinisi_covariance(var / n, n))
    return (float(beta[0] / (2 * d) * A2_FS_TO_CM2_S),
            float(np.sqrt(bcov[0, 0]) / (2 * d) * A2_FS_TO_CM2_S))
