"""Force matching of the ionic potential to reference (ML-potential) labels.

The model is exactly the one of :class:`viglas.potentials.IonicPotential`:
per pair ``A exp(-r/rho) - C/r^6 + B/r^12`` (energy shifted to 0 at
``short_range_cutoff``) plus damped-shifted-force Coulomb with charges
``charge_scale * formal``. For a fixed set of configurations the neighbour lists
(:func:`matscipy.neighbours.neighbour_list`) are built once; forces, stresses and
energies are then sums over pairs of a scalar per pair, so any parameter vector is
evaluated by a few vectorised passes and the Jacobian is analytic.

Objective (:func:`fit_parameters`, :func:`scipy.optimize.least_squares`, method
``trf`` with bounds):

* forces, every Cartesian component, in eV/Å, weight ``force_weight``;
* stresses, 6 Voigt components, in GPa, weight ``stress_weight``;
* energy differences per atom within a group of identical stoichiometry (the group
  mean is subtracted from prediction and reference, so the unknown energy zero of
  the reference drops out), in eV/atom, weight ``energy_weight``.

Free parameters are ``ln A`` and ``rho`` of every fitted pair, ``C`` of anion–anion
pairs and the global ``charge_scale``. ``B`` (a short-range wall that removes the
Buckingham/Coulomb collapse at r -> 0) keeps its starting value, set by a rule
(:func:`wall_B`) in :func:`initial_parameters`, and is reported as fixed. Pairs with
fewer than ``min_pairs`` close contacts in the training data, and all cation–cation
pairs, are not fitted: they keep their starting values (physical guesses,
:func:`initial_parameters`) or have only Coulomb, and the fit result says so with the
reason.

Files (this module re-exports their public names, so old imports keep working):
:mod:`viglas.potentials.fit_start` (starting values, walls, angle terms),
:mod:`viglas.potentials.fit_data` (reference labels and the vectorised evaluator
:class:`PairData`, :func:`predict`), :mod:`viglas.potentials.fit_md` (the short MD runs
of the iteration, the anion-bond check); here: :func:`fit_parameters` (least squares)
and :func:`fit_to_reference` (sample, label, fit, iterate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

# ANIONS, CONTACT_A, FORMAL_CHARGES: names this module always had (tests import CONTACT_A here)
from viglas.chemistry import ANIONS, CATIONS, CONTACT_A, FORMAL_CHARGES  # noqa: F401
from viglas.errors import FitError
from viglas.potentials.fit_data import PairData, predict, reference_labels
from viglas.potentials.fit_md import anion_bonds, ionic_md_snapshots
from viglas.potentials.fit_start import (CATION_WALL_A, THREE_BODY_CUTOFF_A,
                                         THREE_BODY_GAMMA_A, cation_wall_distance,
                                         initial_parameters, initial_three_body,
                                         is_anion_anion, is_cation_anion, wall_B)
from viglas.potentials.parameters import (PAIR_FIELDS, THREE_BODY_FIELDS, IonicParameters,
                                          pair_key)
from viglas.units import EV_A3_TO_GPA

__all__ = [
    "FitSettings", "FitResult", "fit_parameters", "force_metrics", "fit_to_reference",
    # re-exported from fit_start, fit_data and fit_md
    "is_cation_anion", "is_anion_anion", "CATION_WALL_A", "cation_wall_distance", "wall_B",
    "THREE_BODY_CUTOFF_A", "THREE_BODY_GAMMA_A", "initial_three_body", "initial_parameters",
    "reference_labels", "PairData", "predict", "anion_bonds", "ionic_md_snapshots",
]


@dataclass
class FitSettings:
    """Weights and choices of a force-matching fit.

    ``force_weight`` per eV/Å, ``stress_weight`` per GPa, ``energy_weight`` per
    eV/atom; ``min_pairs`` close contacts (r < 1.25 × contact distance) a pair needs in
    the training data to be fitted; ``fit_charge_scale`` lets the global charge scale
    vary within ``charge_scale_bounds``; ``rho_bounds`` in Å; ``fit_C`` fits the
    dispersion ``C`` of anion–anion pairs (cation–anion ``C`` is fixed at 0);
    ``kind_weights`` multiplies the force and stress residuals of frames by their
    ``info["kind"]`` (e.g. ``{"iter": 2.0}`` stresses configurations visited by MD with
    the fitted potential; default 1); ``composition_weights`` does the same by
    ``info["composition"]`` (e.g. ``{"LiBCl2.5O0.75": 3.0}``: a composition the pair
    form describes worst gets more say). ``three_body_k_bounds`` (eV) and
    ``cos0_bounds`` bound the angle-term parameters that are free.
    """

    force_weight: float = 1.0
    stress_weight: float = 0.5
    energy_weight: float = 10.0
    min_pairs: int = 30
    fit_charge_scale: bool = True
    charge_scale_bounds: tuple[float, float] = (0.4, 1.0)
    rho_bounds: tuple[float, float] = (0.12, 0.6)
    A_bounds: tuple[float, float] = (1.0, 1e7)
    C_bounds: tuple[float, float] = (0.0, 500.0)
    fit_C: bool = True
    max_nfev: int = 200
    kind_weights: dict[str, float] = field(default_factory=dict)
    three_body_k_bounds: tuple[float, float] = (0.0, 200.0)
    cos0_bounds: tuple[float, float] = (-1.0, 0.0)
    composition_weights: dict[str, float] = field(default_factory=dict)


@dataclass
class FitResult:
    """Outcome of :func:`fit_parameters`.

    ``parameters``: fitted :class:`IonicParameters`; ``free``: names of fitted
    parameters (``"Al-Cl.A"``, ``"charge_scale"``); ``fixed``: pair key -> reason for
    pairs not fitted; ``uncertainty``: one-sigma relative uncertainty of each free
    parameter from the Jacobian; ``train_metrics``: force RMSE (eV/Å) and R²,
    stress RMSE (GPa), energy RMSE (eV/atom) on the training data; ``cost`` final
    least-squares cost; ``nfev`` evaluations.
    """

    parameters: IonicParameters
    free: list[str]
    fixed: dict[str, str]
    uncertainty: dict[str, float]
    train_metrics: dict[str, float]
    cost: float
    nfev: int
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


def _group_center(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``values`` minus the mean of their group (along axis 0)."""
    counts = np.bincount(groups, minlength=n_groups).astype(float)
    if values.ndim == 1:
        mean = np.bincount(groups, weights=values, minlength=n_groups) / counts
        return values - mean[groups]
    out = np.empty_like(values)
    for k in range(values.shape[1]):
        mean = np.bincount(groups, weights=values[:, k], minlength=n_groups) / counts
        out[:, k] = values[:, k] - mean[groups]
    return out


