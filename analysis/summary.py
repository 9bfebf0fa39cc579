"""The composition summary: replica pooling, Arrhenius/VFT/kink fits, model choice,
extrapolation to the report temperature and sigma at 303.15 K.

One implementation for every caller: the summary job
(:class:`viglas.workflows.makers.CompositionSummaryMaker`) and the results of runs
whose summary job has not run (:func:`viglas.workflows.results.collect_results`, also for
HPC results). Inputs are plain rows (mappings or objects with the attributes
``t_K``, ``d_cm2_s``, ``d_err_cm2_s``, ``sigma_mS_cm``, ``sigma_err_mS_cm``,
``haven_ratio``, ``haven_ratio_err``, ``transference_number``,
``transference_number_err``); outputs are JSON-ready dicts.

Rules:

* replicas at one temperature: :func:`combine_replicas` (mean; error the larger of the
  standard error of the mean and the propagated per-run errors);
* a temperature where a replica has no diffusive regime is a bound (its mean is an
  upper or lower estimate of D, :func:`temperature_points`), never a fit point: it is
  kept in ``fits["bounds"]`` with what the Arrhenius fit predicts there, and a fit that
  contradicts it is said in the messages;
* Arrhenius fits of D(T) and sigma(T) from >= 2 temperatures, VFT from >= 4 (when
  asked); VFT is preferred when its AIC is lower by more than 2, an Arrhenius with a
  kink (>= 5 temperatures) when its AIC beats both by more than 2;
* D and sigma at ``report_temperature_K`` from the Arrhenius fit (VFT extrapolations
  below the data are unreliable) with the fit's covariance propagated; sigma by
  Nernst-Einstein on the extrapolated D when the number density is known;
* sigma at 303.15 K: :func:`sigma_303K`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import numpy as np

from viglas.errors import ViglasError
from viglas.serialize import clean, finite

__all__ = ["pareto_mask", "COV_PARAMS", "RULES_VERSION", "T_303", "combine_replicas",
           "d_estimate", "temperature_points", "fit_series", "sigma_303K", "SeriesFits"]

#: Version of the rules above. A composition summary made under other rules is redone
#: by the next ``viglas run`` (from the stored MD results; no MD reruns), see
#: :func:`viglas.workflows.store.job_freshness`. History: 1 until 2026-12-06: every
#: replica's D was fitted; 2 (commit 0dfa6e5 only): runs without a diffusive regime left
#: out of the fits, the other replicas at their temperature pooled alone; 3: a
#: temperature with any such run is a bound, left out of the fits.
RULES_VERSION = "3"

#: Which parameter each row/column of a fit's ``cov`` matrix is (results.json ``cov_params``).
COV_PARAMS = {"arrhenius": ("ln_prefactor", "ea_eV"), "vft": ("ln_a", "b_K", "t0_K")}

#: Room temperature of the laboratory numbers (30 °C), K.
T_303 = 303.15


def _get(row: Any, key: str) -> Any:
    """``row[key]`` of a mapping or ``row.key`` of an object; None when absent."""
    if isinstance(row, Mapping):
        return row.get(key)
    return getattr(row, key, None)


def _record(obj: Any) -> dict[str, Any] | None:
    """A fit result as a JSON-ready dict."""
    if obj is None:
        return None
    if hasattr(obj, "to_dict"):
        return clean(obj.to_dict())
    if hasattr(obj, "model_dump"):
        return clean(obj.model_dump())
    if isinstance(obj, dict):
        return clean(obj)
    if is_dataclass(obj):
        return clean(asdict(obj))
    return clean(dict(vars(obj)))


def combine_replicas(values: list[float], errors: list[float | None]) -> tuple[float, float]:
    """Mean over replicas and its one-sigma error.

    The error is the larger of (a) the standard error of the mean between replicas
    (sample std / sqrt(n), n >= 2) and (b) the propagated per-run fit errors
    sqrt(sum err_i^2)/n. Taking the larger is conservative: with two replicas the
    between-replica scatter alone is a poor estimate.
    """
    v = np.asarray(values, float)
    n = len(v)
    mean = float(v.mean())
    errs = np.asarray([e if e is not None else 0.0 for e in errors], float)
    fit_err = float(np.sqrt(np.sum(errs ** 2)) / n)
    sem = float(v.std(ddof=1) / np.sqrt(n)) if n >= 2 else 0.0
    return mean, max(sem, fit_err)


def _pool(rows: Sequence[Any], key: str, err_key: str) -> tuple[float | None, float | None]:
    """:func:`combine_replicas` over the rows where ``key`` is known (None, None if none)."""
    sel = [r for r in rows if _get(r, key) is not None]
    if not sel:
        return None, None
    return combine_replicas([_get(r, key) for r in sel], [_get(r, err_key) for r in sel])


def d_estimate(row: Any) -> str:
    """What a run's (or a temperature point's) D is: ``"value"`` (a diffusive regime was
    found), ``"upper"`` or ``"lower"`` (no diffusive regime: the D is a bound,
    :class:`viglas.analysis.diffusion.DiffusionResult`), or ``"mixed"`` (a point whose
    replicas are bounds of both kinds). Read from ``d_estimate`` or, for a diffusion
    document, ``transport["diffusion"]["d_estimate"]``; rows that carry neither (older
    results) count as values."""
    kind = _get(row, "d_estimate")
    if kind is None:
        kind = ((_get(row, "transport") or {}).get("diffusion") or {}).get("d_estimate")
    return kind or "value"


def temperature_points(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Replica averages per temperature (K, ascending): ``t_K``, ``n_replicas`` (runs
    pooled), ``d_cm2_s``, ``sigma_mS_cm``, ``haven_ratio``, ``transference_number``,
    each with its ``_err`` (:func:`combine_replicas`), ``d_estimate`` and
    ``n_bound_replicas``. Runs without a D are left out.

    Runs without a diffusive regime give bounds, not measurements (:func:`d_estimate`).
    Every replica is pooled; the point is a ``"value"`` only when every replica is one.
    A mean of values and upper estimates is an upper estimate of the mean (and likewise
    for lower ones), so a point with any upper (lower) estimate among its replicas is
    ``"upper"`` (``"lower"``), ``"mixed"`` if it has both; :func:`fit_series` keeps
    such points out of the fits. (Pooling only the diffusive replicas instead would
    drop the slow glasses and bias D up with no bound to show for it.)
    ``n_bound_replicas`` counts the replicas that are bounds."""
    out = []
    for t in sorted({_get(r, "t_K") for r in runs}):
        sel = [r for r in runs if _get(r, "t_K") == t and _get(r, "d_cm2_s") is not None]
        if not sel:
            continue
        kinds = {d_estimate(r) for r in sel} - {"value"}
        kind = "value" if not kinds else kinds.pop() if len(kinds) == 1 else "mixed"
        n_bound = sum(d_estimate(r) != "value" for r in sel)
        d, d_err = _pool(sel, "d_cm2_s", "d_err_cm2_s")
        s, s_err = _pool(sel, "sigma_mS_cm", "sigma_err_mS_cm")
        h, h_err = _pool(sel, "haven_ratio", "haven_ratio_err")
        tn, tn_err = _pool(sel, "transference_number", "transference_number_err")
        out.append({"t_K": t, "n_replicas": len(sel), "d_estimate": kind,
                    "n_bound_replicas": n_bound,
                    "d_cm2_s": d, "d_err_cm2_s": d_err,
                    "sigma_mS_cm": s, "sigma_err_mS_cm": s_err,
                    "haven_ratio": h, "haven_ratio_err": finite(h_err),
                    "transference_number": finite(tn),
                    "transference_number_err": finite(tn_err)})
    return out


