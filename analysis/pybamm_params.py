"""PyBaMM electrolyte functions built from viglas Arrhenius / VFT fits.

A VIGLAS glass is a *solid single-ion conductor*: only the alkali ion (Li+ or Na+)
moves, the anion network (M, Cl, O) is immobile. PyBaMM's electrolyte models
(SPMe, DFN) describe a binary electrolyte with a salt concentration ``c_e``. The
mapping used here (documented in the export schema, ``assumptions``):

* ``Electrolyte conductivity [S.m-1]`` = sigma(T) from the fit, converted
  mS/cm -> S/m (x 0.1); independent of ``c_e``.
* ``Electrolyte diffusivity [m2.s-1]`` = D(T) of the mobile ion from the fit,
  converted cm^2/s -> m^2/s (x 1e-4); independent of ``c_e``.
* ``Cation transference number`` = 1 (assumption: single-ion conductor). With
  t+ = 1 the reaction source term (1 - t+) j / F and the diffusion-potential term
  vanish, so ``c_e`` stays uniform and the diffusivity has no effect on the
  solution; it is set for completeness.
* ``Thermodynamic factor`` = 1 (irrelevant when t+ = 1).
* The conductivity is the *bulk* glass value; porosity/Bruggeman corrections of
  the parameter set still apply (composite electrodes, separator layer).

Temperatures outside the fitted range raise an :class:`ExtrapolationWarning`
(never a silent extrapolation). With PyBaMM symbols the check is done when the
temperature is a constant (isothermal models); for thermal models check the
solution afterwards with :func:`check_temperature_range`.

The evaluation kernel (also copied into the modules ``viglas export --format
pybamm`` writes) is :mod:`viglas.analysis.pybamm_kernel`.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from viglas.analysis.export import as_export, select_composition
from viglas.analysis.pybamm_kernel import (KB_EV_K, M2_S_PER_CM2_S, S_M_PER_MS_CM,
                                           ExtrapolationWarning, check_range, kernel_source,
                                           ln_and_sd, make_property)
from viglas.errors import ExportError

__all__ = ["make_electrolyte_conductivity", "make_electrolyte_diffusivity",
           "electrolyte_conductivity", "electrolyte_diffusivity", "parameter_dict",
           "update_parameter_values", "check_temperature_range",
           # the kernel, re-exported
           "ExtrapolationWarning", "make_property", "check_range", "ln_and_sd",
           "kernel_source", "KB_EV_K", "S_M_PER_MS_CM", "M2_S_PER_CM2_S"]



def _composition(source: Any, composition: str | None) -> dict:
    """The export entry of one composition from an export, results, or path."""
    return select_composition(as_export(source), composition)


def make_electrolyte_conductivity(source: Any, composition: str | None = None, *,
                                  model: str | None = None,
                                  n_sigma: float = 0.0) -> Callable[[Any, Any], Any]:
    """Factory: ``electrolyte_conductivity(c_e, T)`` in S/m from the sigma(T) fit.

    ``source``: a viglas-continuum export (dict or file) or a viglas-results
    results.json (dict or path). ``composition``: formula or label (needed when
    there are several). ``model``: "arrhenius" or "vft" (default: the preferred
    one). ``n_sigma``: shift ln sigma by that many standard deviations. The
    returned function takes c_e in mol/m^3 (ignored) and T in K (float, array or
    PyBaMM symbol) and warns (:class:`ExtrapolationWarning`) outside the fit range.
    """
    comp = _composition(source, composition)
    return make_property(comp["conductivity"], "conductivity", model, n_sigma, comp["label"])


def make_electrolyte_diffusivity(source: Any, composition: str | None = None, *,
                                 model: str | None = None,
                                 n_sigma: float = 0.0) -> Callable[[Any, Any], Any]:
    """Factory: ``electrolyte_diffusivity(c_e, T)`` in m^2/s from the D(T) fit.

    Same arguments as :func:`make_electrolyte_conductivity`; D is the tracer
    diffusion coefficient of the mobile ion, converted from cm^2/s.
    """
    comp = _composition(source, composition)
    return make_property(comp["diffusivity"], "diffusivity", model, n_sigma, comp["label"])


def electrolyte_conductivity(c_e: Any, T: Any, *, source: Any,
                             composition: str | None = None, model: str | None = None) -> Any:
    """sigma in S/m at ``T`` (K) for ``c_e`` (mol/m^3, ignored) from ``source`` fits."""
    return make_electrolyte_conductivity(source, composition, model=model)(c_e, T)


def electrolyte_diffusivity(c_e: Any, T: Any, *, source: Any,
                            composition: str | None = None, model: str | None = None) -> Any:
    """D in m^2/s at ``T`` (K) for ``c_e`` (mol/m^3, ignored) from ``source`` fits."""
    return make_electrolyte_diffusivity(source, composition, model=model)(c_e, T)


def parameter_dict(source: Any, composition: str | None = None, *, model: str | None = None,
                   n_sigma: float = 0.0, set_concentration: bool = False) -> dict[str, Any]:
    """PyBaMM parameter names -> values for one composition (see module docstring).

    ``set_concentration=True`` also sets ``Initial concentration in electrolyte
    [mol.m-3]`` to the mobile-ion concentration of the glass (changes the
    Butler-Volmer exchange current of most parameter sets; off by default).
    """
    comp = _composition(source, composition)
    out: dict[str, Any] = {
        "Electrolyte conductivity [S.m-1]": make_property(
            comp["conductivity"], "conductivity", model, n_sigma, comp["label"]),
        "Electrolyte diffusivity [m2.s-1]": make_property(
            comp["diffusivity"], "diffusivity", model, n_sigma, comp["label"]),
        "Cation transference number": float(comp["transference_number"]),
        "Thermodynamic factor": 1.0,
    }
    if set_concentration:
        c = comp.get("mobile_ion_concentration_mol_m3")
        if c is None:
            raise ExportError("the export has no mobile-ion concentration",
                              field="mobile_ion_concentration_mol_m3", value=None,
                              allowed="a number in mol/m^3 (results need number_density_per_cm3)")
        out["Initial concentration in electrolyte [mol.m-3]"] = float(c)
    return out


def update_parameter_values(parameter_values: Any, export_or_results: Any,
                            composition: str | None = None, *, model: str | None = None,
                            n_sigma: float = 0.0, set_concentration: bool = False) -> Any:
    """Put viglas electrolyte functions into a ``pybamm.ParameterValues`` (in place).

    Replaces ``Electrolyte conductivity [S.m-1]`` and ``Electrolyte diffusivity
    [m2.s-1]`` by functions of T built from the fits, sets ``Cation transference
    number`` = 1 and ``Thermodynamic factor`` = 1 (single-ion conductor), and
    warns (:class:`ExtrapolationWarning`) when the parameter set's ambient or
    initial temperature lies outside the fitted range. Returns ``parameter_values``.
    ``export_or_results``: export or results.json (dict or path).
    """
    try:
        import pybamm
    except ImportError as exc:  # pragma: no cover - tested where pybamm exists
        from viglas.errors import MissingDependencyError
        raise MissingDependencyError("PyBaMM is not installed", field="pybamm",
                                     hint="pip install 'viglas[continuum]'") from exc
    if not isinstance(parameter_values, pybamm.ParameterValues):
        raise ExportError("not a pybamm.ParameterValues", field="parameter_values",
                          value=type(parameter_values).__name__,
                          allowed="pybamm.ParameterValues, e.g. ParameterValues('Chen2020')")
    values = parameter_dict(export_or_results, composition, model=model, n_sigma=n_sigma,
                            set_concentration=set_concentration)
    parameter_values.update(values, check_already_exists=False)
    temps: dict[str, float] = {}
    for key in ("Ambient temperature [K]", "Initial temperature [K]"):
        try:
            t = parameter_values[key]
        except KeyError:
            continue
        if isinstance(t, (int, float)):
            temps[key] = float(t)
    if temps:
        keys = " and ".join(k.replace(" [K]", "") for k in temps)
        for name in ("Electrolyte conductivity [S.m-1]", "Electrolyte diffusivity [m2.s-1]"):
            f = values[name]
            check_range(np.array(list(temps.values())), f.t_min_K, f.t_max_K,
                        f"{f.what} at the parameter set's {keys.lower()}", stacklevel=3)
    return parameter_values


def check_temperature_range(temperature_K: Any, export_or_results: Any,
                            composition: str | None = None, model: str | None = None) -> bool:
    """Warn when temperatures (K; array, or a PyBaMM solution) leave the fitted ranges.

    For a ``pybamm.Solution`` the ``Cell temperature [K]`` variable is checked
    (thermal models, where the symbolic check in the functions cannot run).
    Returns True when a warning was issued.
    """
    pybamm = sys.modules.get("pybamm")
    if pybamm is not None and isinstance(temperature_K, pybamm.Solution):
        temperature_K = temperature_K["Cell temperature [K]"].entries
    comp = _composition(export_or_results, composition)
    warned = False
    for q in ("conductivity", "diffusivity"):
        block = comp[q]
        m = model or block["preferred_model"]
        fit = block[m]
        warned |= check_range(np.asarray(temperature_K, dtype=float), fit["t_min_K"],
                              fit["t_max_K"], f"{comp['label']} {q} ({m})", stacklevel=2)
    return warned
