"""Continuum-model parameters from a viglas results.json (schema viglas-continuum/1).

A viglas run (``results.json``, schema ``viglas-results/1``) holds per composition
Arrhenius and VFT fits of sigma(T) (mS/cm) and D(T) (cm^2/s). This module turns
them into a versioned, documented parameter set for continuum battery models::

    from viglas.analysis.export import export_parameters, load_export
    exp = export_parameters("run/results.json", format="json", out="laco.json")
    assert load_export("laco.json") == exp        # exact round trip

Formats: ``json``, ``yaml`` (same document), ``csv`` (``parameters.csv``: one
row per value, key path + JSON-encoded value, exact; plus ``grid_<label>.csv``
interpolation tables of sigma(T), D(T) in project and SI units) and ``pybamm``
(a stand-alone Python module with ``electrolyte_conductivity(c_e, T)`` and
``electrolyte_diffusivity(c_e, T)``; needs only PyBaMM and numpy).

The schema (``viglas/analysis/data/continuum-schema.json``) documents every field
with its unit. Values at 298.15 K carry a one-sigma uncertainty from the fit
covariance by the delta method on ln y: ``err = y * sqrt(g^T C g)`` with ``g`` the
gradient of ln y in the fit parameters, and a band ``[y exp(-s), y exp(+s)]``
(s = that standard deviation of ln y). MD fits are usually made at high T, so
298.15 K is often an extrapolation: it is flagged (``*_in_fitted_range``) and
warned about (:class:`ExtrapolationWarning`), never silent.

This module builds the document and reads/writes it in each format; the schema
identifiers and validation live in :mod:`viglas.analysis.export_schema`, the CSV form
in :mod:`viglas.analysis.export_csv`, the PyBaMM module form in
:mod:`viglas.analysis.export_pybamm` (their public names are importable from here too).
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from viglas.analysis.export_csv import read_parameters_csv, write_csv_export, write_grid_csv
from viglas.analysis.export_pybamm import pybamm_module_text, read_pybamm_module
from viglas.analysis.export_schema import (CONTINUUM_SCHEMA, RESULTS_SCHEMA, SCHEMA_VERSION,
                                           load_schema, validate_export)
from viglas.analysis.pybamm_kernel import ExtrapolationWarning, ln_and_sd
from viglas.errors import ExportError
from viglas.serialize import clean
from viglas.units import T_STANDARD_K

__all__ = [
    "CONTINUUM_SCHEMA", "RESULTS_SCHEMA", "FORMATS", "DEFAULT_GRID_T_K", "ExtrapolationWarning",
    "IncompleteResultsWarning",
    "build_export", "export_parameters", "load_export", "validate_export", "load_schema",
    "select_composition", "as_export", "grid_table", "write_grid_csv", "predict",
]

#: Output formats.
FORMATS = ("json", "yaml", "csv", "pybamm")
#: Default interpolation grid, K: -40 degC to 100 degC in 5 K steps (includes 298.15 K).
DEFAULT_GRID_T_K: tuple[float, ...] = tuple(round(233.15 + 5.0 * k, 2) for k in range(29))
#: Avogadro constant, 1/mol.
_NA = 6.02214076e23

_CANONICAL = {"conductivity": ("sigma", "mS/cm"), "diffusivity": ("D", "cm2/s")}
#: Accepted units of a fit and the factor to the canonical unit.
_UNIT_FACTORS = {
    "conductivity": {"mS/cm": 1.0, "mS cm-1": 1.0, "mS_cm": 1.0, "mS/cm^1": 1.0,
                     "S/cm": 1e3, "S cm-1": 1e3, "S_cm": 1e3, "S/m": 10.0, "S m-1": 10.0,
                     "S_m": 10.0},
    "diffusivity": {"cm2/s": 1.0, "cm^2/s": 1.0, "cm2 s-1": 1.0, "cm2_s": 1.0,
                    "m2/s": 1e4, "m^2/s": 1e4, "m2 s-1": 1e4, "m2_s": 1e4,
                    "A2/fs": 0.1, "Å2/fs": 0.1, "A^2/fs": 0.1},
}
_FIT_KEYS = {"conductivity": ("sigma_arrhenius", "sigma_vft"),
             "diffusivity": ("d_arrhenius", "d_vft")}
_REQUIRED = {"arrhenius": ("ln_prefactor", "ea_eV", "t_min_K", "t_max_K"),
             "vft": ("ln_a", "b_K", "t0_K", "t_min_K", "t_max_K")}
_ASSUMPTIONS = [
    "Single-ion conductor: only the alkali ion moves, the anion network is immobile; "
    "the cation transference number is therefore set to 1 (an assumption, not a "
    "measurement).",
    "Arrhenius model: ln y = ln_prefactor - ea_eV / (k_B T), k_B = 8.617333262e-5 eV/K; "
    "VFT model: ln y = ln_a - b_K / (T - t0_K). y is sigma in mS/cm or D in cm^2/s.",
    "Uncertainties are one standard deviation from the fit covariance (delta method "
    "on ln y); bands are [y exp(-s), y exp(+s)] with s the standard deviation of ln y.",
    "sigma and D are bulk values of the glass, independent of the electrolyte "
    "concentration c_e; porosity/tortuosity corrections belong to the cell model.",
    "PyBaMM mapping: conductivity S/m = 0.1 x mS/cm; diffusivity m^2/s = 1e-4 x cm^2/s "
    "(tracer D of the mobile ion; with t+ = 1 it does not affect the solution).",
]


class IncompleteResultsWarning(UserWarning):
    """The results are unfinished: some compositions have no fits and were left out of
    the export, or the fits come from part of the planned MD runs (failed or missing
    runs). The export says so (``complete: false``, ``incomplete_reasons``)."""


# ----------------------------------------------------------------------------- helpers
def _clean(obj: Any) -> Any:
    """Plain JSON types: numpy -> python, tuples -> lists, NaN/inf -> None, anything
    else unknown as its string (:func:`viglas.serialize.clean`)."""
    return clean(obj, default=str)


def _num(x: Any) -> float | None:
    """A finite float or None."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _normalise_fit(fit: Any, model: str, quantity: str, field: str) -> dict | None:
    """Check one fit dict (ArrheniusFit/VFTFit.to_dict()) and convert to canonical units."""
    if fit is None:
        return None
    if not isinstance(fit, Mapping):
        raise ExportError("a fit must be a mapping (ArrheniusFit/VFTFit.to_dict())",
                          field=field, value=type(fit).__name__, allowed="a dict or null")
    out = _clean(dict(fit))
    for key in _REQUIRED[model]:
        if _num(out.get(key)) is None:
            raise ExportError(f"the {model} fit lacks a finite '{key}'", field=f"{field}.{key}",
                              value=fit.get(key), allowed="a finite number")
        out[key] = float(out[key])
    if not out["t_min_K"] <= out["t_max_K"]:
        raise ExportError("fitted temperature range is reversed", field=f"{field}.t_min_K",
                          value=[out["t_min_K"], out["t_max_K"]], allowed="t_min_K <= t_max_K")
    n = 2 if model == "arrhenius" else 3
    cov = out.get("cov")
    if cov is not None:
        arr = np.asarray(cov, dtype=float) if _is_numeric_matrix(cov) else None
        if arr is None or arr.shape != (n, n) or not np.all(np.isfinite(arr)):
            raise ExportError(f"covariance must be a finite {n}x{n} matrix", field=f"{field}.cov",
                              value=cov, allowed=f"{n}x{n} list of numbers or null")
        if not np.allclose(arr, arr.T, rtol=1e-8, atol=0.0) or np.any(np.diag(arr) < 0):
            raise ExportError("covariance must be symmetric with a non-negative diagonal",
                              field=f"{field}.cov", value=cov, allowed="a covariance matrix")
        out["cov"] = [[float(v) for v in row] for row in cov]
    canonical_q, canonical_unit = _CANONICAL[quantity]
    unit = out.get("unit") or canonical_unit
    factors = _UNIT_FACTORS[quantity]
    if unit not in factors:
        raise ExportError(f"unknown unit of the {quantity} fit", field=f"{field}.unit",
                          value=unit, allowed=", ".join(factors))
    factor = factors[unit]
    if factor != 1.0:
        key = "ln_prefactor" if model == "arrhenius" else "ln_a"
        out[key] = out[key] + math.log(factor)
        for k in ("prefactor", "a"):
            if _num(out.get(k)) is not None:
                out[k] = out[k] * factor
        out["converted_from_unit"] = unit
    out["unit"] = canonical_unit
    out.setdefault("quantity", canonical_q)
    out["model"] = model
    out["cov_params"] = (["ln_prefactor", "ea_eV"] if model == "arrhenius"
                         else ["ln_a", "b_K", "t0_K"])  # rows/columns of cov
    return out