@dataclass
class SeriesFits:
    """What :func:`fit_series` derives from the temperature points.

    ``fits``: JSON-ready fit records (``d_arrhenius``, ``sigma_arrhenius``, ``d_vft``,
    ``sigma_vft``, optionally ``d_arrhenius_kink``), ``preferred_model`` and ``bounds``
    (the points left out as bounds, :func:`_check_bounds`);
    ``fit_objects``: the fit results themselves (for plots); ``values``: the summary
    fields (``ea_eV``, ``sigma_300K_mS_cm``, ``d_300K_cm2_s`` with errors, the
    ``sigma_303K_*`` fields, ``haven_ratio*`` and ``transference_*`` pooled over
    temperatures); ``messages``: fits that failed or were not possible, and why.
    """

    fits: dict[str, Any]
    fit_objects: dict[str, Any]
    values: dict[str, Any]
    messages: list[str] = field(default_factory=list)


def fit_series(temps: Sequence[Any], *, report_temperature_K: float = 300.0,
               vft: bool = True) -> SeriesFits:
    """Fits and extrapolations of one composition from its temperature points
    (:func:`temperature_points` rows, or objects with the same attributes). Only the
    points whose D is a value (:func:`d_estimate`) are fitted."""
    from viglas import analysis as an

    messages: list[str] = []
    fits: dict[str, Any] = {"d_arrhenius": None, "sigma_arrhenius": None, "d_vft": None,
                            "sigma_vft": None, "preferred_model": "arrhenius"}
    fit_objs: dict[str, Any] = {}
    all_temps, temps = temps, [p for p in temps if d_estimate(p) == "value"]
    bounds = [p for p in all_temps if d_estimate(p) != "value"]
    for p in bounds:
        kind = d_estimate(p)
        messages.append(f"{_get(p, 't_K'):g} K: no diffusive regime in "
                        f"{_get(p, 'n_bound_replicas')} of {_get(p, 'n_replicas')} replicas, "
                        + (f"so the replica mean of D is an {kind} estimate"
                           if kind != "mixed" else "upper and lower estimates mixed")
                        + ": left out of the fits, drawn as a bound")
    for qty, key, ekey in (("D", "d_cm2_s", "d_err_cm2_s"),
                           ("sigma", "sigma_mS_cm", "sigma_err_mS_cm")):
        pts = [p for p in temps if _get(p, key) is not None and _get(p, key) > 0]
        name = "d" if qty == "D" else "sigma"
        if len(pts) < 2:
            messages.append(f"{name} Arrhenius: need >= 2 temperatures with positive {key} "
                            f"and a diffusive regime, have {len(pts)}"
                            + (f" ({len(bounds)} more are bounds)" if bounds else ""))
            continue
        t_arr = np.array([_get(p, "t_K") for p in pts])
        y = np.array([_get(p, key) for p in pts])
        ye = np.array([_get(p, ekey) or 0.0 for p in pts])
        try:
            fa = an.fit_arrhenius(t_arr, y, ye, quantity=qty)
            fits[f"{name}_arrhenius"] = {**_record(fa),
                                         "cov_params": list(COV_PARAMS["arrhenius"])}
            fit_objs[f"{name}_arrhenius"] = fa
        except ViglasError as exc:
            messages.append(f"{name} Arrhenius: {exc.one_line()}")
        if vft and len(pts) >= 4:
            try:
                fv = an.fit_vft(t_arr, y, ye, quantity=qty)
                fits[f"{name}_vft"] = {**_record(fv), "cov_params": list(COV_PARAMS["vft"])}
                fit_objs[f"{name}_vft"] = fv
            except ViglasError as exc:
                messages.append(f"{name} VFT: {exc.one_line()}")
        elif vft:
            messages.append(f"{name} VFT: needs >= 4 temperatures (3 parameters), "
                            f"have {len(pts)}")
    fa, fv = fit_objs.get("sigma_arrhenius") or fit_objs.get("d_arrhenius"), \
        fit_objs.get("sigma_vft") or fit_objs.get("d_vft")
    if fa is not None and fv is not None:
        a_aic, v_aic = finite(fa.aic), finite(fv.aic)
        if a_aic is not None and v_aic is not None and v_aic < a_aic - 2.0:
            fits["preferred_model"] = "vft"
    # Arrhenius with a kink (e.g. across Tg) when the data show one (issue 16 item 3)
    dpts = [p for p in temps if _get(p, "d_cm2_s") is not None and _get(p, "d_cm2_s") > 0]
    if len(dpts) >= 5 and fit_objs.get("d_arrhenius") is not None:
        from viglas.analysis.arrhenius_kink import fit_arrhenius_kink

        try:
            fk = fit_arrhenius_kink([_get(p, "t_K") for p in dpts],
                                    [_get(p, "d_cm2_s") for p in dpts],
                                    [_get(p, "d_err_cm2_s") or 0.0 for p in dpts]
                                    if all(_get(p, "d_err_cm2_s") for p in dpts) else None)
            fits["d_arrhenius_kink"] = clean(fk.to_dict())
            fit_objs["d_arrhenius_kink"] = fk
            others = [x for x in (fit_objs["d_arrhenius"].aic,
                                  getattr(fit_objs.get("d_vft"), "aic", None))
                      if x is not None and np.isfinite(x)]
            if others and fk.aic < min(others) - 2.0:
                fits["preferred_model"] = "arrhenius_kink"
                messages.append(f"D(T) has a kink at {fk.tk_K:.0f} +- {fk.tk_err_K:.0f} "
                                f"K: Ea {fk.ea_high_eV:.3f} eV above, "
                                f"{fk.ea_low_eV:.3f} eV below (AIC-preferred)")
        except ViglasError as exc:
            messages.append(f"d kinked Arrhenius: {exc.one_line()}")
    t_rep = report_temperature_K
    ea = ea_err = s300 = s300_err = d300 = d300_err = None
    src = fit_objs.get("d_arrhenius")
    if src is not None:
        ea, ea_err = finite(src.ea_eV), finite(src.ea_err_eV)
        d300, d300_err = (finite(v) for v in src.predict(t_rep))
    if fit_objs.get("sigma_arrhenius") is not None:
        fs = fit_objs["sigma_arrhenius"]
        s300, s300_err = (finite(v) for v in fs.predict(t_rep))
        if ea is None:
            ea, ea_err = finite(fs.ea_eV), finite(fs.ea_err_eV)
    if src is not None:  # sigma(t_rep): Nernst-Einstein on the extrapolated D (issue 15)
        n_h = an.ne_density_from_points([_get(p, "t_K") for p in temps],
                                        [_get(p, "d_cm2_s") for p in temps],
                                        [_get(p, "sigma_mS_cm") for p in temps])
        if n_h is not None:
            s300, s300_err = (finite(v) for v in an.sigma_from_d_fit(src, t_rep, n_h))
    fits["bounds"] = _check_bounds(bounds, fit_objs.get("d_arrhenius"), messages)
    s303 = sigma_303K(temps, fit_objs, fits.get("preferred_model"), messages)
    hp = [p for p in temps if _get(p, "haven_ratio") is not None]
    h_all, h_all_err = _pool(hp, "haven_ratio", "haven_ratio_err")
    tp = [p for p in temps if _get(p, "transference_number") is not None]
    t_all, t_all_err = _pool(tp, "transference_number", "transference_number_err")
    values = {"ea_eV": ea, "ea_err_eV": ea_err, "report_temperature_K": t_rep,
              "sigma_300K_mS_cm": s300, "sigma_300K_err_mS_cm": s300_err,
              "d_300K_cm2_s": d300, "d_300K_err_cm2_s": d300_err, **s303,
              "haven_ratio": h_all, "haven_ratio_err": finite(h_all_err),
              "haven_ratio_t_K": [_get(p, "t_K") for p in hp],
              "transference_number": finite(t_all),
              "transference_number_err": finite(t_all_err),
              "transference_t_K": [_get(p, "t_K") for p in tp]}
    return SeriesFits(fits=clean(fits), fit_objects=fit_objs, values=values, messages=messages)


