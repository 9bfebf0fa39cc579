#!/usr/bin/env python
"""Former coordination in a glass against the same glass relaxed by PBE-D3 (issue 12,
item 4: "Al coordination in LACO glass compared with DFT-relaxed snapshots").

A classical potential can put the right density and pressure on a glass and still give
its network formers the wrong coordination. This script takes labelled glass snapshots
(the DFT dataset's cells, each made by one potential's own melt-quench), relaxes their
atomic positions at fixed cell with GPAW PBE-D3(BJ) (the label settings), and compares
the coordination of the former (Al by O + Cl, histogram and mean; Al–O and Al–Cl
bond lengths) before and after, and after the same relaxation with the classical
potentials.

    python scripts/dft_relax.py run r7/LiAlCl2.5O0.75/npt300_0GPa/s70001 [--fmax 0.1]
                                    [--steps 40]     # GPAW, one core, resumable
    python scripts/dft_relax.py run r0/LiAlCl4/crystal/v1.00 --cell --fmax 0.03
                                    # cell too, at 0 GPa: PBE-D3's own crystal density
    python scripts/dft_relax.py report [--json viglas/potentials/data/dft/relaxed/report.json]

`run` writes every optimizer step (positions, DFT energy and forces) to
``viglas/potentials/data/dft/relaxed/<label>.extxyz.gz`` as it goes; a killed run
resumes from the last step written (the BFGS Hessian starts afresh). Needs the `dft`
extra. `report` needs only the core install: it relaxes the start snapshots with the
classical sets (`chgnet-ionic`, `dft-delta`) and compares.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "viglas/potentials/data/dft/relaxed"


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _safe(label: str) -> str:
    return label.replace("/", "__")


@functools.lru_cache(maxsize=1)
def _dataset() -> dict:
    """The labelled frames by label (read once per process)."""
    from viglas.potentials.dft_fit import load_dataset

    return {a.info.get("label"): a for a in load_dataset()}


def _snapshot(label: str):
    if label in _dataset():
        return _dataset()[label]
    raise SystemExit(f"label {label!r}: not in the DFT dataset (see "
                     f"`python scripts/dft_labels.py status`); give a labelled frame's "
                     f"`label` key")


def _path_frames(label: str):
    """The relaxation path written so far (a step repeated by a resumed run once)."""
    import numpy as np

    from viglas.potentials.dft import read_labels

    p = OUT / f"{_safe(label)}.extxyz.gz"
    out = []
    for a in (read_labels(p) if p.exists() else []):
        if not (out and np.allclose(out[-1].positions, a.positions)):
            out.append(a)
    return out


def cmd_run(args) -> None:
    import numpy as np
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.optimize import BFGS

    from viglas.potentials.dft import code_versions, make_gpaw, resolve_settings
    from viglas.potentials.dft_sampling import write_frames

    OUT.mkdir(parents=True, exist_ok=True)
    start = _snapshot(args.label)
    name = _safe(args.label) + ("__cell" if args.cell else "")
    done = _path_frames(name)
    last = done[-1] if done else start
    atoms = Atoms(start.numbers, positions=last.positions,
                  cell=last.cell if args.cell else start.cell, pbc=True)
    settings = resolve_settings(json.loads(args.params) if args.params else None)
    if args.cell:
        # the k-mesh of the start cell, kept while the cell relaxes (the density rule
        # could change it between steps, and with it the energy surface)
        from viglas.potentials.dft import kpoint_mesh

        settings = {**settings, "kpts": kpoint_mesh(start.cell.array, settings)}
    meta = {"label": args.label, "composition": start.info.get("composition"),
            "sampler": start.info.get("sampler"),
            "relax": "positions and cell, 0 GPa" if args.cell else "positions, fixed cell",
            "optimizer": "ase BFGS", "fmax_eV_A": args.fmax,
            "dft_settings": json.dumps(settings, sort_keys=True),
            "code_versions": json.dumps(code_versions(), sort_keys=True)}
    if done and float(done[-1].info.get("fmax_eV_A_now", 1e9)) < args.fmax:
        _log(f"{args.label}: already relaxed ({len(done) - 1} steps)")
        return
    atoms.calc = make_gpaw(settings)
    frames = list(done)
    t0 = time.process_time()

    def record():
        if frames and np.allclose(frames[-1].positions, atoms.positions) and \
                np.allclose(frames[-1].cell.array, atoms.cell.array):
            return  # a resumed run re-evaluates the last step written: keep it once
        f = atoms.get_forces()
        fm = float((f ** 2).sum(axis=1).max() ** 0.5)
        a = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        extra = {}
        if args.cell:
            st = atoms.get_stress()
            extra = {"stress": st}
            p_gpa = float(-st[:3].mean() * EV_A3_TO_GPA)
            rho = density_g_cm3(atoms.get_masses().sum(), atoms.get_volume())
        a.calc = SinglePointCalculator(a, energy=atoms.get_potential_energy(), forces=f,
                                       **extra)
        a.info.update(meta, step=len(frames), fmax_eV_A_now=fm,
                      cpu_s=round(time.process_time() - t0, 1))
        if args.cell:
            a.info.update(pressure_GPa=round(p_gpa, 3), density_g_cm3=round(rho, 4))
        frames.append(a)
        write_frames(frames, OUT / f"{name}.extxyz.gz")
        _log(f"{args.label}: step {len(frames) - 1}, E {a.get_potential_energy():.3f} eV, "
             f"max |F| {fm:.3f} eV/Å"
             + (f", P {p_gpa:+.2f} GPa, {rho:.4f} g/cm3" if args.cell else ""))

    if args.cell:
        from ase.filters import FrechetCellFilter

        from viglas.units import EV_A3_TO_GPA, density_g_cm3

        target = FrechetCellFilter(atoms, scalar_pressure=0.0)
    else:
        target = atoms
    opt = BFGS(target, maxstep=0.1, logfile=None)
    opt.attach(record, interval=1)
    opt.run(fmax=args.fmax, steps=max(0, args.steps - max(0, len(done) - 1)))


def _relax_classical(atoms, params: str, fmax: float, steps: int):
    from ase.optimize import BFGS

    from viglas.calculators import get_calculator

    a = atoms.copy()
    a.calc = get_calculator({"name": "ionic", "params": {"parameters": params}})
    BFGS(a, maxstep=0.1, logfile=None).run(fmax=fmax, steps=steps)
    return a


def _structure(atoms) -> dict:
    import numpy as np

    from viglas.analysis.structure import bridging_oxygen
    from viglas.potentials.validate import mean_coordination

    sym = atoms.get_chemical_symbols()
    ligands = [x for x in ("O", "Cl") if x in sym]
    c = mean_coordination([atoms], "Al", ligands)
    d = atoms.get_all_distances(mic=True)
    al = [i for i, s in enumerate(sym) if s == "Al"]
    out = {"al_coordination_mean": round(float(c["mean"]), 3),
           "al_coordination_fraction": {str(k): round(v, 3)
                                        for k, v in sorted(c["fraction"].items())},
           "cutoffs_A": c["cutoffs_A"]}
    for lig in ligands:
        js = [j for j, s in enumerate(sym) if s == lig]
        r = d[np.ix_(al, js)]
        bonds = r[r < c["cutoffs_A"][lig]]
        out[f"al_{lig.lower()}_per_al"] = round(len(bonds) / len(al), 3)
        out[f"al_{lig.lower()}_bond_A"] = round(float(bonds.mean()), 3) if len(bonds) else None
        if lig == "O":  # O by the Al it bonds to (same cutoff as the coordination)
            bo = bridging_oxygen(atoms, ("Al",), {"Al-O": c["cutoffs_A"]["O"]})
            frac = {"0": bo["free_O_fraction"], "1": bo["non_bridging_O_fraction"],
                    "2": bo["bridging_O_fraction"] - bo["tricluster_O_fraction"],
                    "3": bo["tricluster_O_fraction"]}
            out["o_by_al_neighbours_fraction"] = {k: round(v, 3) for k, v in frac.items()
                                                  if v > 0}
    return out


def cmd_report(args) -> None:
    from viglas.potentials.dft import read_labels
    from viglas.units import density_g_cm3

    rows = []
    # fixed-cell relaxations of glasses only: the cell relaxations (--cell, crystals)
    # answer another question (a crystal's own PBE-D3 density) and are not compared here
    for p in sorted(q for q in OUT.glob("*.extxyz.gz")
                    if not q.name.endswith("__cell.extxyz.gz")):
        label = str(read_labels(p)[0].info["label"])
        path = _path_frames(label)
        start = _snapshot(label)
        row = {"label": label, "composition": start.info.get("composition"),
               "sampler": start.info.get("sampler"), "n_atoms": len(start),
               "density_g_cm3": round(density_g_cm3(start.get_masses().sum(),
                                                    start.get_volume()), 3),
               "dft_steps": len(path) - 1,
               "dft_final_fmax_eV_A": round(float(path[-1].info["fmax_eV_A_now"]), 3),
               "dft_relaxation_energy_meV_atom": round(
                   1000 * (path[-1].get_potential_energy() - path[0].get_potential_energy())
                   / len(start), 1),
               "snapshot": _structure(start), "dft_relaxed": _structure(path[-1])}
        for name, params in (("default_relaxed", "chgnet-ionic"), ("dft_delta_relaxed", "dft-delta")):
            row[name] = _structure(_relax_classical(start, params, args.fmax, 300))
        rows.append(row)
        _log(f"{label}: Al CN snapshot {row['snapshot']['al_coordination_mean']}, "
             f"DFT-relaxed {row['dft_relaxed']['al_coordination_mean']} "
             f"({row['dft_steps']} steps, max |F| {row['dft_final_fmax_eV_A']}), default "
             f"{row['default_relaxed']['al_coordination_mean']}, dft-delta "
             f"{row['dft_delta_relaxed']['al_coordination_mean']}")
    out = {"command": "python scripts/dft_relax.py report", "classical_fmax_eV_A": args.fmax,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cells": rows}
    Path(args.json).write_text(json.dumps(out, indent=1))
    _log(f"-> {Path(args.json).relative_to(ROOT)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="relax one labelled snapshot with GPAW (resumable)")
    r.add_argument("label")
    r.add_argument("--fmax", type=float, default=0.1, help="eV/Å")
    r.add_argument("--steps", type=int, default=40, help="optimizer steps in all")
    r.add_argument("--params", help="JSON dict of gpaw settings (default: label settings)")
    r.add_argument("--cell", action="store_true",
                   help="relax the cell too, at 0 GPa (a crystal's own PBE-D3 density); "
                        "the path goes to <label>__cell.extxyz.gz")
    q = sub.add_parser("report", help="compare coordination before/after relaxation")
    q.add_argument("--json", default=str(OUT / "report.json"))
    q.add_argument("--fmax", type=float, default=0.05, help="classical relaxation, eV/Å")
    args = p.parse_args(argv)
    {"run": cmd_run, "report": cmd_report}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