def fit_parameters(frames: Sequence[Atoms], initial: IonicParameters | None = None,
                   settings: FitSettings | None = None, *,
                   fix: dict[str, Sequence[str]] | None = None,
                   verbose: int = 0) -> FitResult:
    """Fit the ionic potential to labelled ``frames`` by force matching.

    ``initial``: starting (and fixed-value) parameters, default
    :func:`initial_parameters` for the elements present. ``fix``: extra
    ``{pair_key: [names]}`` to hold fixed (besides ``fixed`` lists in ``initial``).
    Returns a :class:`FitResult`; raises :class:`FitError` if no parameter can be fitted.
    """
    from scipy.optimize import least_squares

    settings = settings or FitSettings()
    frames = list(frames)
    if initial is None:
        els = sorted({s for a in frames for s in a.get_chemical_symbols()})
        initial = initial_parameters(els)
    data = PairData(frames, initial)
    ee, ef, es = zip(*(reference_labels(a) for a in frames))
    f_ref = np.concatenate(ef)
    has_s = np.array([s is not None for s in es])
    s_ref = np.array([s if s is not None else np.zeros(6) for s in es])
    e_ref = np.array(ee)
    gnames = sorted(set(data.formulas))
    groups = np.array([gnames.index(f) for f in data.formulas])
    n_groups = len(gnames)
    inv_n = 1.0 / data.n_atoms
    e_ref_c = _group_center(e_ref, groups, n_groups) * inv_n

    # ---- which parameters are free
    fixed_reason: dict[str, str] = {}
    free: list[tuple[str, str]] = []
    fix = {k: list(v) for k, v in (fix or {}).items()}
    for key in data.keys:
        p = initial.pairs[key]
        if set(p.fixed) >= {"A", "rho", "C", "B"}:
            fixed_reason[key] = "fixed by construction (cation-cation wall, not fitted)"
            continue
        n_close = data.close_contacts(key)
        if n_close < settings.min_pairs:
            fixed_reason[key] = (f"only {n_close} close contacts (< {settings.min_pairs}) in "
                                 "the training data: kept at the starting value")
            continue
        names = ["A", "rho"]
        if settings.fit_C and is_anion_anion(key):
            names.append("C")
        names = [n for n in names if n not in p.fixed and n not in fix.get(key, [])]
        free += [(key, n) for n in names]
    for m in data.centres:
        tb = initial.three_body[m]
        free += [("3b:" + m, n) for n in ("k", "cos0") if n not in tb.fixed
                 and n not in fix.get("three_body." + m, [])]
    if settings.fit_charge_scale:
        free.append(("", "charge_scale"))
    if not free:
        raise FitError("no parameter can be fitted with these data", field="frames",
                       value=len(frames), allowed="configurations with close contacts")

    def unpack(x: np.ndarray) -> IonicParameters:
        pairs = {k: v.model_copy() for k, v in initial.pairs.items()}
        cs = initial.charge_scale
        upd: dict[str, dict[str, float]] = {}
        upd3: dict[str, dict[str, float]] = {}
        for (key, name), val in zip(free, x):
            if key.startswith("3b:"):
                upd3.setdefault(key[3:], {})[name] = float(val)
            elif name == "charge_scale":
                cs = float(val)
            elif name == "A":
                upd.setdefault(key, {})["A"] = float(math.exp(val))
            else:
                upd.setdefault(key, {})[name] = float(val)
        for key, u in upd.items():
            pairs[key] = pairs[key].model_copy(update=u)
        tbs = {m: (t.model_copy(update=upd3[m]) if m in upd3 else t)
               for m, t in initial.three_body.items()}
        return initial.model_copy(update={"pairs": pairs, "charge_scale": cs,
                                          "three_body": tbs})

    x0, lo, hi = [], [], []
    for key, name in free:
        if key.startswith("3b:"):
            tb = initial.three_body[key[3:]]
            b = settings.three_body_k_bounds if name == "k" else settings.cos0_bounds
            x0.append(getattr(tb, name))
            lo.append(b[0])
            hi.append(b[1])
        elif name == "charge_scale":
            x0.append(initial.charge_scale)
            lo.append(settings.charge_scale_bounds[0])
            hi.append(settings.charge_scale_bounds[1])
        elif name == "A":
            x0.append(math.log(max(initial.pairs[key].A, settings.A_bounds[0] * 1.0001)))
            lo.append(math.log(settings.A_bounds[0]))
            hi.append(math.log(settings.A_bounds[1]))
        elif name == "rho":
            x0.append(initial.pairs[key].rho)
            lo.append(settings.rho_bounds[0])
            hi.append(settings.rho_bounds[1])
        elif name == "C":
            x0.append(initial.pairs[key].C)
            lo.append(settings.C_bounds[0])
            hi.append(settings.C_bounds[1])
    x0 = np.clip(np.array(x0), np.array(lo) + 1e-9, np.array(hi) - 1e-9)
    wf, ws, we = settings.force_weight, settings.stress_weight, settings.energy_weight
    kw = np.array([float(settings.kind_weights.get(str(a.info.get("kind", "")), 1.0))
                   * float(settings.composition_weights.get(str(a.info.get("composition", "")),
                                                            1.0))
                   for a in frames])
    s_mask = np.repeat((has_s * kw)[:, None], 6, axis=1).astype(float)
    wf = wf * np.repeat(kw, data.n_atoms)[:, None]

    def residual_parts(f, s, e):
        rf = (wf * (f - f_ref)).ravel()
        rs = (ws * EV_A3_TO_GPA * (s - s_ref) * s_mask).ravel()
        re = we * (_group_center(e, groups, n_groups) * inv_n - e_ref_c)
        return np.concatenate([rf, rs, re])

    def fun(x):
        p = unpack(x)
        return residual_parts(*data.evaluate(p))

    def jac(x):
        p = unpack(x)
        cols = []
        terms_cache: dict[str, dict[str, np.ndarray]] = {}
        for key, name in free:
            if key.startswith("3b:"):
                tb = p.three_body[key[3:]]
                f, s, e = data.three_body(key[3:], tb.k, tb.cos0, wrt=name)
            elif name == "charge_scale":
                cs = p.charge_scale
                f = 2 * cs * data.coul_forces
                s = 2 * cs * data.coul_stress
                e = 2 * cs * data.coul_energy
            else:
                if key not in terms_cache:
                    terms_cache[key] = data.pair_terms(key, p.pairs[key])
                t = terms_cache[key]
                suffix = "lnA" if name == "A" else name
                df, ds, de = data.assemble(t["g_" + suffix], t["u_" + suffix],
                                           data.slices[key])
                f, s, e = df, ds, de
            col = np.concatenate([
                (wf * f).ravel(), (ws * EV_A3_TO_GPA * s * s_mask).ravel(),
                we * _group_center(e, groups, n_groups) * inv_n])
            cols.append(col)
        return np.stack(cols, axis=1)

    res = least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf",
                        x_scale="jac", max_nfev=settings.max_nfev, verbose=verbose,
                        tr_solver="exact")
    best = unpack(res.x)
    # record what was held fixed (B always: the wall is set by rule, not fitted)
    pairs = {}
    free_set = set(free)
    for key, p in best.pairs.items():
        fixed_names = sorted(n for n in PAIR_FIELDS if (key, n) not in free_set)
        pairs[key] = p.model_copy(update={"fixed": fixed_names})
    tbs = {m: t.model_copy(update={"fixed": [n for n in THREE_BODY_FIELDS
                                            if ("3b:" + m, n) not in free_set]})
           for m, t in best.three_body.items()}
    best = best.model_copy(update={"pairs": pairs, "three_body": tbs})

    # uncertainties from the Jacobian at the optimum: cov = s^2 (J^T J)^-1
    J = res.jac
    dof = max(1, J.shape[0] - J.shape[1])
    s2 = 2 * res.cost / dof
    try:
        cov = np.linalg.pinv(J.T @ J) * s2
        sig = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:  # pragma: no cover
        sig = np.full(len(free), np.nan)
    unc: dict[str, float] = {}
    def _label(key: str, name: str) -> str:
        if key.startswith("3b:"):
            return f"three_body.{key[3:]}.{name}"
        return "charge_scale" if name == "charge_scale" else f"{key}.{name}"

    for (key, name), x, sg in zip(free, res.x, sig):
        label = _label(key, name)
        # ln A: sigma is already relative; others relative to the value
        unc[label] = float(sg if name == "A" else sg / max(abs(x), 1e-12))

    f, s, e = data.evaluate(best)
    metrics = force_metrics(f, f_ref)
    metrics["stress_rmse_GPa"] = float(np.sqrt(np.mean(((s - s_ref)[has_s] * EV_A3_TO_GPA) ** 2))) \
        if has_s.any() else float("nan")
    metrics["energy_rmse_eV_atom"] = float(np.sqrt(np.mean(
        (_group_center(e, groups, n_groups) * inv_n - e_ref_c) ** 2)))
    free_labels = [_label(k, n) for k, n in free]
    return FitResult(parameters=best, free=free_labels, fixed=fixed_reason,
                     uncertainty=unc, train_metrics=metrics, cost=float(res.cost),
                     nfev=int(res.nfev), message=str(res.message))