def _check_bounds(bounds: Sequence[Any], fit: Any, messages: list[str]) -> list[dict[str, Any]]:
    """The temperature points that are bounds, each with what the Arrhenius fit of the
    measured points predicts there. ``contradicts``: the fit's one-sigma band lies
    wholly above an upper estimate (or below a lower one), i.e. the measured bound says
    the fit overestimates (underestimates) D at that temperature, and so its
    extrapolation to lower temperatures; said in ``messages`` too."""
    out = []
    for p in bounds:
        t, kind = _get(p, "t_K"), d_estimate(p)
        row = {"t_K": t, "d_estimate": kind, "n_replicas": _get(p, "n_replicas"),
               "n_bound_replicas": _get(p, "n_bound_replicas"),
               "d_cm2_s": _get(p, "d_cm2_s"), "sigma_mS_cm": _get(p, "sigma_mS_cm"),
               "fit_d_cm2_s": None, "fit_d_err_cm2_s": None, "contradicts": None}
        d = _get(p, "d_cm2_s")
        if fit is not None and d is not None:
            f, fe = (float(np.ravel(v)[0]) for v in fit.predict(np.array([t])))
            row.update(fit_d_cm2_s=finite(f), fit_d_err_cm2_s=finite(fe))
            if kind in ("upper", "lower"):
                bad = f - fe > d if kind == "upper" else f + fe < d
                row["contradicts"] = bool(bad)
                if bad:
                    rel = "above" if kind == "upper" else "below"
                    messages.append(
                        f"{t:g} K: the Arrhenius fit gives D = {f:.3g} ± {fe:.2g} cm2/s, "
                        f"{rel} the {kind} estimate {d:.3g} measured there: the fit "
                        f"{'over' if kind == 'upper' else 'under'}estimates D at {t:g} K "
                        "and below, and so its extrapolation")
        out.append(clean(row))
    return out


