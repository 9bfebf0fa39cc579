"""Fit and score potentials against the shipped DFT (GPAW PBE-D3(BJ)) labels.

- :func:`load_dataset` reads every label of one settings folder (default: the shipped
  one) with its plan metadata (``composition``, ``kind``, ``split`` ...).
- :func:`score` gives, per composition and pooled, force RMSE (eV/Å) and R², stress
  RMSE (GPa) and the energy RMSE (meV/atom) of energy *differences* within a
  composition (each composition's mean is removed from both: the ionic model has no
  atomic reference energies), for any predictor (the ionic set, CHGNet, SevenNet ...).
- :func:`fit_ionic_to_dft` force-, stress- and energy-matches the ionic potential to
  the training split with :func:`viglas.potentials.fit.fit_parameters`.

Held-out frames are whole MD runs (``split=valid`` in the plan), never frames of a
training run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from viglas.errors import FitError

#: Shipped DFT data folder.
DFT_DATA = Path(__file__).resolve().parent / "data" / "dft"
#: Earlier fits and probe reports kept as records (a loop's sampler file lives here).
SAMPLERS = DFT_DATA / "samplers"

from viglas.units import EV_A3_TO_GPA  # noqa: E402  (eV/Å³ -> GPa)


def crystal_matcher():
    """The pymatgen ``StructureMatcher`` that decides whether a relaxed or annealed
    crystal kept its structure (the tolerances of every crystal check of the fits)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)


Predictor = Callable[[Sequence[Atoms]], list[dict[str, Any]]]


def load_dataset(root: str | Path | None = None, params: dict[str, Any] | None = None,
                 ) -> list[Atoms]:
    """Every label made with the DFT settings ``params`` (default: the registry
    defaults) and the installed code versions, on the k-mesh those settings give each
    cell, sorted by plan priority. Raises :class:`FitError` when there are none.

    Labels are found by content address (:class:`viglas.potentials.dft.DFTLabelStore`),
    so labels of other settings or code versions in the same folder are never mixed in.
    """
    from viglas.potentials.dft import DFTLabelStore

    base = Path(root or DFT_DATA) / "labels"
    if not base.is_dir():
        raise FitError("no DFT labels found", field="labels", value=str(base),
                       allowed="a folder made by scripts/dft_labels.py label")
    store = DFTLabelStore(base, params, versions=_shipped_versions(base))
    frames = store.current()
    if not frames:
        raise FitError("no DFT labels found for these settings and code versions",
                       field="labels", value=str(store.dir),
                       allowed="a folder made by scripts/dft_labels.py label")
    return sorted(frames, key=lambda a: int(a.info.get("priority", 0)))


def _shipped_versions(base: Path) -> dict[str, str] | None:
    """Code versions of the labels folder with the most labels (the shipped dataset is
    read whatever GPAW is installed here, or none at all)."""
    import json

    best = None
    for d in base.glob("*/"):
        f = d / "settings.json"
        if f.exists():
            n = len(list(d.glob("*.extxyz.gz")))
            if best is None or n > best[0]:
                best = (n, json.loads(f.read_text()).get("versions"))
    return None if best is None else best[1]


def reference_arrays(frames: Sequence[Atoms]) -> list[dict[str, Any]]:
    """The labels of ``frames`` as dicts ``energy`` (eV), ``forces`` (eV/Å), ``stress``."""
    out = []
    for a in frames:
        r = a.calc.results
        out.append({"energy": float(r["energy"]), "forces": np.asarray(r["forces"], float),
                    "stress": np.asarray(r["stress"], float)})
    return out


def ionic_predictor(params: Any) -> Predictor:
    """Predictor of the ionic potential (a parameter set, a path, or None = default)."""
    from viglas.potentials import load_parameters
    from viglas.potentials.fit import predict
    from viglas.potentials.parameters import IonicParameters

    if isinstance(params, dict):
        from viglas.potentials.parameters import parameters_from_dict

        params = parameters_from_dict(params)
    p = params if isinstance(params, IonicParameters) else load_parameters(params)

    def run(frames: Sequence[Atoms]) -> list[dict[str, Any]]:
        return predict(list(frames), p)

    return run


def calculator_predictor(spec: Any, num_threads: int = 1) -> Predictor:
    """Predictor of any registry calculator (e.g. ``{"name": "chgnet"}``)."""
    from viglas.potentials.reference import make_calculator

    return ase_predictor(make_calculator(spec, num_threads=num_threads))


def ase_predictor(calc: Any) -> Predictor:
    """Predictor of an ASE calculator object (e.g. a pyace ACE potential)."""

    def run(frames: Sequence[Atoms]) -> list[dict[str, Any]]:
        out = []
        for a in frames:
            b = a.copy()
            b.calc = calc
            out.append({"energy": float(b.get_potential_energy()),
                        "forces": np.asarray(b.get_forces(), float),
                        "stress": np.asarray(b.get_stress(voigt=True), float)})
        return out

    return run


