#!/usr/bin/env python
"""Write ``viglas/potentials/data/default_report.json``: what the default potential is
and how it measures against PBE-D3 (issue 12, item 5).

The default potential is the ionic+delta set ``dft-delta``
(``viglas/potentials/data/dft_delta.json``). This script gathers, for exactly that file
(its SHA-256 is checked against every source that names one):

- its fit record (λ, coefficients, training frames, baseline charges, command);
- held-out scores against PBE-D3 of dft-delta, the plain ``chgnet-ionic`` set, CHGNet
  0.3.0 and SevenNet-0 on the same frames, the DFT pressure on its own 0 GPa glasses
  (the loop) and its crystals: ``data/dft/fit_report_delta.json``, written by
  ``python scripts/fit_dft.py --form delta --delta-in viglas/potentials/data/dft_delta.json
  --loop-sampler FILE_NAME`` (the name the shipped file had when its loop was sampled);
- the 0 GPa melt-quench of every preset composition: the report ``--presets-report``
  (``fit_dft.py --form delta --delta-in FILE --glass-check COMPOSITIONS --report ...``,
  made with the shipped file);
- the force scores on its own 0 GPa glasses, which it was not trained on, and on its
  training frames (scored here);
- PBE-D3's own relaxed crystals (``scripts/dft_relax.py run ... --cell``) and the
  default's relaxed crystals against them;
- each criterion of issue 12 with its measured value and whether it is met.

    python scripts/default_report.py [--presets-report REPORT]
        [--out viglas/potentials/data/default_report.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "viglas" / "potentials" / "data"
REQUIRED = ("LiAlCl4", "LiAlCl2.5O0.75", "NaAlCl2.5O0.75", "LiGaCl2.5O0.75",
            "LiInCl2.5O0.75", "LiBCl2.5O0.75")
#: issue 12 thresholds
FORCE_R2_MIN, LOOP_GPA, CRYSTAL_PCT = 0.85, 1.0, 4.0
#: set names in fit_report_delta.json -> names a user writes
SETS = {"ionic_delta": "dft-delta", "ionic_default_chgnet_fitted": "chgnet-ionic",
        "chgnet": "chgnet-0.3.0", "sevennet": "sevennet-0"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _table(s: dict) -> dict:
    """A score (dft_fit.score) as the report prints it: all frames and per composition."""
    return {"all": _metrics(s["all"]),
            "by_composition": {c: _metrics(m) for c, m in s["by_composition"].items()}}


def _metrics(m: dict) -> dict:
    import math

    def r(x, nd):  # None where undefined (an energy difference needs two frames)
        return None if x is None or not math.isfinite(x) else round(x, nd)

    return {"force_r2": r(m["force_r2"], 3), "force_rmse_eV_A": r(m["force_rmse_eV_A"], 3),
            "pressure_bias_GPa": r(m["pressure_bias_GPa"], 2),
            "pressure_rmse_GPa": r(m["pressure_rmse_GPa"], 2),
            "energy_diff_rmse_meV_atom": r(m["energy_diff_rmse_meV_atom"], 1),
            "n_frames": m["n_frames"]}


def _same_model(report: dict, model_file: Path, name: str) -> None:
    """Refuse a source report made with another parameter file than ``model_file``."""
    rec = report.get("delta_fit", {})
    f = rec.get("model_file")
    if f is None or sha256(ROOT / f) != sha256(model_file):
        raise SystemExit(f"{name}: made with {f}, not with the shipped "
                         f"{model_file.relative_to(ROOT)} (rerun the command in this "
                         "script's docstring)")


def limitations(criteria: list, own: dict, loop: dict, reference: dict) -> list[str]:
    """The shortfalls, stated from the numbers of this report."""
    out = [f"Not met: {c['what']} = {c['value']} (criterion {c['threshold']})."
           for c in criteria if not c["met"]]
    weak = {c: m["force_r2"] for c, m in own.get("by_composition", {}).items()
            if m["force_r2"] < FORCE_R2_MIN}
    if weak:
        out.append("On its own 0 GPa glasses that it was not trained on, force R2 is below "
                   f"{FORCE_R2_MIN} for " + ", ".join(f"{c} ({v})" for c, v in weak.items())
                   + ": the glasses a fit makes itself are where it is weakest.")
    far = [(c, x["pressure_GPa"]) for c, xs in loop.items() for x in xs
           if abs(x["pressure_GPa"]) > LOOP_GPA]
    if far:
        out.append("PBE-D3 pressure of its own 0 GPa, 300 K glasses outside +-1 GPa: "
                   + ", ".join(f"{c} {p:+.2f} GPa" for c, p in far) + " (all its glasses: "
                   "loop_0GPa).")
    raw = [(c, p) for c, xs in loop.items() for x in xs for p in x["snapshot_dft_GPa"]
           if abs(p) > LOOP_GPA]
    if raw and not far:
        out.append("Single snapshots carry the instantaneous pressure of a 63-atom cell: "
                   "the configurational PBE-D3 pressure of one snapshot is outside +-1 GPa "
                   "for " + ", ".join(f"{c} ({p:+.2f} GPa)" for c, p in raw) + ", while "
                   "the glass's pressure (PBE-D3 minus the potential on the same "
                   "snapshots, which the potential holds at 0 GPa) is within.")
    for name, ref in reference.items():
        out.append(f"{name}: PBE-D3 itself relaxes the crystal (cell and positions, "
                   f"0 GPa) to {ref['density_change_pct']:+.1f} % against the prototype "
                   f"density ({ref['steps']} steps, last max force "
                   f"{ref['fmax_eV_A']} eV/A)"
                   + (", so a set faithful to this reference does not meet the "
                      f"{CRYSTAL_PCT:g} % criterion for it" if abs(ref["density_change_pct"])
                      > CRYSTAL_PCT else "")
                   + f"; dft-delta's relaxed crystal is "
                   f"{ref['dft_delta_relaxed_vs_reference_pct']:+.1f} % against that cell.")
    return out


def reference_crystals(crystals: dict) -> dict:
    """PBE-D3's own crystal densities: the last step of each cell relaxation
    (``dft_relax.py run LABEL --cell``) of a prototype crystal label, against the
    prototype densities of the fit report's crystal checks (``crystals``)."""
    import numpy as np
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from viglas.potentials.dft import read_labels
    from viglas.potentials.dft_fit import crystal_matcher
    from viglas.units import density_g_cm3

    matcher = crystal_matcher()  # the tolerances of fit_dft.py's crystal checks
    out = {}
    for name, rec in crystals.items():
        rho0 = float(rec["prototype_density_g_cm3"])
        p = DATA / "dft" / "relaxed" / f"r0__{name}__crystal__v1.00__cell.extxyz.gz"
        if not p.exists():
            continue
        path = read_labels(p)
        a = path[-1]
        rho = density_g_cm3(a.get_masses().sum(), a.get_volume())
        out[name] = {"file": str(p.relative_to(ROOT)), "steps": len(path) - 1,
                     "density_g_cm3": round(rho, 4),
                     "density_change_pct": round(100 * (rho / rho0 - 1), 2),
                     "pressure_GPa": a.info.get("pressure_GPa"),
                     "fmax_eV_A": round(float(a.info.get("fmax_eV_A_now", float("nan"))), 3),
                     "energy_vs_start_meV_atom": round(
                         1000 * (a.get_potential_energy() - path[0].get_potential_energy())
                         / len(a), 1),
                     "start_fmax_eV_A": round(float(
                         np.linalg.norm(path[0].get_forces(), axis=1).max()), 3),
                     "start_pressure_GPa": path[0].info.get("pressure_GPa"),
                     "space_group": SpacegroupAnalyzer(
                         AseAtomsAdaptor.get_structure(a), symprec=0.1).get_space_group_symbol(),
                     "same_structure": bool(matcher.fit(
                         AseAtomsAdaptor.get_structure(path[0]),
                         AseAtomsAdaptor.get_structure(a)))}
        # the default potential's relaxed crystal against this reference cell: the
        # comparison a set fitted to PBE-D3 can be held to
        rel = rec["relaxed"]["density_g_cm3"]
        out[name]["dft_delta_relaxed_vs_reference_pct"] = round(100 * (rel / rho - 1), 2)
    return out