def sigma_303K(temps: Sequence[Any], fit_objs: dict[str, Any],
               preferred: str | None, messages: list[str] | None = None) -> dict[str, Any]:
    """sigma at 303.15 K with its source (issue 16 item 3): ``simulated`` when an MD
    temperature lies within 5 K (that point's replica mean), else from the preferred
    model's fit of D(T) by Nernst-Einstein (or the sigma fit): ``interpolated`` inside
    the simulated range, ``extrapolated`` outside it."""
    from viglas import analysis as an

    out = {"sigma_303K_mS_cm": None, "sigma_303K_err_mS_cm": None, "sigma_303K_source": None,
           "sigma_303K_model": None}
    near = [p for p in temps
            if _get(p, "sigma_mS_cm") is not None and abs(_get(p, "t_K") - T_303) <= 5.0]
    if near:
        p = min(near, key=lambda q: abs(_get(q, "t_K") - T_303))
        out.update(sigma_303K_mS_cm=finite(_get(p, "sigma_mS_cm")),
                   sigma_303K_err_mS_cm=finite(_get(p, "sigma_err_mS_cm")),
                   sigma_303K_source="simulated", sigma_303K_model=f"MD at {_get(p, 't_K'):g} K")
        return out
    model = preferred if preferred in ("vft", "arrhenius_kink") and fit_objs.get(
        f"d_{preferred}") is not None else "arrhenius"
    t0 = getattr(fit_objs.get(f"d_{model}"), "t0_K", None)
    if model == "vft" and t0 is not None and T_303 <= t0 + 1.0:
        # VFT diverges at T0: no value at or below it, so the Arrhenius fit is used
        if messages is not None:
            messages.append(f"sigma(303 K): the preferred VFT fit has T0 = {t0:.0f} K, at or "
                            "above 303 K, so it gives no value there; the Arrhenius fit is "
                            "used (an upper estimate if D falls faster than Arrhenius)")
        model = "arrhenius"
    dfit = fit_objs.get(f"d_{model}")
    val = None
    if dfit is not None:
        n_h = an.ne_density_from_points([_get(p, "t_K") for p in temps],
                                        [_get(p, "d_cm2_s") for p in temps],
                                        [_get(p, "sigma_mS_cm") for p in temps])
        if n_h is not None:
            val = an.sigma_from_d_fit(dfit, T_303, n_h)
    if val is None and fit_objs.get(f"sigma_{model}") is not None:
        val = fit_objs[f"sigma_{model}"].predict(T_303)
    if val is None:
        return out
    ts = [_get(p, "t_K") for p in temps if _get(p, "d_cm2_s") is not None]
    inside = bool(ts) and min(ts) <= T_303 <= max(ts)
    out.update(sigma_303K_mS_cm=finite(val[0]), sigma_303K_err_mS_cm=finite(val[1]),
               sigma_303K_source="interpolated" if inside else "extrapolated",
               sigma_303K_model=model)
    return out


def pareto_mask(values: Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[bool]:
    """Non-dominated rows of ``values`` (n rows x k objectives): row i is on the Pareto
    front when no other row is at least as good in every objective and better in one.
    ``maximize[j]``: objective j is better when larger. Central values only: rows whose
    error bars overlap the front may be as good (say so where the front is shown).
    (Ten lines of numpy; a package such as paretoset would add a dependency for this.)"""
    v = np.asarray(values, float)
    if v.ndim != 2 or v.shape[1] != len(maximize):
        raise ValueError("values must be n x k with k = len(maximize)")
    s = np.where(np.asarray(maximize, bool), v, -v)  # larger is better in every column
    return [not bool(np.any(np.all(s >= s[i], axis=1) & np.any(s > s[i], axis=1)))
            for i in range(len(s))]
