"""Validation of a fitted ionic potential against its reference labels.

* :func:`force_report` — held-out force RMSE (eV/Å) and R² per composition, overall
  and per element, stress RMSE (GPa), energy-difference RMSE (eV/atom).
* :func:`partial_rdf`, :func:`first_peak_A`, :func:`mean_coordination` — structure
  metrics of a set of frames (RDF first-peak positions, mean cation coordination).
* :func:`structure_comparison` — the same metrics for two sets of frames (e.g. CHGNet
  MD vs ionic-potential MD started from the same structure) and their differences.
* :func:`plot_parity`, :func:`plot_rdf_overlay` — PNGs (matplotlib Agg).
* :func:`write_report` — the JSON report.

R² is ``1 - SS_res/SS_tot`` over all Cartesian force components of the set, with
``SS_tot`` about the mean reference component (≈ 0), i.e. the fraction of the
reference force variance the potential reproduces.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from viglas.chemistry import CONTACT_A
from viglas.errors import AnalysisError
from viglas.files import atomic_write_text
from viglas.local_structure import coordination_numbers, rdf
from viglas.potentials.fit import force_metrics
from viglas.potentials.fit_data import predict, reference_labels
from viglas.potentials.parameters import IonicParameters, pair_key
from viglas.serialize import clean
from viglas.units import EV_A3_TO_GPA

#: Pairs whose first RDF peak the report compares.
RDF_PAIRS: tuple[str, ...] = ("Al-O", "Al-Cl", "Li-Cl", "Na-Cl", "Ga-O", "Ga-Cl",
                              "In-O", "In-Cl", "B-O", "B-Cl")


def _group(frames: Sequence[Atoms]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for n, a in enumerate(frames):
        out.setdefault(str(a.info.get("composition", a.get_chemical_formula())), []).append(n)
    return out


def force_report(frames: Sequence[Atoms], params: IonicParameters) -> dict[str, Any]:
    """Per-composition and overall error metrics of ``params`` on labelled ``frames``.

    Returns ``{"overall": {...}, "compositions": {formula: {...}}}`` where each entry
    has ``force_rmse_eV_A``, ``force_mae_eV_A``, ``force_r2``, ``n_frames``,
    ``per_element`` ({el: {force_rmse_eV_A, force_r2, n_atoms}}), ``stress_rmse_GPa``
    and ``energy_rmse_eV_atom`` (energies relative to the mean of the same set).
    """
    if not frames:
        raise AnalysisError("no frames to validate on", field="frames", value=0)
    preds = predict(frames, params)

    def block(idx: list[int]) -> dict[str, Any]:
        fr = np.concatenate([reference_labels(frames[i])[1] for i in idx])
        fp = np.concatenate([preds[i]["forces"] for i in idx])
        sym = np.concatenate([frames[i].get_chemical_symbols() for i in idx])
        out = force_metrics(fp, fr)
        out["n_frames"] = len(idx)
        out["per_element"] = {}
        for el in sorted(set(sym)):
            m = sym == el
            pe = force_metrics(fp[m], fr[m])
            out["per_element"][el] = {"force_rmse_eV_A": pe["force_rmse_eV_A"],
                                      "force_r2": pe["force_r2"], "n_atoms": int(m.sum())}
        sr = [(reference_labels(frames[i])[2], preds[i]["stress"]) for i in idx]
        sr = [(a, b) for a, b in sr if a is not None]
        if sr:
            d = np.array([(b - a) * EV_A3_TO_GPA for a, b in sr])
            ref = np.array([a * EV_A3_TO_GPA for a, _ in sr])
            out["stress_rmse_GPa"] = float(np.sqrt(np.mean(d**2)))
            out["stress_ref_std_GPa"] = float(np.std(ref))
        # energy differences within one stoichiometry
        by_formula: dict[str, list[int]] = {}
        for i in idx:
            by_formula.setdefault(frames[i].get_chemical_formula(), []).append(i)
        de = []
        for members in by_formula.values():
            if len(members) < 2:
                continue
            er = np.array([reference_labels(frames[i])[0] for i in members])
            ep = np.array([preds[i]["energy"] for i in members])
            n = np.array([len(frames[i]) for i in members])
            de.append(((ep - ep.mean()) - (er - er.mean())) / n)
        if de:
            out["energy_rmse_eV_atom"] = float(np.sqrt(np.mean(np.concatenate(de) ** 2)))
        return out

    groups = _group(frames)
    return {"overall": block(list(range(len(frames)))),
            "compositions": {k: block(v) for k, v in sorted(groups.items())}}


# ---------------------------------------------------------------------------------
# structure


def partial_rdf(frames: Sequence[Atoms], a: str, b: str, r_max: float = 6.0,
                dr: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Partial g_ab(r) averaged over ``frames`` (bin centres in Å, g dimensionless):
    :func:`viglas.local_structure.rdf` on the bins ``np.arange(0, r_max + dr, dr)``.

    Normalised by the ideal-gas pair density ``N_a N_b / V`` (``N_a (N_a - 1) / V``
    for a = b). Raises :class:`AnalysisError` if a species is absent.
    """
    return rdf(list(frames), a, b, r_max=r_max, edges=np.arange(0.0, r_max + dr, dr))