def build(presets_report: Path) -> dict:
    from viglas.potentials.acemlp import ACEMLPModel
    from viglas.potentials.delta import SHIPPED_DELTA, load_delta_file, training_labels
    from viglas.potentials.delta_fit import delta_file_predictor
    from viglas.potentials.dft_fit import load_dataset, score, split

    model_file = SHIPPED_DELTA["dft-delta"]
    fit_report = json.loads((DATA / "dft" / "fit_report_delta.json").read_text())
    presets = json.loads(presets_report.read_text())
    _same_model(fit_report, model_file, "data/dft/fit_report_delta.json")
    _same_model(presets, model_file, str(presets_report))
    model, pred = delta_file_predictor(model_file)
    fit = model.meta["fit"]
    shipped = load_delta_file(model_file)
    seen = training_labels(shipped)  # the linear fit's and the ACE-MLP's frames
    ace = shipped.get("acemlp")

    held = {}
    for key, name in SETS.items():
        s = fit_report["scores"].get(key)
        if not s:
            continue
        v = s["valid"] if "valid" in s else s
        held[name] = _table(v)

    # its own 0 GPa glasses (the glass cells of its loop, fit_dft.py) that it was not
    # trained on: the frames the issue's "held-out frames from MD runs not used in
    # training" mean most
    frames = load_dataset()
    _, valid = split(frames)
    valid = [a for a in valid if a.info["label"] not in seen]  # as fit_dft.py scores them
    if len(valid) != fit_report["n_valid"]:
        raise SystemExit("data/dft/fit_report_delta.json holds another held-out set than "
                         "the dataset gives now: rerun the command in this script's docstring")
    glasses_made = {c["label"] for c in fit_report["loop_0GPa"]["cells"]
                    if c.get("kind") == "glass"}
    own = [a for a in frames if a.info["label"] in glasses_made - seen]
    own_scores = {}
    if own:
        s = score(own, pred)
        own_scores = {"labels": [a.info["label"] for a in own], **_table(s)}
    # how well the form fits its own training frames: a composition it cannot fit there
    # is limited by the form, not by data it has not seen
    by = {a.info["label"]: a for a in frames}
    s = score([by[lab] for lab in sorted(seen)], pred)
    train_scores = {"n_frames": len(seen), **_table(s)}

    # the loop: PBE-D3 pressure of every labelled 0 GPa, 300 K glass the shipped file
    # made (fit_dft.py lists every cell of its sampler, crystals too; a composition may
    # have several glasses, each with one or more snapshots: each glass counts, none is
    # dropped). A glass's pressure is <PBE-D3 - model> over its snapshots
    # (dft_fit.loop_glasses): the model holds it at 0 GPa, and the difference on the
    # same snapshot carries neither the kinetic part nor most of the instantaneous
    # fluctuation that one snapshot's own DFT pressure does.
    cells = [c for c in fit_report["loop_0GPa"]["cells"]
             if c.get("kind") == "glass" and c["t_K"] == 300.0]
    loop: dict[str, list] = {}
    for g in fit_report["loop_0GPa"]["glasses"]:  # 300 K glasses only (loop_glasses)
        raw = [x["dft_pressure_GPa"] for x in cells if x["glass"] == g["glass"]]
        loop.setdefault(g["composition"], []).append({**g, "snapshot_dft_GPa": raw})
    crystals = fit_report["crystals"]["ionic_delta"]
    reference = reference_crystals(crystals)
    glasses = presets["glasses_0GPa"]["ionic_delta"]

    criteria = []
    hv = held["dft-delta"]["by_composition"]
    for c in REQUIRED:
        r2 = hv.get(c, {}).get("force_r2")
        criteria.append({"item": 3, "what": f"held-out force R2, {c}", "value": r2,
                         "n_frames": hv.get(c, {}).get("n_frames"),
                         "threshold": f">= {FORCE_R2_MIN}",
                         "met": r2 is not None and r2 >= FORCE_R2_MIN})
    for c in ("LiAlCl2.5O0.75", "NaAlCl2.5O0.75"):
        gs = loop.get(c, [])
        ps = [x["pressure_GPa"] for x in gs]
        worst = max(ps, key=abs) if ps else None  # every glass must be within the band
        criteria.append({"item": 4, "what": f"PBE-D3 pressure of its own 0 GPa, 300 K {c} "
                         "glasses, <PBE-D3 - model> over each glass's snapshots (the glass "
                         "furthest from 0)", "value": worst,
                         "all_values": ps,
                         "standard_errors": [x["pressure_se_GPa"] for x in gs],
                         "n_snapshots": [x["n_snapshots"] for x in gs],
                         "snapshot_dft_pressures": [x["snapshot_dft_GPa"] for x in gs],
                         "threshold": f"within +-{LOOP_GPA} GPa",
                         "met": worst is not None and abs(worst) <= LOOP_GPA})
    for c, rec in crystals.items():
        for mode in ("relaxed", "npt_300K"):
            d = rec[mode]["density_change_pct"]
            same = rec[mode].get("same_structure", rec[mode].get("same_structure_after_quench"))
            criteria.append({"item": 4, "what": f"{c} crystal, {mode}: density change from "
                             f"the prototype ({rec['prototype_density_g_cm3']} g/cm3), %",
                             "value": d, "same_structure": same,
                             "threshold": f"within +-{CRYSTAL_PCT} %, same structure",
                             "met": bool(same) and abs(d) <= CRYSTAL_PCT})
    boiled = sorted(c for c, g in glasses.items() if g.get("boiled_or_failed"))
    criteria.append({"item": 4, "what": "preset compositions melt-quenched at 0 GPa "
                     "(1000 K) without boiling", "value": f"{len(glasses) - len(boiled)} of "
                     f"{len(glasses)}", "failed": boiled, "threshold": "all",
                     "met": not boiled})

    return {
        "schema": "viglas-default-report/1",
        "about": "The default potential of viglas (calculator {name: ionic} with no "
                 "parameters, or parameters: default): the ionic+delta set dft-delta, "
                 "fitted to GPAW PBE-D3(BJ) labels (docs/dft.md)"
                 + ("" if ace is None else ", with an ACE-MLP many-body correction fitted "
                    "to what the linear fit leaves (potential.acemlp)") + ". It replaced the plain "
                 "ionic set fitted to CHGNet (chgnet-ionic, report chgnet_ionic_report.json) "
                 "as the default in session 10. Every number below is measured by the "
                 "command named in 'sources'.",
        "potential": {
            "name": "dft-delta", "file": str(model_file.relative_to(ROOT)),
            "sha256": sha256(model_file),
            "reference": fit.get("reference"), "lambda": fit.get("lambda"),
            "n_coefficients": fit.get("n_coefficients"),
            "n_train_frames": fit.get("n_train_frames"),
            "charge_scale": fit.get("charge_scale"), "alkali_charge": fit.get("alkali_charge"),
            "command": fit.get("command"), "date": fit.get("date"),
            "acemlp": None if ace is None else {
                "about": "a nonlinear many-body correction (viglas.potentials.acemlp) "
                         "fitted to PBE-D3 minus the linear ionic+delta fit",
                "arrays_sha256": ACEMLPModel(ace).identity()["arrays_sha256"],
                "n_train_frames": len(ace["meta"]["train_labels"]),
                "validation_runs": len(ace["meta"].get("validation_runs", [])),
                "fit_args": ace["meta"].get("fit_args"),
                "epoch_kept": ace["meta"].get("epoch_kept"),
                "command": ace["meta"].get("command")}},
        "replaces": {"name": "chgnet-ionic", "file": "viglas/potentials/data/chgnet_ionic.yaml",
                     "report": "viglas/potentials/data/chgnet_ionic_report.json"},
        "held_out": {"n_frames": fit_report["n_valid"],
                     "labels": [a.info["label"] for a in valid], "sets": held},
        "own_glasses_not_trained_on": own_scores,
        "training_frames": train_scores,
        "loop_0GPa": {"sampler": fit_report["loop_0GPa"]["sampler"], "cells": cells,
                      "glasses": [x for xs in loop.values() for x in xs]},
        "crystals": crystals,
        "glasses_0GPa": glasses,
        "criteria": criteria,
        "all_criteria_met": all(c["met"] for c in criteria),
        "reference_crystals_pbe_d3": reference,
        "limitations": limitations(criteria, own_scores, loop, reference),
        "sources": {
            "held_out, loop_0GPa, crystals": "python scripts/fit_dft.py --form delta "
            "--delta-in viglas/potentials/data/dft_delta.json --loop-sampler "
            f"{fit_report['loop_0GPa']['sampler']} --crystal-ps 10",
            "glasses_0GPa": "python scripts/fit_dft.py --form delta --delta-in "
            f"{presets['delta_fit'].get('model_file')} --glass-check <compositions> "
            f"--report {presets_report.relative_to(ROOT) if presets_report.is_relative_to(ROOT) else presets_report}",
            "own_glasses_not_trained_on, this file": "python scripts/default_report.py",
            "reference_crystals_pbe_d3": "python scripts/dft_relax.py run "
            "r0/LiAlCl4/crystal/v1.00 --cell --fmax 0.03 --steps 60"},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv=None) -> int:
    from viglas.potentials.dft_fit import SAMPLERS

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DATA / "default_report.json"))
    p.add_argument("--presets-report",
                   default=str(SAMPLERS / "fit_report_delta_L4_presets.json"),
                   help="fit_dft.py report with the 0 GPa glass check of the presets' "
                        "compositions, made with the shipped file")
    args = p.parse_args(argv)
    rep = build(Path(args.presets_report).resolve())
    Path(args.out).write_text(json.dumps(rep, indent=1, allow_nan=False) + "\n")
    for c in rep["criteria"]:
        print(f"{'met    ' if c['met'] else 'NOT met'}  {c['what']}: {c['value']}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
