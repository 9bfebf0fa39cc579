"""The stand-alone kernel of the PyBaMM electrolyte functions: evaluating a viglas
Arrhenius / VFT fit (and its band) at T, the fitted-range check, and the property
factory :func:`make_property`.

The block between ``# --- kernel start`` and ``# --- kernel end`` is copied
verbatim into the stand-alone modules written by ``viglas export --format pybamm``
(:func:`kernel_source`); it must only use ``sys``, ``numpy``, ``warnings`` and the
names ``ExtrapolationWarning`` and ``_fail`` defined above it (PyBaMM is looked up,
never imported, there). The functions that take an export or results.json are in
:mod:`viglas.analysis.pybamm_params` (see there for the mapping to PyBaMM).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from viglas.errors import ExportError


class ExtrapolationWarning(UserWarning):
    """A fit is evaluated at a temperature outside the range it was fitted on.

    Turn it into an error with
    ``warnings.simplefilter("error", ExtrapolationWarning)``.
    """


def _fail(message: str, field: str, value: Any, allowed: str) -> None:
    """Raise the viglas error for bad input (the generated module has its own)."""
    raise ExportError(message, field=field, value=value, allowed=allowed)

# --- kernel start
import sys
import warnings

import numpy as np

#: Boltzmann constant in eV/K (CODATA 2018, same as viglas.units.KB_EV_K).
KB_EV_K = 8.617333262e-5
#: 1 mS/cm in S/m.
S_M_PER_MS_CM = 0.1
#: 1 cm^2/s in m^2/s.
M2_S_PER_CM2_S = 1e-4
#: Export block name -> (unit in the export, factor to the PyBaMM SI unit).
_QUANTITIES = {"conductivity": ("mS/cm", S_M_PER_MS_CM),
               "diffusivity": ("cm2/s", M2_S_PER_CM2_S)}


def _is_symbol(x: Any) -> bool:
    """True when ``x`` is a PyBaMM expression.

    Looks PyBaMM up in ``sys.modules`` only: if it was never imported, ``x`` cannot
    be one of its symbols, and float callers do not pay PyBaMM's import time.
    """
    pybamm = sys.modules.get("pybamm")
    return pybamm is not None and isinstance(x, pybamm.Symbol)


def _backend(T: Any) -> Any:
    """Module providing ``exp``/``sqrt``: pybamm for symbols, numpy otherwise."""
    if _is_symbol(T):
        import pybamm
        return pybamm
    return np


def ln_and_sd(model: str, fit: dict, T: Any, with_sd: bool = True) -> tuple[Any, Any]:
    """ln y(T) of a fit and its one-sigma uncertainty (delta method).

    ``model="arrhenius"``: ln y = ln_prefactor - ea_eV / (KB_EV_K * T), covariance
    over [ln_prefactor, ea_eV]. ``model="vft"``: ln y = ln_a - b_K / (T - t0_K),
    covariance over [ln_a, b_K, t0_K]. ``T`` in K: float, numpy array or PyBaMM
    symbol. Returns ``(ln_y, sd_ln_y)``; ``sd_ln_y`` is None when ``with_sd`` is
    False or the fit has no covariance. ``sd_ln_y = sqrt(g^T C g)`` with ``g`` the
    gradient of ln y with respect to the parameters.
    """
    if model == "arrhenius":
        g1 = -1.0 / (KB_EV_K * T)
        ln_y = fit["ln_prefactor"] + fit["ea_eV"] * g1
        grad = [1.0, g1]
    elif model == "vft":
        d = T - fit["t0_K"]
        ln_y = fit["ln_a"] - fit["b_K"] / d
        grad = [1.0, -1.0 / d, -fit["b_K"] / (d * d)]
    else:
        _fail("unknown fit model", "model", model, "'arrhenius' or 'vft'")
    cov = fit.get("cov")
    if not with_sd or cov is None:
        return ln_y, None
    var = 0.0
    for i, gi in enumerate(grad):
        for j, gj in enumerate(grad):
            if cov[i][j] != 0.0:
                var = var + cov[i][j] * gi * gj
    if _is_symbol(var):
        import pybamm
        return ln_y, pybamm.sqrt(pybamm.maximum(var, 0.0))
    return ln_y, np.sqrt(np.maximum(var, 0.0))


def _constant_value(T: Any) -> Any:
    """Numeric value of a constant PyBaMM symbol (broadcasts stripped), else None."""
    import pybamm
    if not T.is_constant():
        return None
    while isinstance(T, pybamm.Broadcast):
        T = T.orphans[0]
    try:
        return T.evaluate()
    except Exception:  # noqa: BLE001 - symbols that cannot be evaluated are not checked
        return None


def check_range(T: Any, t_min_K: float, t_max_K: float, what: str, stacklevel: int = 3) -> bool:
    """Warn with :class:`ExtrapolationWarning` when ``T`` (K) leaves [t_min_K, t_max_K].

    Returns True when a warning was issued. A non-constant PyBaMM symbol cannot be
    checked here (returns False); check the solved temperature instead.
    """
    if _is_symbol(T):
        T = _constant_value(T)
        if T is None:
            return False
    t = np.asarray(T, dtype=float)
    if t.size == 0:
        return False
    lo, hi = float(np.min(t)), float(np.max(t))
    if lo < t_min_K or hi > t_max_K:
        shown = f"{lo:g} K" if lo == hi else f"{lo:g}-{hi:g} K"
        warnings.warn(ExtrapolationWarning(
            f"{what}: T = {shown} is outside the fitted range "
            f"{t_min_K:g}-{t_max_K:g} K; the value is an extrapolation of the fit"),
            stacklevel=stacklevel)
        return True
    return False


def make_property(block: dict, quantity: str, model: str | None = None,
                  n_sigma: float = 0.0, label: str = "") -> Callable[[Any, Any], Any]:
    """PyBaMM-style function ``f(c_e, T)`` from one export block.

    ``block`` is a composition's ``conductivity`` or ``diffusivity`` block of a
    viglas-continuum/1 export; ``quantity`` its name. Returns S/m (conductivity)
    or m^2/s (diffusivity); ``c_e`` (mol/m^3) is accepted and ignored (a
    single-ion glass has c_e-independent properties). ``n_sigma`` shifts ln y by
    ``n_sigma`` standard deviations (delta method) for sensitivity studies.
    """
    unit, factor = _QUANTITIES[quantity]
    model = model or block["preferred_model"]
    if model not in ("arrhenius", "vft"):
        _fail("unknown fit model", "model", model, "'arrhenius' or 'vft'")
    fit = block.get(model)
    if fit is None:
        _fail(f"no {model} fit for the {quantity} in the export", f"{quantity}.{model}", None,
              "a model whose fit exists: " + ", ".join(
                  m for m in ("arrhenius", "vft") if block.get(m) is not None))
    if n_sigma and fit.get("cov") is None:
        _fail(f"the {model} fit of the {quantity} has no covariance", "n_sigma", n_sigma,
              "0 when the covariance is missing")
    t_min, t_max = fit["t_min_K"], fit["t_max_K"]
    what = f"{label} {quantity} ({model})".strip()

    def func(c_e: Any, T: Any) -> Any:
        check_range(T, t_min, t_max, what)
        if model == "vft" and not _is_symbol(T) and np.any(np.asarray(T) <= fit["t0_K"]):
            _fail(f"{what}: the VFT law diverges at T <= t0_K", "T", T,
                  f"T > t0_K = {fit['t0_K']:g} K")
        xp = _backend(T)
        ln_y, sd = ln_and_sd(model, fit, T, with_sd=bool(n_sigma))
        if n_sigma:
            ln_y = ln_y + n_sigma * sd
        return factor * xp.exp(ln_y)

    func.__name__ = f"electrolyte_{quantity}"
    func.__doc__ = (f"{what} in {'S/m' if quantity == 'conductivity' else 'm2/s'}"
                    f" from T in K (c_e in mol/m3 is ignored); fitted on {t_min:g}-{t_max:g} K.")
    func.model = model
    func.what = what
    func.fit = fit
    func.t_min_K = t_min
    func.t_max_K = t_max
    return func
# --- kernel end


def kernel_source() -> str:
    """Source text of the self-contained kernel (for the generated PyBaMM module)."""
    text = Path(__file__).read_text(encoding="utf-8")
    start = text.index("\n# --- kernel start\n") + 1
    end = text.index("\n# --- kernel end\n") + 1
    return text[start:end] + "# --- kernel end\n"