def stacked_predictor(*parts: Predictor) -> Predictor:
    """The sum of predictors (energy, forces and stress added), e.g. a fitted set plus
    a correction fitted to its residual."""
    if not parts:
        raise FitError("a stacked predictor needs at least one part", field="parts", value=0)

    def run(frames: Sequence[Atoms]) -> list[dict[str, Any]]:
        frames = list(frames)
        out = [dict(o) for o in parts[0](frames)]
        for part in parts[1:]:
            for o, q in zip(out, part(frames)):
                for k in ("energy", "forces", "stress"):
                    o[k] = np.asarray(o[k], float) + np.asarray(q[k], float)
        for o in out:
            o["energy"] = float(o["energy"])
        return out

    return run


def _metrics(ref: list[dict], pred: list[dict], comps: list[str],
             symbols: list[str] | None = None) -> dict[str, Any]:
    fr = np.concatenate([r["forces"] for r in ref]).ravel()
    fp = np.concatenate([p["forces"] for p in pred]).ravel()
    by_el = {}
    if symbols is not None:
        sym = np.repeat(np.asarray(symbols), 3)
        for el in sorted(set(symbols)):
            m = sym == el
            by_el[el] = float(np.sqrt(np.mean((fp[m] - fr[m]) ** 2)))
    d = fp - fr
    ss_tot = float(np.sum((fr - fr.mean()) ** 2))
    sr = np.array([r["stress"] for r in ref]) * EV_A3_TO_GPA
    sp = np.array([p["stress"] for p in pred]) * EV_A3_TO_GPA
    pr = -sr[:, :3].mean(axis=1)
    pp = -sp[:, :3].mean(axis=1)
    n = np.array([len(r["forces"]) for r in ref], float)
    er = np.array([r["energy"] for r in ref]) / n
    ep = np.array([p["energy"] for p in pred]) / n
    de = []
    for c in sorted(set(comps)):
        idx = [i for i, x in enumerate(comps) if x == c]
        if len(idx) > 1:
            de += list((ep[idx] - ep[idx].mean()) - (er[idx] - er[idx].mean()))
    return {
        "n_frames": len(ref),
        "n_atoms": int(n.sum()),
        "force_rmse_eV_A": float(np.sqrt(np.mean(d ** 2))),
        "force_r2": 1.0 - float(np.sum(d ** 2)) / ss_tot if ss_tot > 0 else float("nan"),
        "force_rms_ref_eV_A": float(np.sqrt(np.mean(fr ** 2))),
        "stress_rmse_GPa": float(np.sqrt(np.mean((sp - sr) ** 2))),
        "pressure_rmse_GPa": float(np.sqrt(np.mean((pp - pr) ** 2))),
        "pressure_bias_GPa": float(np.mean(pp - pr)),
        "energy_diff_rmse_meV_atom": float(1000 * np.sqrt(np.mean(np.square(de))))
        if de else float("nan"),
        "force_rmse_by_element_eV_A": by_el,
    }


def score(frames: Sequence[Atoms], predictor: Predictor) -> dict[str, Any]:
    """Per-composition and pooled accuracy of ``predictor`` on labelled ``frames``."""
    frames = list(frames)
    if not frames:
        raise FitError("no frames to score", field="frames", value=0)
    ref = reference_arrays(frames)
    pred = predictor(frames)
    comps = [str(a.info.get("composition", a.get_chemical_formula())) for a in frames]
    syms = [a.get_chemical_symbols() for a in frames]
    flat = [s for x in syms for s in x]
    out: dict[str, Any] = {"all": _metrics(ref, pred, comps, flat), "by_composition": {}}
    for c in dict.fromkeys(comps):
        idx = [i for i, x in enumerate(comps) if x == c]
        out["by_composition"][c] = _metrics([ref[i] for i in idx], [pred[i] for i in idx],
                                            [c] * len(idx), [s for i in idx for s in syms[i]])
    return out


#: Labels whose plan split is overridden, with the reason (``data/dft/split_overrides.json``)
SPLIT_OVERRIDES = DFT_DATA / "split_overrides.json"


def split_overrides(path: str | Path | None = None) -> dict[str, str]:
    """``{label: split}`` from the overrides file (``{"labels": {label: {"split": ...,
    "reason": ...}}}``); empty when there is none. An unknown split is refused by name."""
    import json

    p = Path(path or SPLIT_OVERRIDES)
    if not p.exists():
        return {}
    out = {}
    for lab, rec in json.loads(p.read_text()).get("labels", {}).items():
        if rec.get("split") not in ("train", "valid"):
            raise FitError("a split override must be 'train' or 'valid'", field="split",
                           value=rec.get("split"), allowed="train, valid",
                           hint=f"{p}: {lab}")
        out[lab] = rec["split"]
    return out