def first_peak_A(r: np.ndarray, g: np.ndarray, smooth: int = 5) -> float:
    """Position (Å) of the first peak of ``g(r)``: the maximum of the smoothed g in the
    first region where g rises above 1 (up to the next point where it falls below 1)."""
    k = np.ones(smooth) / smooth
    gs = np.convolve(g, k, mode="same")
    above = np.nonzero(gs > 1.0)[0]
    if len(above) == 0:
        return float("nan")
    start = above[0]
    below = np.nonzero(gs[start:] < 1.0)[0]
    stop = start + (below[0] if len(below) else len(gs) - start)
    return float(r[start + int(np.argmax(gs[start:stop]))])


def mean_coordination(frames: Sequence[Atoms], center: str = "Al",
                      ligands: Sequence[str] = ("O", "Cl"),
                      cutoffs: dict[str, float] | None = None) -> dict[str, Any]:
    """Mean number of ligands around ``center`` atoms and the coordination histogram
    (:func:`viglas.local_structure.coordination_numbers`).

    ``cutoffs`` (Å) per ligand default to 1.3 × the typical contact distance
    (:data:`viglas.chemistry.CONTACT_A`: Al–O 2.29, Al–Cl 2.77 Å; 2.5 Å for an
    unlisted pair); a species only in ``cutoffs`` counts as a ligand too. Returns
    ``mean``, ``fraction`` {n: share of centres} and ``cutoffs_A``.
    """
    cut = {lig: 1.3 * CONTACT_A.get(pair_key(center, lig), 2.5) for lig in ligands}
    cut.update(cutoffs or {})
    c = coordination_numbers(list(frames), center, list(cut), cut)
    total = sum(c["histogram"].values())
    return {"mean": c["mean"],
            "fraction": {n: k / total for n, k in c["histogram"].items()},
            "cutoffs_A": {k: round(v, 3) for k, v in cut.items()}}


def structure_metrics(frames: Sequence[Atoms]) -> dict[str, Any]:
    """First-peak positions of :data:`RDF_PAIRS` present in ``frames`` and the mean
    coordination of each trivalent former (Al, Ga, In, B) by O + Cl."""
    sym = set(frames[0].get_chemical_symbols())
    peaks = {}
    for key in RDF_PAIRS:
        a, b = key.split("-")
        if a in sym and b in sym:
            r, g = partial_rdf(frames, a, b)
            peaks[key] = first_peak_A(r, g)
    coord = {}
    for m in ("Al", "Ga", "In", "B"):
        if m in sym:
            coord[m] = mean_coordination(frames, m, [x for x in ("O", "Cl") if x in sym])
    return {"rdf_first_peak_A": peaks, "coordination": coord}


def structure_comparison(reference: Sequence[Atoms], model: Sequence[Atoms],
                         ) -> dict[str, Any]:
    """Structure metrics of ``reference`` and ``model`` frames and the differences
    (model − reference) of the first-peak positions (Å) and mean coordinations."""
    ref = structure_metrics(reference)
    mod = structure_metrics(model)
    shift = {k: mod["rdf_first_peak_A"].get(k, float("nan")) - v
             for k, v in ref["rdf_first_peak_A"].items()}
    dcn = {k: mod["coordination"][k]["mean"] - v["mean"]
           for k, v in ref["coordination"].items() if k in mod["coordination"]}
    return {"reference": ref, "model": mod, "rdf_peak_shift_A": shift,
            "coordination_difference": dcn}


# ---------------------------------------------------------------------------------
# plots and the report


