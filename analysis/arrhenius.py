"""Arrhenius and Vogel–Fulcher–Tammann fits of D(T) or sigma(T) with covariances.

Arrhenius: ``ln y = ln_prefactor - ea_eV / (k_B T)``, a weighted linear least-squares
fit in ``(1/T, ln y)`` with ``sigma_ln y = y_err / y``.
VFT: ``ln y = ln_a - b_K / (T - t0_K)``, weighted non-linear least squares.

Covariances are those of the weighted fit; when the reduced chi² exceeds 1 (scatter
larger than the stated errors) the covariance is scaled by chi²_red, so error bars
never shrink below what the scatter shows. ``predict(t_K)`` returns the value and its
1-sigma error by the delta method in ``ln y`` (``err = y * sqrt(g^T C g)``).
AIC = chi² + 2k and BIC = chi² + k ln n (Gaussian likelihood, constants dropped) allow
model comparison on the same data.

Conductivity at a temperature outside the data (e.g. 300 K) is Nernst–Einstein on
the *extrapolated* D (:func:`sigma_from_d_fit`), ``sigma(T) = n (z e)^2 D(T) / (k_B T H)``,
not a separate Arrhenius fit of sigma(T): sigma = c D / T, so ln sigma is not linear in
1/T when ln D is, and a line through ln sigma(1/T) extrapolates to a different
(inconsistent) value. Only a measured sigma(T) (e.g. from the charge MSD) is fitted
on its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from viglas.analysis._records import DictRecord
from viglas.errors import FitError
from viglas.units import KB_EV_K, T_ROOM_K

__all__ = ["ArrheniusFit", "VFTFit", "fit_arrhenius", "fit_vft", "compare_models",
           "sigma_from_d_fit", "ne_density_from_points"]

_UNITS = {"D": "cm2/s", "sigma": "mS/cm"}


def _prepare(t_K, y, y_err, quantity):
    if quantity not in _UNITS:
        raise FitError("unknown quantity", field="quantity", value=quantity, allowed="D, sigma")
    t = np.asarray(t_K, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if y_err is None:
        e = np.full_like(y, np.nan)
    else:
        e = np.asarray(y_err, dtype=float).ravel()
    if not (len(t) == len(y) == len(e)):
        raise FitError("t_K, y and y_err must have the same length", field="y",
                       value=(len(t), len(y), len(e)))
    if np.any(~np.isfinite(t)) or np.any(t <= 0):
        raise FitError("temperatures must be positive numbers", field="t_K", value=t.tolist())
    if np.any(~np.isfinite(y)) or np.any(y <= 0):
        raise FitError("values must be positive to take their logarithm", field=quantity,
                       value=y.tolist(), allowed="> 0 (drop non-diffusive temperatures)")
    if y_err is not None and (np.any(~np.isfinite(e)) or np.any(e <= 0)):
        raise FitError("errors must be positive", field=f"{quantity}_err", value=e.tolist())
    s = e / y if y_err is not None else np.ones_like(y)
    return t, y, s


@dataclass
class ArrheniusFit(DictRecord):
    """Arrhenius fit ``ln y = ln_prefactor - ea_eV/(KB_EV_K*T)``.

    cov is 2x2 over ``[ln_prefactor, ea_eV]``. ``prefactor = exp(ln_prefactor)`` in
    ``unit``. ``weighted`` False means no errors were given (unit weights, covariance
    from the scatter).
    """

    quantity: str
    unit: str
    ln_prefactor: float
    prefactor: float
    ea_eV: float
    ea_err_eV: float
    cov: list[list[float]]
    t_min_K: float
    t_max_K: float
    n_points: int
    chi2_red: float
    aic: float
    bic: float
    weighted: bool = True
    model: str = "arrhenius"

    def predict(self, t_K: float | np.ndarray) -> tuple[Any, Any]:
        """Value and 1-sigma error at ``t_K`` (extrapolation allowed)."""
        t = np.asarray(t_K, dtype=float)
        g = np.stack([np.ones_like(t), -1.0 / (KB_EV_K * t)], axis=-1)
        c = np.asarray(self.cov)
        ln = self.ln_prefactor - self.ea_eV / (KB_EV_K * t)
        var = np.einsum("...i,ij,...j->...", g, c, g)
        val = np.exp(ln)
        err = val * np.sqrt(np.maximum(var, 0))
        return (float(val), float(err)) if np.ndim(val) == 0 else (val, err)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        v, e = self.predict(T_ROOM_K)
        key = "d" if self.quantity == "D" else "sigma"
        unit = "cm2_s" if self.quantity == "D" else "mS_cm"
        d[f"{key}_300K_{unit}"] = v
        d[f"{key}_300K_err_{unit}"] = e
        return d


@dataclass
class VFTFit(DictRecord):
    """VFT fit ``ln y = ln_a - b_K / (T - t0_K)``; cov 3x3 over ``[ln_a, b_K, t0_K]``."""

    quantity: str
    unit: str
    ln_a: float
    ln_a_err: float
    b_K: float
    b_err_K: float
    t0_K: float
    t0_err_K: float
    cov: list[list[float]]
    t_min_K: float
    t_max_K: float
    n_points: int
    chi2_red: float
    aic: float
    bic: float
    model: str = "vft"

    @property
    def pseudo_ea_eV(self) -> float:
        """Apparent activation energy ``KB * b`` (eV) at T >> T0."""
        return KB_EV_K * self.b_K

    def predict(self, t_K: float | np.ndarray) -> tuple[Any, Any]:
        """Value and 1-sigma error at ``t_K`` (must exceed t0_K)."""
        t = np.asarray(t_K, dtype=float)
        if np.any(t <= self.t0_K):
            raise FitError("VFT is undefined at or below T0", field="t_K", value=t_K,
                           allowed=f"> {self.t0_K:.1f} K")
        x = t - self.t0_K
        g = np.stack([np.ones_like(t), -1.0 / x, -self.b_K / x**2], axis=-1)
        c = np.asarray(self.cov)
        var = np.einsum("...i,ij,...j->...", g, c, g)
        val = np.exp(self.ln_a - self.b_K / x)
        err = val * np.sqrt(np.maximum(var, 0))
        return (float(val), float(err)) if np.ndim(val) == 0 else (val, err)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pseudo_ea_eV"] = self.pseudo_ea_eV
        return d


def fit_arrhenius(t_K, y, y_err=None, quantity: str = "D") -> ArrheniusFit:
    """Weighted Arrhenius fit of D (cm²/s) or sigma (mS/cm) against T (K).

    Needs >= 2 temperatures (>= 3 for a scatter-based error when no errors given).
    """
    t, yv, s = _prepare(t_K, y, y_err, quantity)
    n = len(t)
    if n < 2 or len(np.unique(t)) < 2:
        raise FitError("an Arrhenius fit needs at least two different temperatures",
                       field="t_K", value=t.tolist())
    if y_err is None and n < 3:
        raise FitError("without errors an Arrhenius fit needs >= 3 temperatures", field="t_K",
                       value=t.tolist())
    x = np.column_stack([np.ones(n), -1.0 / (KB_EV_K * t)])
    w = 1.0 / s**2
    a = x.T @ (w[:, None] * x)
    cov = np.linalg.inv(a)
    beta = cov @ (x.T @ (w * np.log(yv)))
    r = (np.log(yv) - x @ beta) / s
    chi2 = float(r @ r)
    dof = n - 2
    chi2_red = chi2 / dof if dof > 0 else float("nan")
    if y_err is None:
        cov = cov * (chi2_red if dof > 0 else np.nan)
    elif dof > 0 and chi2_red > 1:
        cov = cov * chi2_red
    return ArrheniusFit(quantity=quantity, unit=_UNITS[quantity], ln_prefactor=float(beta[0]),
                        prefactor=float(np.exp(beta[0])), ea_eV=float(beta[1]),
                        ea_err_eV=float(np.sqrt(cov[1, 1])), cov=cov.tolist(),
                        t_min_K=float(t.min()), t_max_K=float(t.max()), n_points=n,
                        chi2_red=chi2_red, aic=chi2 + 4.0, bic=chi2 + 2.0 * np.log(n),
                        weighted=y_err is not None)


def fit_vft(t_K, y, y_err=None, quantity: str = "D", t0_guess_K: float | None = None) -> VFTFit:
    """Weighted VFT fit ``ln y = ln_a - b_K/(T - t0_K)``; needs >= 4 temperatures.

    T0 is bounded to ``[0, min(T) - 1 K)``; a fit that runs onto a bound raises
    FitError (the data do not determine T0: use Arrhenius).
    """
    from scipy.optimize import curve_fit

    t, yv, s = _prepare(t_K, y, y_err, quantity)
    n = len(t)
    if n < 4:
        raise FitError("a VFT fit needs at least four temperatures", field="t_K",
                       value=t.tolist(), allowed=">= 4 points (3 parameters + 1 dof)")
    ly = np.log(yv)

    def f(tt, ln_a, b, t0):
        return ln_a - b / (tt - t0)

    tmin = t.min()
    best = None
    guesses = [t0_guess_K] if t0_guess_K is not None else list(np.linspace(0.0, 0.8 * tmin, 5))
    for t0 in guesses:
        xx = 1.0 / (t - t0)
        b0, a0 = np.polyfit(xx, ly, 1, w=1 / s)
        try:
            p, c = curve_fit(f, t, ly, p0=[a0, max(-b0, 1.0), t0], sigma=s, absolute_sigma=True,
                             bounds=([-np.inf, 0.0, 0.0], [np.inf, np.inf, tmin - 1.0]),
                             maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        chi2 = float(np.sum(((ly - f(t, *p)) / s) ** 2))
        if best is None or chi2 < best[2]:
            best = (p, c, chi2)
    if best is None or not np.all(np.isfinite(best[1])):
        raise FitError("the VFT fit did not converge", field="t_K", value=t.tolist(),
                       hint="use the Arrhenius fit or more temperatures")
    p, c, chi2 = best
    if p[2] > tmin - 1.5:
        raise FitError("T0 ran onto the lowest temperature: VFT not determined by these data",
                       field="t0_K", value=float(p[2]), allowed=f"< {tmin:.0f} K")
    dof = n - 3
    chi2_red = chi2 / dof
    if y_err is None or chi2_red > 1:
        c = c * chi2_red
    e = np.sqrt(np.diag(c))
    return VFTFit(quantity=quantity, unit=_UNITS[quantity], ln_a=float(p[0]), ln_a_err=float(e[0]),
                  b_K=float(p[1]), b_err_K=float(e[1]), t0_K=float(p[2]), t0_err_K=float(e[2]),
                  cov=c.tolist(), t_min_K=float(tmin), t_max_K=float(t.max()), n_points=n,
                  chi2_red=float(chi2_red), aic=chi2 + 6.0, bic=chi2 + 3.0 * np.log(n))


def compare_models(arrhenius: ArrheniusFit, vft: VFTFit) -> dict[str, Any]:
    """AIC/BIC comparison on the same data: lower is better; Akaike weights."""
    aics = np.array([arrhenius.aic, vft.aic])
    w = np.exp(-0.5 * (aics - aics.min()))
    w /= w.sum()
    return {"preferred_aic": ["arrhenius", "vft"][int(np.argmin(aics))],
            "preferred_bic": ["arrhenius", "vft"][int(np.argmin([arrhenius.bic, vft.bic]))],
            "delta_aic": float(vft.aic - arrhenius.aic),
            "delta_bic": float(vft.bic - arrhenius.bic),
            "akaike_weight_arrhenius": float(w[0]), "akaike_weight_vft": float(w[1])}


def sigma_from_d_fit(d_fit: "ArrheniusFit | VFTFit", t_K: float | np.ndarray, n_per_cm3: float,
                     *, charge: float = 1.0, haven: float = 1.0) -> tuple[Any, Any]:
    """Nernst–Einstein sigma (mS/cm) and its 1-sigma error at ``t_K`` from a fit of D(T).

    ``sigma(T) = n (z e)^2 D(T) / (k_B T H)`` with D(T) and its band from
    ``d_fit.predict`` (the fit's covariance); n (cm⁻³) and H are taken as exact, so the
    relative error of sigma is that of D. Use this, not an Arrhenius fit of sigma(T),
    to extrapolate (module doc).
    """
    from .conductivity import nernst_einstein_sigma_mS_cm

    if getattr(d_fit, "quantity", "D") != "D":
        raise FitError("sigma from a fit needs a fit of D(T)", field="quantity",
                       value=d_fit.quantity, allowed="D")
    d, d_err = d_fit.predict(t_K)
    sig = nernst_einstein_sigma_mS_cm(d, n_per_cm3, t_K, charge, haven)
    err = nernst_einstein_sigma_mS_cm(d_err, n_per_cm3, t_K, charge, haven)
    return sig, err


def ne_density_from_points(t_K, d_cm2_s, sigma_mS_cm, charge: float = 1.0) -> float | None:
    """Number density over Haven ratio, ``n / H`` (cm⁻³), implied by Nernst–Einstein
    sigma values computed from D at the same temperatures (median over the points).

    Lets a summary that stored D(T) and sigma(T) (with its density and configured
    Haven ratio) apply the same conversion to an extrapolated D. None without points.
    """
    from .conductivity import nernst_einstein_sigma_mS_cm

    vals = []
    for t, d, s in zip(np.ravel(t_K), np.ravel(d_cm2_s), np.ravel(sigma_mS_cm)):
        if t and d and s and np.isfinite([t, d, s]).all() and d > 0 and s > 0:
            vals.append(s / nernst_einstein_sigma_mS_cm(d, 1.0, t, charge))
    return float(np.median(vals)) if vals else None