def _is_numeric_matrix(cov: Any) -> bool:
    try:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool)
                   for row in cov for v in row)
    except TypeError:
        return False


def predict(block: Mapping, t_K: Any, model: str | None = None) -> dict[str, Any]:
    """Evaluate an export block (``conductivity``/``diffusivity``) at ``t_K`` (K).

    Returns ``{"model", "value", "err", "low", "high", "in_fitted_range"}`` in the
    block's unit (mS/cm or cm^2/s); ``err`` is the delta-method one-sigma error,
    ``low``/``high`` the one-sigma band in ln y (None without covariance). Arrays
    in, arrays out. No warning here; callers decide (see ``in_fitted_range``).
    """
    model = model or block["preferred_model"]
    fit = block[model]
    t = np.asarray(t_K, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ln_y, sd = ln_and_sd(model, fit, t)
        y = np.exp(ln_y)
        valid = np.isfinite(y) & ((t > fit["t0_K"]) if model == "vft" else True)
        y = np.where(valid, y, np.nan)
        if sd is not None:
            err, low, high = y * sd, y * np.exp(-sd), y * np.exp(sd)
        else:
            err = low = high = None
    inside = (t >= fit["t_min_K"]) & (t <= fit["t_max_K"])
    return {"model": model, "value": y, "err": err, "low": low, "high": high,
            "in_fitted_range": inside}


def _scalar(x: Any) -> float | None:
    return None if x is None else _num(np.asarray(x).item())


# ----------------------------------------------------------------------------- build
def _read_results_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError("file not found", field="results", value=str(path),
                          allowed="a results.json written by 'viglas run'") from None
    except json.JSONDecodeError as exc:
        raise ExportError(f"not valid JSON ({exc.msg} at line {exc.lineno})", field="results",
                          value=str(path), allowed="a results.json written by 'viglas run'"
                          ) from None


def _as_results(results: Any) -> tuple[dict, str | None]:
    if isinstance(results, (str, Path)):
        path = Path(results)
        if path.is_dir():
            path = path / "results.json"
        return _read_results_json(path), str(path)
    if isinstance(results, Mapping):
        return dict(results), None
    raise ExportError("results must be a dict or a path to results.json", field="results",
                      value=type(results).__name__, allowed="dict, str or pathlib.Path")


def _block(fits: Mapping, quantity: str, preferred: str, where: str) -> dict:
    arr_key, vft_key = _FIT_KEYS[quantity]
    arr = _normalise_fit(fits.get(arr_key), "arrhenius", quantity, f"{where}.fits.{arr_key}")
    vft = _normalise_fit(fits.get(vft_key), "vft", quantity, f"{where}.fits.{vft_key}")
    if arr is None and vft is None:
        exc = ExportError(f"no {quantity} fit (neither {arr_key} nor {vft_key})",
                          field=f"{where}.fits.{arr_key}", value=None,
                          allowed="an ArrheniusFit or VFTFit dict",
                          hint="run the temperature series and the Arrhenius analysis first")
        exc.no_fits = True
        raise exc
    model = preferred
    if (model == "vft" and vft is None) or (model == "arrhenius" and arr is None):
        model = "vft" if arr is None else "arrhenius"
    q, unit = _CANONICAL[quantity]
    return {"quantity": q, "unit": unit, "preferred_model": model, "arrhenius": arr, "vft": vft}


def _at_reference(block: dict, prefix: str, unit_tag: str, si_tag: str, si: float,
                  t_ref: float) -> dict:
    p = predict(block, t_ref)
    out = {
        f"{prefix}_{unit_tag}": _scalar(p["value"]),
        f"{prefix}_err_{unit_tag}": _scalar(p["err"]),
        f"{prefix}_low_{unit_tag}": _scalar(p["low"]),
        f"{prefix}_high_{unit_tag}": _scalar(p["high"]),
        f"{prefix}_{si_tag}": None,
        f"{prefix}_err_{si_tag}": None,
        f"{prefix}_model": p["model"],
        f"{prefix}_in_fitted_range": bool(p["in_fitted_range"]),
    }
    if out[f"{prefix}_{unit_tag}"] is not None:
        out[f"{prefix}_{si_tag}"] = out[f"{prefix}_{unit_tag}"] * si
    if out[f"{prefix}_err_{unit_tag}"] is not None:
        out[f"{prefix}_err_{si_tag}"] = out[f"{prefix}_err_{unit_tag}"] * si
    return out


def grid_table(comp: Mapping, t_K: Sequence[float] | None = None) -> dict[str, list]:
    """sigma(T), D(T) on a temperature grid (K) for one export composition.

    Columns (lists): ``t_K``, ``sigma_mS_cm``, ``sigma_err_mS_cm``, ``sigma_S_m``,
    ``sigma_err_S_m``, ``d_cm2_s``, ``d_err_cm2_s``, ``d_m2_s``, ``d_err_m2_s``,
    ``sigma_in_fitted_range``, ``d_in_fitted_range`` (preferred models; None where
    a VFT law is undefined, T <= t0_K). Default grid: :data:`DEFAULT_GRID_T_K`.
    """
    t = [float(v) for v in (DEFAULT_GRID_T_K if t_K is None else t_K)]
    if not t or any(not math.isfinite(v) or v <= 0 for v in t):
        raise ExportError("grid temperatures must be finite and > 0 K", field="grid_t_K",
                          value=list(t_K) if t_K is not None else t,
                          allowed="a non-empty list of temperatures in K")
    cols: dict[str, list] = {"t_K": t}
    for block_name, tag, unit, si_unit, si in (("conductivity", "sigma", "mS_cm", "S_m", 0.1),
                                               ("diffusivity", "d", "cm2_s", "m2_s", 1e-4)):
        p = predict(comp[block_name], t)
        val = [_num(v) for v in np.atleast_1d(p["value"])]
        err = ([_num(v) for v in np.atleast_1d(p["err"])] if p["err"] is not None
               else [None] * len(t))
        cols[f"{tag}_{unit}"] = val
        cols[f"{tag}_err_{unit}"] = err
        cols[f"{tag}_{si_unit}"] = [None if v is None else v * si for v in val]
        cols[f"{tag}_err_{si_unit}"] = [None if v is None else v * si for v in err]
        cols[f"{tag}_in_fitted_range"] = [bool(v) for v in np.atleast_1d(p["in_fitted_range"])]
    return cols


def _composition_entry(c: Mapping, i: int, t_ref: float, grid_t_K: Sequence[float] | None,
                       notes: list[str]) -> dict:
    where = f"compositions[{i}]"
    fits = c.get("fits")
    if not isinstance(fits, Mapping) or not fits:
        exc = ExportError("composition has no fits", field=f"{where}.fits", value=fits,
                          allowed="fits with sigma_arrhenius/d_arrhenius (or VFT) dicts",
                          hint="run the temperature series and the Arrhenius analysis first")
        exc.no_fits = True
        raise exc
    preferred = fits.get("preferred_model") or "arrhenius"
    if preferred not in ("arrhenius", "vft"):
        raise ExportError("unknown preferred model", field=f"{where}.fits.preferred_model",
                          value=preferred, allowed="'arrhenius' or 'vft'")
    sig = _block(fits, "conductivity", preferred, where)
    dif = _block(fits, "diffusivity", preferred, where)
    formula = c.get("formula")
    if not isinstance(formula, str) or not formula:
        raise ExportError("composition has no formula", field=f"{where}.formula", value=formula,
                          allowed="a formula such as LiAlCl2.5O0.75")
    label = c.get("label") or formula
    n_per_cm3 = _num(c.get("number_density_per_cm3"))
    ea = _num(c.get("ea_eV"))
    ea_err = _num(c.get("ea_err_eV"))
    if ea is None and sig["arrhenius"] is not None:
        ea = sig["arrhenius"]["ea_eV"]
        ea_err = _num(sig["arrhenius"].get("ea_err_eV"))
    entry: dict[str, Any] = {
        "formula": formula,
        "label": str(label),
        "x": _num(c.get("x")),
        "oxygen_fraction": _num(c.get("oxygen_fraction")),
        "alkali": _clean(c.get("alkali")),
        "former": _clean(c.get("former")),
        "mobile_species": _clean(c.get("mobile_species")),
        "n_atoms": c.get("n_atoms") if isinstance(c.get("n_atoms"), int) else None,
        "density_g_cm3": _num(c.get("density_g_cm3")),
        "number_density_per_cm3": n_per_cm3,
        "mobile_ion_concentration_mol_m3": (None if n_per_cm3 is None
                                            else n_per_cm3 * 1e6 / _NA),
        "calculator": _clean(c.get("calculator")),
        "conductivity": sig,
        "diffusivity": dif,
        "t_ref_K": t_ref,
        "at_t_ref": {
            **_at_reference(sig, "sigma", "mS_cm", "S_m", 0.1, t_ref),
            **_at_reference(dif, "d", "cm2_s", "m2_s", 1e-4, t_ref),
        },
        "ea_eV": ea,
        "ea_err_eV": ea_err,
        "tg_K": _num(c.get("tg_K")),
        "tg_err_K": _num(c.get("tg_err_K")),
        "haven_ratio": _num(c.get("haven_ratio")),
        "complete": c.get("complete") is not False,
        "transference_number": 1.0,
        "transference_number_source": "assumption: single-ion conductor (only "
                                      f"{c.get('mobile_species') or 'the alkali ion'} moves)",
        "transference_number_md": _num(c.get("transference_number")),
        "transference_number_md_err": _num(c.get("transference_number_err")),
        "transference_number_md_t_K": [float(t) for t in (c.get("transference_t_K") or [])],
        "measured": [
            {**{k: _clean(row.get(k)) for k in ("t_K", "sigma_mS_cm", "sigma_err_mS_cm",
                                                "d_cm2_s", "d_err_cm2_s", "haven_ratio")},
             "d_estimate": row.get("d_estimate") or "value"}
            for row in (c.get("temperatures") or []) if isinstance(row, Mapping)
        ],
    }
    for b in fits.get("bounds") or []:
        if isinstance(b, Mapping) and b.get("contradicts"):
            notes.append(f"{label}: the D fit lies {'above' if b.get('d_estimate') == 'upper' else 'below'} "
                         f"the {b.get('d_estimate')} estimate measured at {b.get('t_K'):g} K "
                         f"(no diffusive regime there), so its values at and below "
                         f"{b.get('t_K'):g} K are too {'high' if b.get('d_estimate') == 'upper' else 'low'}")
    grid = grid_table(entry, grid_t_K)
    grid_models = {"sigma_model": sig["preferred_model"], "d_model": dif["preferred_model"]}
    entry["grid"] = {**grid_models, **grid}
    outside = []
    for tag, key, block in (("sigma", "sigma", sig), ("D", "d", dif)):
        if not entry["at_t_ref"][f"{key}_in_fitted_range"]:
            fit = block[block["preferred_model"]]
            outside.append(f"{tag} (fitted on {fit['t_min_K']:g}-{fit['t_max_K']:g} K)")
    if outside:
        notes.append(f"{label}: {' and '.join(outside)} at {t_ref:g} K is an extrapolation "
                     "(flagged *_in_fitted_range = false in the export)")
    for tag, key, block in (("sigma", "sigma", sig), ("D", "d", dif)):
        fit = block[block["preferred_model"]]
        t0 = fit.get("t0_K") if block["preferred_model"] == "vft" else None
        if t0 is not None and t_ref <= t0:
            notes.append(f"{label}: the preferred VFT fit of {tag} has T0 = {t0:.0f} K, at or "
                         f"above {t_ref:g} K: no value there (null in at_t_ref); the "
                         "Arrhenius block gives one")
    return entry


def _incomplete_reasons(data: Mapping, entries: list[dict], skipped: list[dict]) -> list[str]:
    """Why a results document is unfinished (empty list when it is complete)."""
    out = []
    status = data.get("status") if isinstance(data.get("status"), Mapping) else {}
    failed = status.get("failed") or []
    if failed:
        out.append(f"{len(failed)} job(s) failed or were skipped in the run")
    if status.get("complete") is False and not failed:
        out.append(f"the run is unfinished ({status.get('jobs_finished')} of "
                   f"{status.get('jobs_total')} jobs)")
    for e in entries:
        if not e.get("complete", True):
            out.append(f"{e['label']}: fits made without every planned MD run")
    if skipped:
        out.append("left out (no fits): " + ", ".join(s["formula"] for s in skipped))
    return out


def _lacks_fits(exc: ExportError) -> bool:
    return bool(getattr(exc, "no_fits", False))


def build_export(results: Any, *, composition: str | None = None,
                 grid_t_K: Sequence[float] | None = None,
                 t_ref_K: float = T_STANDARD_K, _stacklevel: int = 2) -> dict:
    """Build the viglas-continuum/1 document from a results.json (dict or path).

    ``composition``: keep only this formula/label (default: all). ``grid_t_K``:
    temperatures (K) of the interpolation grid. ``t_ref_K``: reference temperature
    of the headline values (298.15 K). Raises ExportError for results without fits.
    Warns (:class:`ExtrapolationWarning`) when ``t_ref_K`` lies outside a fit range.
    Compositions without fits are left out (listed in ``skipped``, with an
    :class:`IncompleteResultsWarning`) unless none has fits or one was asked for.
    """
    from viglas.provenance import package_versions, provenance, stable_hash

    data, path = _as_results(results)
    schema = data.get("schema")
    if schema == CONTINUUM_SCHEMA:
        raise ExportError("this is already a continuum export", field="schema", value=schema,
                          allowed=RESULTS_SCHEMA, hint="use load_export() to read it")
    if schema != RESULTS_SCHEMA:
        raise ExportError("not a viglas results document", field="schema", value=schema,
                          allowed=RESULTS_SCHEMA)
    comps = data.get("compositions")
    if not isinstance(comps, list) or not comps:
        raise ExportError("results hold no compositions", field="compositions", value=comps,
                          allowed="a non-empty list (run 'viglas run' first)")
    if _num(t_ref_K) is None or t_ref_K <= 0:
        raise ExportError("reference temperature must be > 0 K", field="t_ref_K", value=t_ref_K,
                          allowed="a temperature in K, e.g. 298.15")
    indices = list(range(len(comps)))
    if composition is not None:
        names = [(c.get("formula"), c.get("label")) for c in comps]
        indices = [i for i, (f, lab) in enumerate(names) if composition in (f, lab)]
        if not indices:
            raise ExportError("composition not in the results", field="composition",
                              value=composition,
                              allowed=", ".join(str(f) for f, _ in names))
    notes: list[str] = []
    entries: list[dict] = []
    skipped: list[dict] = []
    for i in indices:
        try:
            entries.append(_composition_entry(comps[i], i, float(t_ref_K), grid_t_K, notes))
        except ExportError as exc:
            # a sweep may hold unfinished compositions: export the others, say which not
            if composition is not None or len(indices) == 1 or not _lacks_fits(exc):
                raise
            skipped.append({"formula": str(comps[i].get("formula")), "reason": exc.one_line()})
    if not entries:
        raise ExportError("no composition in the results has fits", field="compositions",
                          value=[s["formula"] for s in skipped],
                          allowed="at least one composition with sigma and D fits",
                          hint="finish the run ('viglas run' resumes) before exporting")
    reasons = _incomplete_reasons(data, entries, skipped)
    if reasons:
        warnings.warn(IncompleteResultsWarning(
            "the results are incomplete: " + "; ".join(reasons)), stacklevel=_stacklevel)
    for note in notes:
        warnings.warn(ExtrapolationWarning(note), stacklevel=_stacklevel)
    perc = data.get("percolation")
    export = {
        "schema": CONTINUUM_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "units": {"t": "K", "sigma": "mS/cm (S/m where the name ends _S_m)",
                  "d": "cm^2/s (m^2/s where the name ends _m2_s)", "ea": "eV",
                  "concentration": "mol/m^3", "number_density": "1/cm^3"},
        "assumptions": list(_ASSUMPTIONS),
        "complete": not reasons,
        "incomplete_reasons": reasons,
        "compositions": entries,
        "skipped": skipped,
        "percolation": _clean(perc) if isinstance(perc, Mapping) else None,
        "provenance": {
            "source": {
                "schema": schema,
                "path": path,
                "hash": stable_hash(data),
                "provenance": _clean(data.get("provenance")),
            },
            "export": provenance(versions_continuum=package_versions(extra=("pybamm",))),
        },
    }
    export = _clean(export)
    validate_export(export)
    return export


# ----------------------------------------------------------------------------- access
def as_export(source: Any) -> dict:
    """An export dict from an export (dict or file) or a results.json (dict or path)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix.lower() == ".json" or path.is_dir():
            data, _ = _as_results(path)
            if data.get("schema") == RESULTS_SCHEMA:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExtrapolationWarning)
                    return build_export(data)
        return load_export(path)
    if isinstance(source, Mapping):
        schema = source.get("schema")
        if schema == CONTINUUM_SCHEMA:
            return dict(source)
        if schema == RESULTS_SCHEMA:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExtrapolationWarning)
                return build_export(source)
        raise ExportError("unknown document", field="schema", value=schema,
                          allowed=f"{CONTINUUM_SCHEMA} or {RESULTS_SCHEMA}")
    raise ExportError("expected an export or results", field="source",
                      value=type(source).__name__, allowed="dict or path")


def select_composition(export: Mapping, composition: str | None = None) -> dict:
    """One composition of an export by formula or label (None: the only one)."""
    comps = export.get("compositions") or []
    names = ", ".join(f"{c['formula']} ({c['label']})" for c in comps)
    if composition is None:
        if len(comps) == 1:
            return comps[0]
        raise ExportError("several compositions; name one", field="composition", value=None,
                          allowed=names)
    for c in comps:
        if composition in (c["formula"], c["label"]):
            return c
    raise ExportError("composition not in the export", field="composition", value=composition,
                      allowed=names)


# ----------------------------------------------------------------------------- API
def export_parameters(results: Any, format: str = "json", out: str | Path | None = None, *,
                      composition: str | None = None,
                      grid_t_K: Sequence[float] | None = None) -> dict:
    """Export continuum parameters from a results.json (dict or path) and return them.

    ``format``: "json" | "yaml" | "csv" | "pybamm". ``out``: file to write (for
    csv a folder, or a ``.csv`` file name with grid files beside it; for pybamm a
    ``.py`` module). ``composition``: formula/label to keep (pybamm needs exactly
    one composition). ``grid_t_K``: grid temperatures in K. Returns the export
    dict (schema viglas-continuum/1, validated). Raises ExportError on bad input.
    """
    fmt = str(format).lower()
    if fmt == "yml":
        fmt = "yaml"
    if fmt not in FORMATS:
        raise ExportError("unknown export format", field="format", value=format,
                          allowed=", ".join(FORMATS))
    source = str(results) if isinstance(results, (str, Path)) else None
    export = build_export(results, composition=composition, grid_t_K=grid_t_K, _stacklevel=3)
    if fmt == "pybamm" and len(export["compositions"]) != 1:
        raise ExportError("the pybamm format holds one composition; name it",
                          field="composition", value=composition,
                          allowed=", ".join(c["formula"] for c in export["compositions"]))
    if out is None:
        return export
    out = Path(out)
    if fmt == "json":
        _write(out, json.dumps(export, indent=2, allow_nan=False, ensure_ascii=False) + "\n")
    elif fmt == "yaml":
        import yaml
        _write(out, yaml.safe_dump(export, sort_keys=False, allow_unicode=True, width=100))
    elif fmt == "csv":
        write_csv_export(export, out)
    else:
        if out.suffix != ".py":
            raise ExportError("the pybamm module must end in .py", field="out", value=str(out),
                              allowed="a file name such as laco_pybamm.py")
        _write(out, pybamm_module_text(export, source, out.stem))
    return export


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def load_export(path: str | Path) -> dict:
    """Read an export written by :func:`export_parameters` (any format) and validate it.

    ``.json``, ``.yaml``/``.yml``, ``.csv`` (the parameters file) or a CSV export
    folder, ``.py`` (pybamm module; read without executing it). The numbers are
    exactly those written.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "parameters.csv"
    if not path.exists():
        raise ExportError("file not found", field="path", value=str(path),
                          allowed="an export written by 'viglas export'")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
    elif suffix in (".yaml", ".yml"):
        import yaml
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    elif suffix == ".csv":
        data = read_parameters_csv(path)
    elif suffix == ".py":
        data = read_pybamm_module(path)
    else:
        raise ExportError("unknown export file type", field="path", value=str(path),
                          allowed=".json, .yaml, .yml, .csv, .py or a CSV export folder")
    if not isinstance(data, dict) or data.get("schema") != CONTINUUM_SCHEMA:
        raise ExportError("not a viglas continuum export", field="schema",
                          value=data.get("schema") if isinstance(data, dict) else type(data).__name__,
                          allowed=CONTINUUM_SCHEMA)
    validate_export(data)
    return copy.deepcopy(data)
