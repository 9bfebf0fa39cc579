"""Arrhenius with a kink: two activation energies meeting at a crossover temperature.

Below the glass transition ionic conduction in a glass is often Arrhenius again, with
another (usually smaller) activation energy than in the supercooled liquid above it,
so ln y(1/T) is two straight lines that meet at T_k:

    ln y = ln y_k − (Ea_high / k_B) (1/T − 1/T_k)     for T > T_k
    ln y = ln y_k − (Ea_low  / k_B) (1/T − 1/T_k)     for T < T_k

:func:`fit_arrhenius_kink` fits the four parameters by weighted least squares
(σ_ln y = σ_y / y): a scan of T_k between the data points with the three linear
parameters solved exactly, then a joint refinement for the covariance. It needs five
or more temperatures, at least two on each side of the kink. Compare with the plain
Arrhenius and VFT fits by AIC (``aic``; the summary takes the kink only when its AIC is
lower by more than 2 than both). Units: K, eV; ``y`` any positive quantity (D, σ).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viglas.errors import FitError

KB_EV_K = 8.617333262e-5

__all__ = ["ArrheniusKinkFit", "fit_arrhenius_kink"]


@dataclass
class ArrheniusKinkFit:
    """Two-branch Arrhenius fit; ``params`` = (1/T_k in 1/K, ln y_k, Ea_high eV, Ea_low eV)."""

    quantity: str
    params: list[float]
    cov: list[list[float]]
    tk_K: float
    tk_err_K: float
    ea_high_eV: float
    ea_high_err_eV: float
    ea_low_eV: float
    ea_low_err_eV: float
    aic: float
    chi2: float
    n_points: int
    t_range_K: tuple[float, float]
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def _model(x: np.ndarray, xk: float, lnyk: float, eh: float, el: float) -> np.ndarray:
        dx = x - xk
        return lnyk - np.where(dx < 0, eh, el) * dx / KB_EV_K

    def predict(self, t_K: float | np.ndarray) -> tuple[Any, Any]:
        """y and its 1σ error (delta method on ln y) at ``t_K``."""
        x = 1.0 / np.asarray(t_K, float)
        p = np.asarray(self.params, float)
        ln = self._model(x, *p)
        eps = np.array([1e-9, 1e-6, 1e-6, 1e-6])
        g = []
        for i in range(4):
            q = p.copy()
            q[i] += eps[i]
            g.append((self._model(x, *q) - ln) / eps[i])
        g = np.stack(g, axis=-1)
        var = np.einsum("...i,ij,...j->...", g, np.asarray(self.cov, float), g)
        y = np.exp(ln)
        return y, y * np.sqrt(np.maximum(var, 0.0))

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["cov_params"] = ["inv_tk_per_K", "ln_y_k", "ea_high_eV", "ea_low_eV"]
        d["t_range_K"] = list(self.t_range_K)
        return d


def fit_arrhenius_kink(t_K: Sequence[float], y: Sequence[float],
                       y_err: Sequence[float] | None = None, quantity: str = "D",
                       min_side: int = 2) -> ArrheniusKinkFit:
    """Fit the two-branch Arrhenius law (module docstring) to y(T) > 0."""
    from scipy.optimize import curve_fit

    t = np.asarray(t_K, float)
    yy = np.asarray(y, float)
    if t.shape != yy.shape or t.ndim != 1:
        raise FitError("t_K and y must be 1-D and of equal length", field="t_K",
                       value=f"{t.shape} vs {yy.shape}")
    if len(t) < 2 * min_side + 1:
        raise FitError("a kinked Arrhenius fit needs five or more temperatures",
                       field="t_K", value=len(t), allowed=f">= {2 * min_side + 1}")
    if np.any(yy <= 0) or np.any(t <= 0):
        raise FitError("temperatures and values must be positive", field="y",
                       value=yy.tolist())
    order = np.argsort(1.0 / t)
    x, ly = 1.0 / t[order], np.log(yy[order])
    if y_err is None:
        s = np.ones_like(ly)
        absolute = False
    else:
        e = np.asarray(y_err, float)[order]
        if np.any(~(e > 0)):
            raise FitError("errors must be positive", field="y_err",
                           value=np.asarray(y_err).tolist())
        s = e / yy[order]
        absolute = True
    w = 1.0 / s
    best = None
    for k in range(min_side - 1, len(x) - min_side):
        for xk in np.linspace(x[k], x[k + 1], 7)[1:-1] if k + 1 < len(x) else []:
            dx = x - xk
            X = np.stack([np.ones_like(x), -np.minimum(dx, 0) / KB_EV_K,
                          -np.maximum(dx, 0) / KB_EV_K], axis=1)
            beta, *_ = np.linalg.lstsq(X * w[:, None], ly * w, rcond=None)
            rss = float(np.sum(((X @ beta - ly) * w) ** 2))
            if best is None or rss < best[0]:
                best = (rss, xk, beta)
    if best is None:
        raise FitError("no kink position between the data points", field="t_K",
                       value=t.tolist())
    _, xk0, b0 = best
    try:
        p, c = curve_fit(ArrheniusKinkFit._model, x, ly, p0=[xk0, *b0], sigma=s,
                         absolute_sigma=absolute, maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        raise FitError(f"the kinked Arrhenius fit did not converge ({exc})", field="t_K",
                       value=t.tolist()) from exc
    if not (x[0] < p[0] < x[-1]):
        raise FitError("the fitted kink lies outside the data", field="t_K",
                       value=float(1.0 / p[0]))
    r = (ArrheniusKinkFit._model(x, *p) - ly) / s
    chi2 = float(r @ r)
    n = len(x)
    aic = chi2 + 2 * 4  # the convention of viglas.analysis.arrhenius (chi2 + 2k)
    dof = n - 4
    if absolute and dof > 0 and chi2 / dof > 1:
        c = np.asarray(c) * (chi2 / dof)
    tk = 1.0 / p[0]
    tk_err = float(np.sqrt(max(c[0, 0], 0.0))) * tk ** 2
    notes = []
    side_hi = int(np.sum(x < p[0]))
    if min(side_hi, n - side_hi) < min_side:
        notes.append("fewer than two points on one side of the kink")
    return ArrheniusKinkFit(
        quantity=quantity, params=[float(v) for v in p], cov=np.asarray(c).tolist(),
        tk_K=float(tk), tk_err_K=tk_err, ea_high_eV=float(p[2]),
        ea_high_err_eV=float(np.sqrt(max(c[2, 2], 0.0))), ea_low_eV=float(p[3]),
        ea_low_err_eV=float(np.sqrt(max(c[3, 3], 0.0))), aic=float(aic), chi2=chi2,
        n_points=n, t_range_K=(float(t.min()), float(t.max())), notes=notes)
