"""Glass transition temperature at laboratory cooling rates from several MD quenches.

MD quenches cool at 1–100 K/ps (10¹²–10¹⁴ K/s); a DSC scan runs at 10 K/min
(0.17 K/s). Tg falls with the cooling rate q because the liquid leaves equilibrium
when its structural relaxation time τ(T) reaches the time the quench spends per
kelvin, τ(Tg)·q ≈ C. With a Vogel–Fulcher–Tammann τ(T) = τ₀ exp(B/(T − T₀)) this
gives the law of Vollmayr, Kob and Binder (J. Chem. Phys. 105, 4714, 1996; used for
silica and many MD glasses since):

    Tg(q) = T₀ + B / ln(A / q)                                  ("vkb", 3 parameters)

With T₀ = 0 (Arrhenius relaxation, the strong-glass limit) it becomes linear in
ln q for 1/Tg:

    1 / Tg(q) = (ln A − ln q) / B                               ("arrhenius", 2 parameters)

Three cooling rates determine the VKB law exactly (no degrees of freedom, no error
estimate), so ``law="auto"`` uses VKB only with four or more rates and otherwise
the two-parameter law; both are reported where both can be fitted, and the spread
between them is a model error the 1σ band of one law does not contain. An extrapolation
over ~13 decades of q is always uncertain: the error band (delta method on the
parameter covariance, scaled up by the reduced χ² when the points scatter more than
their error bars) is the statistical part only.

Units: K, K/ps (``q_K_ps``); 10 K/min = 1/6 × 10⁻¹² K/ps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viglas.errors import FitError

#: 10 K/min in K/ps.
LAB_RATE_K_PS: float = 10.0 / 60.0 * 1e-12

__all__ = ["LAB_RATE_K_PS", "TgRateFit", "fit_tg_rate", "k_min_to_k_ps"]


def k_min_to_k_ps(q_K_min: float) -> float:
    """A cooling rate in K/min as K/ps."""
    return float(q_K_min) / 60.0 * 1e-12


@dataclass
class TgRateFit:
    """Tg(q) fitted over cooling rates; ``params`` and ``cov`` in the law's own variables.

    ``law`` = ``arrhenius``: params (a, b) of 1/Tg = a − b·ln q (q in K/ps);
    ``vkb``: params (T0_K, B_K, ln A) of Tg = T0 + B / (ln A − ln q).
    """

    law: str
    params: list[float]
    cov: list[list[float]]
    q_K_ps: list[float]
    tg_K: list[float]
    tg_err_K: list[float]
    reduced_chi2: float | None
    notes: list[str] = field(default_factory=list)

    def _tg_and_grad(self, lnq: float) -> tuple[float, np.ndarray]:
        p = np.asarray(self.params, float)
        if self.law == "arrhenius":
            a, b = p
            inv = a - b * lnq
            if inv <= 0:
                raise FitError("the fitted law has no finite Tg at this cooling rate",
                               field="q_K_ps", value=float(np.exp(lnq)))
            tg = 1.0 / inv
            return tg, np.array([-tg ** 2, tg ** 2 * lnq])
        t0, bb, lna = p
        den = lna - lnq
        if den <= 0:
            raise FitError("the fitted law has no finite Tg at this cooling rate",
                           field="q_K_ps", value=float(np.exp(lnq)))
        return t0 + bb / den, np.array([1.0, 1.0 / den, -bb / den ** 2])

    def predict(self, q_K_ps: float) -> tuple[float, float]:
        """Tg (K) and its 1σ error (delta method) at cooling rate ``q_K_ps``."""
        tg, g = self._tg_and_grad(float(np.log(q_K_ps)))
        var = float(g @ np.asarray(self.cov, float) @ g)
        return float(tg), float(np.sqrt(max(var, 0.0)))

    def lab(self, q_K_min: float = 10.0) -> tuple[float, float]:
        """Tg (K) ± 1σ extrapolated to a laboratory rate (default 10 K/min)."""
        return self.predict(k_min_to_k_ps(q_K_min))

    def to_dict(self) -> dict[str, Any]:
        tg, err = self.lab()
        return {"law": self.law, "params": self.params, "cov": self.cov,
                "param_names": (["a_per_K", "b_per_K"] if self.law == "arrhenius"
                                else ["T0_K", "B_K", "lnA"]),
                "q_K_ps": self.q_K_ps, "tg_K": self.tg_K, "tg_err_K": self.tg_err_K,
                "reduced_chi2": self.reduced_chi2, "tg_lab_K": tg, "tg_lab_err_K": err,
                "lab_rate_K_min": 10.0, "notes": self.notes}


def _check(q, tg, err) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = np.asarray(q, float)
    tg = np.asarray(tg, float)
    if q.shape != tg.shape or q.ndim != 1:
        raise FitError("cooling rates and Tg values must be 1-D arrays of equal length",
                       field="q_K_ps", value=f"{q.shape} vs {tg.shape}")
    if len(q) < 2 or len(np.unique(q)) < 2:
        raise FitError("need Tg at two or more different cooling rates", field="q_K_ps",
                       value=q.tolist(), allowed=">= 2 distinct rates (>= 3 advised)")
    if np.any(q <= 0) or np.any(~np.isfinite(q)):
        raise FitError("cooling rates must be positive", field="q_K_ps", value=q.tolist())
    if np.any(tg <= 0) or np.any(~np.isfinite(tg)):
        raise FitError("Tg values must be positive temperatures", field="tg_K",
                       value=tg.tolist())
    if err is None:
        e = np.full_like(tg, np.nan)
    else:
        e = np.asarray(err, float)
        if e.shape != tg.shape or np.any(~(e > 0)):
            raise FitError("Tg errors must be positive, one per rate", field="tg_err_K",
                           value=np.asarray(err).tolist())
    return q, tg, e


def _fit_arrhenius(q, tg, e) -> TgRateFit:
    x = np.log(q)
    y = 1.0 / tg
    have_err = np.all(np.isfinite(e))
    sy = e / tg ** 2 if have_err else np.ones_like(y)
    w = 1.0 / sy ** 2
    X = np.stack([np.ones_like(x), -x], axis=1)
    A = X.T @ (w[:, None] * X)
    cov = np.linalg.inv(A)
    p = cov @ (X.T @ (w * y))
    dof = len(x) - 2
    r = (y - X @ p) / sy
    chi2 = float(r @ r / dof) if dof > 0 else None
    notes = []
    if not have_err:
        if dof == 0:
            raise FitError("two rates without Tg errors leave no error estimate",
                           field="tg_err_K", value=None,
                           allowed="Tg errors, or three or more rates")
        cov = cov * (chi2 or 1.0)
        notes.append("no Tg errors given: parameter covariance from the scatter")
    elif chi2 is not None and chi2 > 1.0:
        cov = cov * chi2
        notes.append(f"covariance scaled by the reduced chi2 {chi2:.2f}")
    if p[1] <= 0:
        notes.append("Tg does not fall with slower cooling in these data: the "
                     "extrapolation is not meaningful")
    return TgRateFit("arrhenius", p.tolist(), cov.tolist(), q.tolist(), tg.tolist(),
                     e.tolist(), chi2, notes)


def _fit_vkb(q, tg, e) -> TgRateFit:
    from scipy.optimize import curve_fit

    lnq = np.log(q)
    have_err = np.all(np.isfinite(e))

    def f(x, t0, bb, lna):
        return t0 + bb / (lna - x)

    start = _fit_arrhenius(q, tg, e if have_err else np.full_like(tg, 1.0))
    a, b = start.params
    p0 = [0.3 * tg.min(), 0.7 / max(b, 1e-6), a / max(b, 1e-6)]
    try:
        p, c = curve_fit(f, lnq, tg, p0=p0, sigma=e if have_err else None,
                         absolute_sigma=have_err, maxfev=20000,
                         bounds=([0.0, 1e-6, lnq.max() + 1e-3], [tg.min(), 1e7, 1e3]))
    except (RuntimeError, ValueError) as exc:
        raise FitError(f"the Vollmayr-Kob-Binder fit did not converge ({exc})",
                       field="q_K_ps", value=q.tolist()) from exc
    dof = len(q) - 3
    res = (tg - f(lnq, *p)) / (e if have_err else 1.0)
    chi2 = float(res @ res / dof) if dof > 0 else None
    notes = []
    if have_err and chi2 is not None and chi2 > 1:
        c = c * chi2
        notes.append(f"covariance scaled by the reduced chi2 {chi2:.2f}")
    return TgRateFit("vkb", p.tolist(), c.tolist(), q.tolist(), tg.tolist(), e.tolist(),
                     chi2, notes)


def fit_tg_rate(q_K_ps: Sequence[float], tg_K: Sequence[float],
                tg_err_K: Sequence[float] | None = None, law: str = "auto") -> TgRateFit:
    """Fit Tg(q) over cooling rates (K/ps) with ``law`` ``arrhenius``, ``vkb`` or
    ``auto`` (VKB with ≥ 4 rates when it converges, else Arrhenius); see the module
    docstring for the laws and what the error band means."""
    q, tg, e = _check(q_K_ps, tg_K, tg_err_K)
    if law not in ("auto", "arrhenius", "vkb"):
        raise FitError("unknown Tg(q) law", field="law", value=law,
                       allowed="auto, arrhenius, vkb")
    if law == "vkb" and len(q) < 4:
        raise FitError("the three-parameter VKB law needs four or more cooling rates",
                       field="q_K_ps", value=len(q), allowed=">= 4 rates, or law=arrhenius")
    if law == "arrhenius" or (law == "auto" and len(q) < 4):
        return _fit_arrhenius(q, tg, e)
    try:
        return _fit_vkb(q, tg, e)
    except FitError:
        if law == "vkb":
            raise
        fit = _fit_arrhenius(q, tg, e)
        fit.notes.append("VKB fit failed; Arrhenius law used")
        return fit
