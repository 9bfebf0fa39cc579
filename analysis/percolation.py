"""Percolation: sigma(p) ∝ (p − p_c)^t, and structural percolation over replicas.

Conductivity fit
----------------
``sigma = sigma0 (p - p_c)^t`` for ``p > p_c`` (Stauffer & Aharony; Kirkpatrick,
*Rev. Mod. Phys.* 45, 574 (1973)), fitted in ``ln sigma`` with weights
``sigma_err / sigma``. Points *below threshold* — sigma not significantly above zero
(``sigma <= below_sigma_ratio * sigma_err``, or <= 0) — are not fitted but bound
p_c from below (the threshold lies above an insulating composition) when they lie
below the conducting points. At least 4 conducting points are needed (3 parameters
+ 1 degree of freedom), otherwise FitError "not enough points above threshold".

Confidence intervals: parametric bootstrap over the sigma uncertainties (each
bootstrap draws sigma_i ~ N(sigma_i, sigma_err_i), refits; percentile 68% and 95%
intervals; errors = bootstrap standard deviations). Seeded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from viglas.analysis._records import DictRecord
from viglas.errors import FitError

__all__ = ["PercolationFit", "fit_percolation", "spanning_summary"]


@dataclass
class PercolationFit(DictRecord):
    """Fit of ``sigma = sigma0 (p - p_c)^t`` (sigma in the units given, e.g. mS/cm).

    ``*_ci68`` / ``*_ci95``: bootstrap percentile intervals ``[lo, hi]``;
    ``n_above`` / ``n_below``: points fitted / treated as below threshold.
    """

    p_c: float
    p_c_err: float
    t: float
    t_err: float
    sigma0: float
    sigma0_err: float
    p_c_ci68: list[float]
    p_c_ci95: list[float]
    t_ci68: list[float]
    t_ci95: list[float]
    n_above: int
    n_below: int
    chi2_red: float
    n_bootstrap: int
    n_bootstrap_ok: int
    seed: int
    p_below: list[float] = field(default_factory=list)

    def predict(self, p: float | np.ndarray) -> np.ndarray | float:
        """Model conductivity at oxygen fraction ``p`` (0 at or below p_c)."""
        x = np.asarray(p, dtype=float) - self.p_c
        val = np.where(x > 0, self.sigma0 * np.abs(x) ** self.t, 0.0)
        return float(val) if np.ndim(val) == 0 else val

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _profile(p, ls, w, pcs):
    """chi² and (ln sigma0, t) of the weighted line ln s = c + t ln(p - pc), per pc."""
    x = np.log(p[None, :] - pcs[:, None])
    w2 = w**2
    sw = w2.sum()
    sx = (w2 * x).sum(axis=1)
    sy = (w2 * ls).sum()
    sxx = (w2 * x * x).sum(axis=1)
    sxy = (w2 * x * ls).sum(axis=1)
    det = sw * sxx - sx**2
    t = (sw * sxy - sx * sy) / det
    c = (sy - t * sx) / sw
    r = (ls[None, :] - c[:, None] - t[:, None] * x) * w
    return (r**2).sum(axis=1), c, t


def _fit_once(p, ls, w, lower, upper):
    """Profile over p_c (for fixed p_c the model is linear in ln sigma0, t): log-spaced
    grid towards the upper bound, then two zooms around the best point."""
    gap = upper - lower
    grid = upper - gap * np.geomspace(1.0, 1e-6, 120)
    for _ in range(3):
        chi, c, t = _profile(p, ls, w, grid)
        k = int(np.nanargmin(chi))
        lo = grid[max(k - 1, 0)]
        hi = grid[min(k + 1, len(grid) - 1)]
        if hi <= lo:
            break
        grid = np.linspace(lo, hi, 41)
    chi, c, t = _profile(p, ls, w, grid)
    k = int(np.nanargmin(chi))
    return float(grid[k]), float(t[k]), float(np.exp(c[k])), float(chi[k])


def fit_percolation(p: Sequence[float], sigma: Sequence[float], sigma_err: Sequence[float],
                    seed: int = 0, *, n_bootstrap: int = 500, below_sigma_ratio: float = 2.0,
                    p_c_min: float | None = None) -> PercolationFit:
    """Fit ``sigma = sigma0 (p - p_c)^t`` with bootstrap confidence intervals.

    Parameters
    ----------
    p : percolation variable per composition (oxygen anion fraction O/(O+Cl)).
    sigma, sigma_err : conductivity and its 1-sigma error (any unit, e.g. mS/cm).
    seed : bootstrap seed.
    n_bootstrap : bootstrap resamples.
    below_sigma_ratio : sigma <= ratio * sigma_err counts as below threshold.
    p_c_min : lower bound for p_c (default: the highest below-threshold p under the
        conducting points, else min(p) - (max(p)-min(p))).

    Raises
    ------
    FitError : "not enough points above threshold" (< 4 conducting points).
    """
    p = np.asarray(p, dtype=float)
    s = np.asarray(sigma, dtype=float)
    e = np.asarray(sigma_err, dtype=float)
    if not (len(p) == len(s) == len(e)):
        raise FitError("p, sigma and sigma_err must have the same length", field="sigma",
                       value=(len(p), len(s), len(e)))
    if np.any(e <= 0) or np.any(~np.isfinite(e)):
        raise FitError("sigma errors must be positive", field="sigma_err", value=e.tolist())
    above = (s > below_sigma_ratio * e) & (s > 0)
    n_above = int(above.sum())
    if n_above < 4:
        raise FitError("not enough points above threshold", field="sigma", value=n_above,
                       allowed=">= 4 compositions with sigma > "
                               f"{below_sigma_ratio:g} x its error",
                       hint="add compositions above the percolation threshold")
    pa, sa, ea = p[above], s[above], e[above]
    pmin = pa.min()
    below_p = p[~above]
    if p_c_min is not None:
        lower = float(p_c_min)
    elif np.any(below_p < pmin):
        lower = float(below_p[below_p < pmin].max())
    else:
        lower = float(pmin - (pa.max() - pmin))
    upper = float(pmin - 1e-9 * max(1.0, abs(pmin)))
    if not lower < upper:
        raise FitError("no room for a threshold below the conducting points", field="p",
                       value=p.tolist())
    w = sa / ea
    pc, t, s0, chi2 = _fit_once(pa, np.log(sa), w, lower, upper)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_bootstrap):
        sb = sa + rng.normal(0, ea)
        if np.any(sb <= 0):
            sb = np.maximum(sb, 0.05 * sa)
        try:
            boots.append(_fit_once(pa, np.log(sb), sb / ea, lower, upper)[:3])
        except (np.linalg.LinAlgError, ValueError):
            continue
    b = np.array(boots)
    if len(b) < 10:
        raise FitError("bootstrap failed", field="sigma", value=len(b))

    def ci(col, q):
        return [float(np.percentile(b[:, col], 50 - q / 2)), float(np.percentile(b[:, col], 50 + q / 2))]

    dof = n_above - 3
    return PercolationFit(
        p_c=pc, p_c_err=float(np.std(b[:, 0], ddof=1)), t=t, t_err=float(np.std(b[:, 1], ddof=1)),
        sigma0=s0, sigma0_err=float(np.std(b[:, 2], ddof=1)), p_c_ci68=ci(0, 68.27),
        p_c_ci95=ci(0, 95.0), t_ci68=ci(1, 68.27), t_ci95=ci(1, 95.0), n_above=n_above,
        n_below=int((~above).sum()), chi2_red=chi2 / dof if dof > 0 else float("nan"),
        n_bootstrap=n_bootstrap, n_bootstrap_ok=len(b), seed=seed, p_below=below_p.tolist())


def spanning_summary(p: Sequence[float], spans: Sequence[bool],
                     largest_fraction: Sequence[float]) -> dict[str, Any]:
    """Structural percolation over replicas: per distinct p, the spanning probability
    (fraction of replicas whose network wraps the cell) with its binomial error and the
    mean ± standard error of the largest-cluster fraction."""
    p = np.asarray(p, dtype=float)
    sp = np.asarray(spans, dtype=float)
    lf = np.asarray(largest_fraction, dtype=float)
    out = {"p": [], "spanning_probability": [], "spanning_probability_err": [],
           "largest_cluster_fraction": [], "largest_cluster_fraction_err": [], "n_replicas": []}
    for pv in np.unique(p):
        m = p == pv
        n = int(m.sum())
        q = float(sp[m].mean())
        out["p"].append(float(pv))
        out["spanning_probability"].append(q)
        out["spanning_probability_err"].append(float(np.sqrt(max(q * (1 - q), 1e-12) / n)))
        out["largest_cluster_fraction"].append(float(lf[m].mean()))
        out["largest_cluster_fraction_err"].append(
            float(lf[m].std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"))
        out["n_replicas"].append(n)
    return out