def plot_parity(frames: Sequence[Atoms], params: IonicParameters, path: str | Path,
                title: str = "") -> Path:
    """Predicted vs reference force components, one panel per composition, coloured by
    element. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds = predict(frames, params)
    groups = _group(frames)
    n = len(groups)
    ncol = min(4, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, (comp, idx) in zip(axes.ravel(), groups.items()):
        fr = np.concatenate([reference_labels(frames[i])[1] for i in idx])
        fp = np.concatenate([preds[i]["forces"] for i in idx])
        sym = np.concatenate([frames[i].get_chemical_symbols() for i in idx])
        for el in sorted(set(sym)):
            m = sym == el
            ax.scatter(fr[m].ravel(), fp[m].ravel(), s=2, alpha=0.4, label=el)
        lim = np.percentile(np.abs(fr), 99.5) * 1.1
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.7)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        r2 = force_metrics(fp, fr)["force_r2"]
        ax.set_title(f"{comp}\nR²={r2:.2f}", fontsize=8)
        ax.set_xlabel("reference F (eV/Å)", fontsize=7)
        ax.set_ylabel("ionic F (eV/Å)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, markerscale=3, loc="upper left")
    return _finish_grid(fig, axes, n, title, path)


def plot_rdf_overlay(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
                     path: str | Path, title: str = "") -> Path:
    """Overlay of g(r) curves: ``curves[panel][label] = (r, g)``, one panel per
    composition/pair. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(curves)
    ncol = min(4, max(n, 1))
    nrow = int(np.ceil(n / ncol)) or 1
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    for ax, (panel, lines) in zip(axes.ravel(), curves.items()):
        for lab, (r, g) in lines.items():
            ax.plot(r, g, lw=1, label=lab)
        ax.set_title(panel, fontsize=8)
        ax.set_xlabel("r (Å)", fontsize=7)
        ax.set_ylabel("g(r)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    return _finish_grid(fig, axes, n, title, path)


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write ``report`` as indented JSON (:func:`viglas.serialize.clean`: NaN/inf ->
    null, floats to 6 decimals), atomically (:func:`viglas.files.atomic_write_text`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(clean(report, digits=6), indent=1) + "\n")
    return path


def validation_report(params: IonicParameters, valid: Sequence[Atoms], *,
                      plots_dir: str | Path | None = None, md_temperature_K: float = 1000.0,
                      md_steps: int = 2000, md_snapshots: int = 20, seed: int = 0,
                      train: Sequence[Atoms] | None = None,
                      plot_prefix: str = "") -> dict[str, Any]:
    """Held-out force/stress/energy metrics plus structure comparison.

    For each composition in ``valid`` (frames with ``info['composition']``): force
    metrics (:func:`force_report`); and the RDF first peaks / former coordination of
    the reference frames vs Langevin MD with ``params`` at ``md_temperature_K``
    (``md_steps`` steps of 2 fs, ``md_snapshots`` frames from the second half)
    started from the first reference frame of that composition. Plots (parity,
    RDF overlays) go to ``plots_dir`` when given.
    """
    from viglas.potentials.fit_md import ionic_md_snapshots

    report: dict[str, Any] = {"held_out": force_report(valid, params)}
    if train:
        report["train"] = force_report(train, params)["overall"]
    structure: dict[str, Any] = {}
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for comp, idx in _group(valid).items():
        ref = [valid[i] for i in idx]
        model = ionic_md_snapshots(ref[0], params, temperature_K=md_temperature_K,
                                   steps=md_steps, n_snapshots=md_snapshots, seed=seed)
        if len(model) < max(2, md_snapshots // 2):
            structure[comp] = {"error": f"ionic MD stopped early ({len(model)} frames): "
                                        "atoms too close or non-finite forces"}
            continue
        structure[comp] = structure_comparison(ref, model)
        structure[comp]["n_reference_frames"] = len(ref)
        structure[comp]["n_model_frames"] = len(model)
        sym = set(ref[0].get_chemical_symbols())
        for key in ("Al-O", "Al-Cl", "Li-Cl", "Na-Cl"):
            a, b = key.split("-")
            if a in sym and b in sym:
                curves[f"{comp} {key}"] = {"reference": partial_rdf(ref, a, b),
                                           "ionic": partial_rdf(model, a, b)}
    report["structure"] = structure
    report["structure_settings"] = {"md_temperature_K": md_temperature_K, "timestep_fs": 2.0,
                                    "md_steps": md_steps, "md_snapshots": md_snapshots,
                                    "thermostat": "ASE Langevin, friction 0.01/fs",
                                    "reference_frames": "held-out reference MD frames"}
    if plots_dir is not None:
        plots_dir = Path(plots_dir)
        report["plots"] = {
            "parity_held_out": str(plot_parity(valid, params,
                                               plots_dir / f"{plot_prefix}parity_held_out.png",
                                               "held-out forces").name),
        }
        if curves:
            report["plots"]["rdf"] = str(plot_rdf_overlay(
                curves, plots_dir / f"{plot_prefix}rdf_overlay.png",
                f"g(r) reference vs ionic, {md_temperature_K:.0f} K").name)
    return report


def _finish_grid(fig, axes, n_used: int, title: str, path: str | Path) -> Path:
    """Blank the unused panels, add the title, save the figure as PNG and close it."""
    import matplotlib.pyplot as plt

    for ax in axes.ravel()[n_used:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