def split(frames: Sequence[Atoms], overrides: dict[str, str] | None = None
          ) -> tuple[list[Atoms], list[Atoms]]:
    """(train, valid) by ``info["split"]`` of the plan, except labels listed in
    ``overrides`` (default: :data:`SPLIT_OVERRIDES`): a fit's own 0 GPa glasses are held
    out when they are sampled, but those of a fit that failed its loop are where it was
    wrong, and the next fit must learn them."""
    ov = split_overrides() if overrides is None else overrides

    def of(a):
        return ov.get(str(a.info.get("label")), a.info.get("split", "train"))

    train = [a for a in frames if of(a) != "valid"]
    valid = [a for a in frames if of(a) == "valid"]
    return train, valid


def fit_ionic_to_dft(train: Sequence[Atoms], initial: Any = None, settings: Any = None,
                     **kwargs: Any):
    """Fit the ionic potential to DFT ``train`` frames (forces, stress, energy
    differences); ``initial`` = start parameters (default: the plain ``chgnet-ionic`` set).
    Returns :class:`viglas.potentials.fit.FitResult`."""
    from viglas.potentials import load_parameters
    from viglas.potentials.fit import fit_parameters
    from viglas.potentials.parameters import IonicParameters

    init = initial if isinstance(initial, IonicParameters) else load_parameters(initial)
    return fit_parameters(list(train), init, settings, **kwargs)


# ---------------------------------------------------------------- closing the loop
def _glass_of(label: str) -> str:
    """The glass a loop snapshot belongs to: extra snapshots of one glass are labelled
    ``<glass label>/<k>`` (scripts/dft_labels.py plan-next --snapshots)."""
    head, _, tail = label.rpartition("/")
    return head if tail.isdigit() else label


def loop_cells(frames: Sequence[Atoms], sampler: str,
               sampler_calc: Any = None) -> list[dict[str, Any]]:
    """The DFT pressure on the cells a potential made itself at 0 GPa (NPT), one row per
    labelled snapshot (sampler tag ``ionic:<sampler>@0GPa``).

    ``dft_pressure_GPa`` is the configurational PBE-D3 pressure of the snapshot: no
    kinetic part, and it carries the instantaneous pressure fluctuation of a small cell
    (at 63 atoms and 300 K the potential's own instantaneous pressure has a standard
    deviation of about 0.5 GPa, and single snapshots reach +-1 GPa). With the sampler's
    calculator, ``model_pressure_GPa`` is the
    sampler's configurational pressure on the same snapshot and
    ``pressure_error_GPa = dft - model``: the sampler holds the glass at a mean total
    pressure of 0 (its barostat), so PBE-D3's mean total pressure of that glass is
    ``0 + <dft - model>`` (kinetic parts cancel, the fluctuation largely too).
    """
    from ase.units import kB

    rows = []
    for a in frames:
        if a.info.get("sampler") != f"ionic:{sampler}@0GPa":
            continue
        p_dft = float(-np.mean(a.calc.results["stress"][:3]) * EV_A3_TO_GPA)
        t_k = float(a.info["t_K"])
        row = {"label": a.info["label"], "glass": _glass_of(a.info["label"]),
               "composition": a.info["composition"], "kind": a.info.get("kind"),
               "t_K": t_k, "split": a.info.get("split"),
               "npt_density_g_cm3": float(a.info.get("npt_density_g_cm3", 0)),
               "dft_pressure_GPa": round(p_dft, 2),
               "kinetic_pressure_GPa": round(len(a) * kB * t_k / a.get_volume()
                                             * EV_A3_TO_GPA, 2)}
        if sampler_calc is not None:
            b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=True)
            b.calc = sampler_calc
            p_mod = float(-np.mean(b.get_stress()[:3]) * EV_A3_TO_GPA)
            row["model_pressure_GPa"] = round(p_mod, 2)
            row["pressure_error_GPa"] = round(p_dft - p_mod, 2)
        rows.append(row)
    return rows


def loop_glasses(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per glass (300 K glass cells only): PBE-D3's mean total pressure of the glass the
    sampler holds at 0 GPa, ``<dft - model>`` over its snapshots, with the standard error
    of that mean when there are several (None for one snapshot); and the direct
    estimate from the DFT snapshots alone, ``<dft> + kinetic``, whose spread is the
    instantaneous fluctuation."""
    groups: dict[str, list] = {}
    for c in cells:
        if c.get("kind") == "glass" and c["t_K"] == 300.0:
            groups.setdefault(c["glass"], []).append(c)
    out = []
    for g, cs in groups.items():
        n = len(cs)
        direct = np.array([c["dft_pressure_GPa"] + c["kinetic_pressure_GPa"] for c in cs])
        row = {"glass": g, "composition": cs[0]["composition"], "n_snapshots": n,
               "split": sorted({c.get("split") for c in cs}),
               "direct_GPa": round(float(direct.mean()), 2),
               "direct_se_GPa": round(float(direct.std(ddof=1) / np.sqrt(n)), 2)
               if n > 1 else None}
        if all("pressure_error_GPa" in c for c in cs):
            err = np.array([c["pressure_error_GPa"] for c in cs])
            row["pressure_GPa"] = round(float(err.mean()), 2)
            row["pressure_se_GPa"] = (round(float(err.std(ddof=1) / np.sqrt(n)), 2)
                                      if n > 1 else None)
        out.append(row)
    return out