def force_metrics(f_pred: np.ndarray, f_ref: np.ndarray) -> dict[str, float]:
    """Force RMSE (eV/Å, over Cartesian components), MAE and R² = 1 - SS_res/SS_tot
    (SS_tot about the mean reference component) of stacked force arrays."""
    d = np.asarray(f_pred) - np.asarray(f_ref)
    ss_res = float(np.sum(d**2))
    ss_tot = float(np.sum((f_ref - f_ref.mean()) ** 2))
    return {"force_rmse_eV_A": float(np.sqrt(np.mean(d**2))),
            "force_mae_eV_A": float(np.mean(np.abs(d))),
            "force_r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "n_force_components": int(d.size)}


def fit_to_reference(compositions: Sequence[str], reference: Any = None, *,
                     cache_dir: str | Path | None = None, n_atoms: int = 64, seed: int = 0,
                     rounds: int = 3, iter_temperatures_K: Sequence[float] = (700.0, 1300.0),
                     iter_steps: int = 3000, iter_snapshots: int = 3,
                     settings: FitSettings | None = None, initial: IonicParameters | None = None,
                     num_threads: int | None = 1, command: str = "",
                     three_body: bool = False, log: Any = print) -> dict[str, Any]:
    """Sample, label, fit and iterate for ``compositions`` against ``reference``.

    1. :func:`viglas.potentials.reference.sample_composition` for each composition
       (relaxation, MD at 1500/1000/600 K, strains, rattles; the 1000 K frames are the
       held-out set), labels cached under ``cache_dir`` (default
       ``~/.cache/viglas/labels``).
    2. :func:`fit_parameters` on the training frames.
    3. Up to ``rounds`` times: MD with the fitted potential at ``iter_temperatures_K``
       (``iter_steps`` steps of 2 fs) from the last reference frame of each
       composition, ``iter_snapshots`` frames per run labelled by the reference and
       added to the training set, refit; stop when the held-out force RMSE improves by
       less than 1 %. The best parameters (lowest held-out RMSE) are returned.

    ``three_body`` starts from :func:`initial_three_body` angle terms (ignored when
    ``initial`` is given: its ``three_body`` entries are used as they are).

    Returns ``{"parameters", "history", "train", "valid", "fit"}`` (the last
    :class:`FitResult` under ``fit``).
    """
    from datetime import datetime, timezone

    from viglas.potentials.reference import (CHGNET_SPEC, label, make_calculator,
                                             parse_formula, sample_composition, spec_dict)

    reference = spec_dict(reference or CHGNET_SPEC)
    cache_dir = Path(cache_dir or Path.home() / ".cache" / "viglas" / "labels")
    for comp in compositions:
        parse_formula(comp)
    calc = None
    frames: list[Atoms] = []
    for k, comp in enumerate(compositions):
        fr = sample_composition(comp, reference, cache_dir, n_atoms=n_atoms, seed=seed,
                                num_threads=num_threads, calculator=calc, log=log)
        frames += fr
    sane = [a for a in frames if anion_bonds(a) == 0]
    n_rejected = len(frames) - len(sane)
    if n_rejected:
        log(f"{n_rejected} reference frames with anion-anion bonds (Cl2, O2, ClO) left out")
    train = [a for a in sane if a.info.get("split") == "train"]
    valid = [a for a in sane if a.info.get("split") == "valid"]
    if not valid:
        raise FitError("no held-out frames", field="frames", value=0)
    starts = {}
    for a in frames:
        if a.info.get("kind") == "md":
            starts[a.info["composition"]] = a
    els = sorted({s for a in frames for s in a.get_chemical_symbols()})
    params = initial or initial_parameters(els, three_body=three_body)
    if initial is not None:
        initial.check_elements(els)

    def valid_rmse(p: IonicParameters) -> float:
        data = PairData(valid, p)
        f, _, _ = data.evaluate(p)
        fr = np.concatenate([reference_labels(a)[1] for a in valid])
        return force_metrics(f, fr)["force_rmse_eV_A"]

    history = []
    res = fit_parameters(train, params, settings)
    best = (valid_rmse(res.parameters), res, 0)
    history.append({"round": 0, "n_train": len(train), "valid_force_rmse_eV_A": best[0],
                    "train": res.train_metrics, "charge_scale": res.parameters.charge_scale})
    log(f"round 0: {len(train)} train frames, held-out force RMSE {best[0]:.4f} eV/Å, "
        f"train R² {res.train_metrics['force_r2']:.3f}")
    current = res
    for rnd in range(1, rounds + 1):
        new = []
        for k, comp in enumerate(compositions):
            for t_K in iter_temperatures_K:
                snaps = ionic_md_snapshots(starts[comp], current.parameters,
                                           temperature_K=t_K, steps=iter_steps,
                                           n_snapshots=iter_snapshots,
                                           seed=seed + 1000 * rnd + 10 * k + int(t_K))
                for s in snaps:
                    s.info.update(composition=comp, kind="iter", t_K=float(t_K),
                                  split="train", seed=seed, round=rnd)
                new += snaps
        if calc is None and new:
            calc = make_calculator(reference, num_threads=num_threads)
        labelled = label(new, reference, cache_dir, calculator=calc, progress=False)
        labelled = [a for a in labelled if anion_bonds(a) == 0]
        train = train + labelled
        res = fit_parameters(train, current.parameters, settings)
        rmse = valid_rmse(res.parameters)
        history.append({"round": rnd, "n_train": len(train), "n_new": len(labelled),
                        "valid_force_rmse_eV_A": rmse, "train": res.train_metrics,
                        "charge_scale": res.parameters.charge_scale})
        log(f"round {rnd}: +{len(labelled)} frames, held-out force RMSE {rmse:.4f} eV/Å, "
            f"train R² {res.train_metrics['force_r2']:.3f}")
        improved = rmse < best[0] * 0.99
        if rmse < best[0]:
            best = (rmse, res, rnd)
        current = res
        if not improved:
            break
    rmse, res, rnd = best
    coulomb_only = {}
    for x in range(len(els)):
        for y in range(x, len(els)):
            key = pair_key(els[x], els[y])
            if key not in res.parameters.pairs:
                coulomb_only[key] = ("cation-cation pair: kept apart by Coulomb repulsion, "
                                     "no short-range term (as in Pedone/Teter-type potentials)"
                                     if key.split("-")[0] in CATIONS and key.split("-")[1]
                                     in CATIONS else "not in the parameter set")
    prov = {
        "reference": f"{reference['name']}-{reference['params'].get('model', '')}".rstrip("-"),
        "reference_spec": reference,
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "compositions": list(compositions),
        "n_train_frames": history[rnd]["n_train"],
        "n_valid_frames": len(valid),
        "n_rejected_frames": n_rejected,
        "rejected_because": "anion-anion bond (Cl-Cl < 2.4, Cl-O < 2.0, O-O < 1.8 A): "
                            "molecular Cl2/O2/ClO, outside an ionic model",
        "best_round": rnd,
        "valid_force_rmse_eV_A": round(rmse, 5),
        "free_parameters": res.free,
        "relative_uncertainty": {k: round(v, 5) for k, v in res.uncertainty.items()},
        "fixed_pairs": res.fixed,
        "coulomb_only_pairs": coulomb_only,
        "wall_rule": "B set so that B/r^12 = 2 x (Coulomb + C/r^6 attraction) at "
                     "0.55 x contact distance (not fitted)",
    }
    final = res.parameters.model_copy(update={
        "provenance": prov,
        "description": (f"Buckingham + wall + DSF Coulomb"
                        f"{' + three-body angle term' if res.parameters.three_body else ''}"
                        f" fitted by force matching to "
                        f"{prov['reference']} on {', '.join(compositions)}")})
    return {"parameters": final, "history": history, "train": train, "valid": valid,
            "fit": res}
