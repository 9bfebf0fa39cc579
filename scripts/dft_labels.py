#!/usr/bin/env python
"""Build, extend and inspect the shipped DFT (GPAW PBE-D3(BJ)) dataset.

    python scripts/dft_labels.py plan                 # sample candidates (ionic MD, ~1 min)
    python scripts/dft_labels.py plan-next --round 1 --params FITTED.yaml
                                                      # sample with a refitted set at 0 GPa
    python scripts/dft_labels.py plan-crystals --round 14 --params FITTED.json
                                                      # the crystals as a refitted set
                                                      # relaxes them (training frames)
    python scripts/dft_labels.py plan-small --round 2 # ~21-atom training cells (cheap)
    python scripts/dft_labels.py label [--hours 2]    # label them, resumable; run in the
                                                      # background, several at once is fine
    python scripts/dft_labels.py status               # what is labelled, per composition
    python scripts/dft_labels.py converge             # cutoff / k-point convergence table

Files (under viglas/potentials/data/dft/):
    candidates_round0.extxyz.gz   the plan: configurations with their metadata
    labels/<settings_hash>/*.extxyz.gz, settings.json
                                  one label per configuration (energy eV, forces eV/Å,
                                  stress eV/Å³), content-addressed by structure, DFT
                                  settings and code versions
    convergence.json              the convergence measurements

Labelling claims each frame before computing it, so two processes (e.g. one per core)
share the queue; a killed process loses only the frame it was computing. Commit the
labels folder as it grows. Needs the `dft` extra (see README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "viglas" / "potentials" / "data" / "dft"
PLAN = DATA / "candidates_round0.extxyz.gz"
LABELS = DATA / "labels"


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def _candidate(a):
    """A bare periodic copy of an MD configuration (atoms wrapped into the cell, no
    calculator, no info): what a label plan stores."""
    from ase import Atoms

    return Atoms(a.numbers, positions=a.get_positions(wrap=True), cell=a.cell, pbc=True)


def cmd_plan(args) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from viglas.potentials.dft_sampling import plan_round0, read_frames, write_frames

    existing = {}
    if PLAN.exists():
        existing = {a.info["label"]: a for a in read_frames(PLAN)}
    frames = plan_round0(seeds_per_recipe=args.seeds, existing=existing, log=_log)
    write_frames(frames, PLAN)
    _log(f"{len(frames)} candidates in {PLAN.relative_to(ROOT)}")


def cmd_plan_small(args) -> None:
    """Small (~21-atom) cells of every composition: cheap training labels."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from viglas.potentials.dft_sampling import plan_small, read_frames, write_frames

    rnd = int(args.round)
    path = DATA / f"candidates_round{rnd}.extxyz.gz"
    existing = {a.info["label"]: a for a in read_frames(path)} if path.exists() else {}
    comps = args.compositions.split(",") if args.compositions else None
    frames = plan_small(rnd, n_atoms=args.n_atoms, compositions=comps,
                        priority_base=int(args.priority_base), existing=existing, log=_log)
    write_frames(frames, path)
    _log(f"{len(frames)} round-{rnd} small-cell candidates in {path.relative_to(ROOT)}")


def cmd_plan_next(args) -> None:
    """Round n: configurations visited by the *refitted* set at 0 GPa (NPT melt-quench
    from 1000 K, then NPT at 300 and 600 K), so the next labels test the fitted set
    where it will run, including the DFT pressure on its own 0 GPa glasses."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from viglas.errors import ViglasError
    from viglas.potentials.delta import make_potential
    from viglas.potentials.dft_sampling import plan_compositions, read_frames, write_frames
    from viglas.structures import build_glass

    from viglas.md import melt_quench, run_md

    rnd = int(args.round)
    path = DATA / f"candidates_round{rnd}.extxyz.gz"
    existing = {a.info["label"]: a for a in read_frames(path)} if path.exists() else {}
    comps = plan_compositions(args.compositions.split(",") if args.compositions else None)
    n_atoms = int(args.n_atoms)
    temps = [int(t) for t in str(args.temperatures).split(",")]
    tag = "" if n_atoms == 64 else f"n{n_atoms}/"
    work = ROOT / "runs" / f"dft-round{rnd}" / tag
    out = []
    base = int(args.priority_base)
    snaps = int(args.snapshots)
    for ci, comp in enumerate(comps):
        seed = 10000 * rnd + ci + (0 if n_atoms == 64 else 500)
        labels = {t: f"r{rnd}/{comp}/{tag}npt{t}_0GPa/s{seed}" for t in temps}
        extra = [f"{labels[300]}/{k}" for k in range(1, snaps)] if 300 in temps else []
        if all(lab in existing for lab in [*labels.values(), *extra]):
            out += [existing[lab] for lab in [*labels.values(), *extra]]
            continue
        calc = make_potential(args.params)
        start = build_glass(comp, n_atoms, method="substitution", seed=seed)
        start.info = {}
        try:
            mq = melt_quench(start, calc, t_melt_K=1000.0, t_final_K=300.0, hold_ps=5.0,
                             cool_rate_K_ps=100.0, pressure_GPa=0.0, timestep_fs=2.0,
                             workdir=work / comp / "mq", seed=seed, progress=False)
        except ViglasError as exc:
            _log(f"{comp}: melt-quench at 0 GPa failed ({exc}); no round-{rnd} frames")
            continue
        glass = mq.atoms
        for pri, t_K in enumerate(temps):
            res = run_md(glass, calc, ensemble="npt", thermostat="langevin",
                         temperature_K=float(t_K), pressure_GPa=0.0, timestep_fs=2.0,
                         steps=2500, save_every=500, workdir=work / comp / f"npt{t_K}",
                         seed=seed + t_K, progress=False)
            f = _candidate(res.atoms)
            f.info.update(label=labels[t_K], composition=comp, kind="glass" if t_K == 300
                          else "melt", t_K=float(t_K), density_factor=1.0, seed=seed,
                          round=rnd, sampler=f"ionic:{Path(args.params).name}@0GPa",
                          split="valid" if comp in ("LiAlCl2.5O0.75", "NaAlCl2.5O0.75")
                          and t_K == 300 and n_atoms == 64 else "train",
                          priority=base + (pri * len(comps) + ci) * snaps,
                          npt_density_g_cm3=round(float(res.mean_density_g_cm3), 4))
            _log(f"sampled {labels[t_K]}: {len(f)} atoms, "
                 f"{res.mean_density_g_cm3:.3f} g/cm3 at 0 GPa")
            out.append(f)
            if t_K != 300:
                continue
            # more snapshots of the same glass, 1 ps apart: one snapshot's pressure
            # carries the instantaneous fluctuation of a small cell (standard deviation
            # about 0.5 GPa at 63 atoms, 300 K), the loop averages over them
            for k, lab in enumerate(extra, start=1):
                res = run_md(res.atoms, calc, ensemble="npt", thermostat="langevin",
                             temperature_K=300.0, pressure_GPa=0.0, timestep_fs=2.0,
                             steps=500, save_every=100, seed=seed + 300 + k,
                             workdir=work / comp / f"npt300_{k}", progress=False)
                g = _candidate(res.atoms)
                g.info.update({**f.info, "label": lab, "priority": f.info["priority"] + k,
                               "npt_density_g_cm3": round(float(res.mean_density_g_cm3), 4)})
                _log(f"sampled {lab}: {res.mean_density_g_cm3:.3f} g/cm3 at 0 GPa")
                out.append(g)
    write_frames(out, path)
    _log(f"{len(out)} round-{rnd} candidates in {path.relative_to(ROOT)}")


def cmd_plan_crystals(args) -> None:
    """Round n: the LiAlCl4 and NaAlCl4 prototype crystals as a *refitted* set relaxes
    them at 0 GPa (cell and positions), and snapshots of NPT (300 K, 0 GPa) in the
    unit cell from there. Their DFT pressures say whether the set's crystal minimum is
    where PBE-D3 puts it; as training frames they teach the next fit that region (the
    melts and glasses hardly visit it)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from viglas.md import run_md
    from viglas.potentials.delta import make_potential
    from viglas.potentials.dft_sampling import read_frames, write_frames
    from viglas.structures import load_prototype
    from viglas.units import density_g_cm3

    rnd = int(args.round)
    path = DATA / f"candidates_round{rnd}.extxyz.gz"
    existing = {a.info["label"]: a for a in read_frames(path)} if path.exists() else {}
    out, pri = [], int(args.priority_base)
    for ci, name in enumerate(("LiAlCl4", "NaAlCl4")):
        seed = 10000 * rnd + ci
        labels = [f"r{rnd}/{name}/crystal_relaxed/s{seed}"] + [
            f"r{rnd}/{name}/crystal_npt300/s{seed}/{k}" for k in range(args.snapshots)]
        if all(lab in existing for lab in labels):
            out += [existing[lab] for lab in labels]
            pri += len(labels)
            continue
        proto = load_prototype(name)
        proto.info = {}
        rho0 = density_g_cm3(proto.get_masses().sum(), proto.get_volume())
        a = proto.copy()
        a.calc = make_potential(args.params)
        FIRE(FrechetCellFilter(a), logfile=None).run(fmax=0.01, steps=3000)
        frames, x = [a], a
        for k in range(args.snapshots):  # 2 ps to equilibrate, then 1 ps apart
            x = run_md(x, make_potential(args.params), ensemble="npt",
                       thermostat="langevin", temperature_K=300.0, pressure_GPa=0.0,
                       timestep_fs=2.0, steps=1000 if k == 0 else 500, save_every=100,
                       seed=seed + k, progress=False,
                       workdir=ROOT / "runs" / f"dft-round{rnd}" / name / f"npt{k}").atoms
            frames.append(x)
        for lab, x in zip(labels, frames):
            f = _candidate(x)
            rho = density_g_cm3(f.get_masses().sum(), f.get_volume())
            f.info.update(label=lab, composition=name,
                          kind="crystal" if "relaxed" in lab else "crystal_rattle",
                          t_K=0.0 if "relaxed" in lab else 300.0,
                          density_factor=round(rho / rho0, 4), seed=seed, round=rnd,
                          sampler=f"ionic:{Path(args.params).name}@0GPa", split="train",
                          priority=pri, npt_density_g_cm3=round(rho, 4))
            pri += 1
            _log(f"sampled {lab}: {len(f)} atoms, {rho:.3f} g/cm3 "
                 f"({100 * (rho / rho0 - 1):+.1f} % against the prototype)")
            out.append(f)
    write_frames(out, path)
    _log(f"{len(out)} round-{rnd} crystal candidates in {path.relative_to(ROOT)}")


def cmd_label(args) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from viglas.potentials.dft import DFTLabelStore, label_atoms
    from viglas.potentials.dft_sampling import read_frames

    store = DFTLabelStore(LABELS, json.loads(args.params) if args.params else None)
    _log(f"labels -> {store.dir.relative_to(ROOT)} (settings {store.hash})")
    t0 = time.time()
    budget = args.hours * 3600 if args.hours else None
    while True:
        # re-read the plan after every frame: a re-prioritised or extended plan takes
        # effect at once
        frames = [a for p in sorted(DATA.glob("candidates_round*.extxyz.gz"))
                  for a in read_frames(p)]
        frames.sort(key=lambda a: int(a.info.get("priority", 0)))
        if args.max_atoms:
            frames = [a for a in frames if len(a) <= args.max_atoms]
        if args.split:
            frames = [a for a in frames if a.info.get("split") == args.split]
        if args.reverse:
            frames = frames[::-1]
        todo = [a for a in frames if not store.has(a)]
        if not todo:
            _log("every candidate is labelled")
            return
        left = None if budget is None else budget - (time.time() - t0)
        if left is not None and left <= 0:
            _log("wall-time budget used")
            return
        n = 0
        for a in todo:
            n = sum(1 for _ in label_atoms([a], store, log=_log))
            if n:
                break
        if n == 0:  # everything left is claimed by other processes
            if args.once:
                return
            time.sleep(30)


def cmd_status(args) -> None:
    from viglas.potentials.dft import read_labels
    from viglas.potentials.dft_sampling import read_frames

    plan = [a for p in sorted(DATA.glob("candidates_round*.extxyz.gz"))
            for a in read_frames(p)]
    for d in sorted(LABELS.glob("*/")):
        labs = [a for p in sorted(d.glob("*.extxyz.gz")) for a in read_labels(p)]
        cpu = sum(float(a.info.get("dft_cpu_s", 0)) for a in labs)
        big = sum(1 for a in labs if len(a) >= 60 and a.info.get("kind") in ("melt", "glass"))
        print(f"{d.name}: {len(labs)} labelled of {len(plan)} planned, {big} melt/glass "
              f"cells of >= 60 atoms, {cpu / 3600:.2f} CPU-h")
        c = Counter((a.info.get("composition"), a.info.get("kind")) for a in labs)
        for (comp, kind), n in sorted(c.items()):
            print(f"  {comp:32s} {kind:16s} {n}")


def cmd_converge(args) -> None:
    """Cutoff and k-point convergence on a crystal and a disordered cell."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    from viglas.potentials.dft import code_versions, compute
    from viglas.potentials.dft_sampling import read_frames

    out_path = DATA / (args.out or "convergence.json")
    done = json.loads(out_path.read_text()) if out_path.exists() else {"runs": []}
    frames = {a.info["label"]: a for a in read_frames(PLAN)}
    cells = [frames[k] for k in args.cells.split(",") if k]
    kcells = [frames[k] for k in args.kcells.split(",") if k]

    def key(lab, params):
        return json.dumps([lab, params], sort_keys=True)

    have = {key(r["label"], r["params"]): r for r in done["runs"]}
    jobs = []
    for a in cells:
        for ec in [float(x) for x in args.ecuts.split(",")]:
            jobs.append((a, {"ecut_eV": ec}))
    for a in kcells:
        for k in args.kpts.split(";"):
            if k:
                jobs.append((a, {"kpts": [int(x) for x in k.split(",")]}))
    for lab, params in json.loads(args.variants or "[]"):
        jobs.append((frames[lab], params))
    for a, params in jobs:
        kk = key(a.info["label"], params)
        if kk in have:
            continue
        t0 = time.time()
        res = compute(a, params)
        rec = {"label": a.info["label"], "n_atoms": len(a), "params": params,
               "kpts": res.kpts, "energy_eV": res.energy,
               "forces_eV_A": np.round(res.forces, 5).tolist(),
               "stress_eV_A3": res.stress.tolist(), "cpu_s": round(res.cpu_s, 1)}
        # merge with what other processes wrote meanwhile
        done = json.loads(out_path.read_text()) if out_path.exists() else {"runs": []}
        done["runs"].append(rec)
        done["versions"] = code_versions()
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(done, indent=0))
        tmp.replace(out_path)
        _log(f"{a.info['label']} {params}: E={res.energy:.4f} eV "
             f"{time.time() - t0:.0f} s")


def cmd_convergence_table(args) -> None:
    """Markdown tables of the convergence runs: differences to the finest setting."""
    import numpy as np

    runs = []
    for f in sorted(DATA.glob("convergence*.json")):
        runs += json.loads(f.read_text())["runs"]
    from viglas.units import EV_A3_TO_GPA as gpa

    def rows(param):
        by_label: dict = {}
        for r in runs:
            if param in r["params"]:
                by_label.setdefault(r["label"], []).append(r)
        return by_label

    def diff_row(lab: str, setting: str, r: dict, ref: dict) -> None:
        """One table row: energy, pressure, stress and force differences of r to ref."""
        df = np.array(r["forces_eV_A"]) - np.array(ref["forces_eV_A"])
        ds = (np.array(r["stress_eV_A3"]) - np.array(ref["stress_eV_A3"])) * gpa
        print(f"| {lab} | {setting} | "
              f"{1000 * (r['energy_eV'] - ref['energy_eV']) / r['n_atoms']:+.2f} | "
              f"{-ds[:3].mean():+.3f} | {np.abs(ds).max():.3f} | "
              f"{np.sqrt((df ** 2).mean()):.4f} | {np.abs(df).max():.4f} | "
              f"{r['cpu_s']:.0f} |")

    print("Cutoff (Γ-centred mesh of the label settings; differences to the highest cutoff):\n")
    print("| cell | ecut eV | ΔE meV/atom | ΔP GPa | Δσ max GPa | ΔF RMS eV/Å | ΔF max eV/Å | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    ec = rows("ecut_eV")
    for lab, rs in ec.items():
        rs = sorted(rs, key=lambda r: r["params"]["ecut_eV"])
        ref = rs[-1]
        for r in rs:
            diff_row(lab, f"{r['params']['ecut_eV']:g}", r, ref)
    # energy differences between cells at each cutoff
    labs = list(ec)
    if len(labs) >= 2:
        print("\nEnergy differences between cells (meV/atom) at each cutoff:\n")
        base = labs[0]
        for other in labs[1:]:
            for r0 in sorted(ec[base], key=lambda r: r["params"]["ecut_eV"]):
                m = [r for r in ec[other] if r["params"]["ecut_eV"] == r0["params"]["ecut_eV"]]
                if m:
                    de = 1000 * (m[0]["energy_eV"] / m[0]["n_atoms"] - r0["energy_eV"] /
                                 r0["n_atoms"])
                    print(f"- {other} − {base} at {r0['params']['ecut_eV']:g} eV: {de:+.2f}")
    kp = rows("kpts")
    if kp:
        print("\nk-points (450 eV; differences to the densest mesh):\n")
        print("| cell | mesh | ΔE meV/atom | ΔP GPa | Δσ max GPa | ΔF RMS eV/Å | ΔF max eV/Å | CPU s |")
        print("|---|---|---|---|---|---|---|---|")
        for lab, rs in kp.items():
            rs = sorted(rs, key=lambda r: int(np.prod(r["params"]["kpts"])))
            ref = rs[-1]
            for r in rs:
                diff_row(lab, "×".join(map(str, r["params"]["kpts"])), r, ref)


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: give 1 or more snapshots per glass")
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("plan")
    a.add_argument("--seeds", type=int, default=1, help="MD seeds per recipe")
    a.set_defaults(fn=cmd_plan)
    a = sub.add_parser("plan-next", help="sample round n with a refitted parameter set")
    a.add_argument("--round", type=int, required=True)
    a.add_argument("--params", required=True,
                   help="refitted parameter file (ionic YAML or ionic+delta JSON)")
    a.add_argument("--n-atoms", type=int, default=64,
                   help="cell size (64: the loop-closing glasses; smaller cells are "
                        "training frames only)")
    a.add_argument("--temperatures", default="300,600", help="K, comma-separated")
    a.add_argument("--compositions", default=None, help="comma-separated (default: the "
                   "ten fit compositions)")
    a.add_argument("--snapshots", type=_at_least_one, default=1, help="snapshots of each 300 K "
                   "glass, 1 ps apart (the loop averages the pressure over them)")
    a.add_argument("--priority-base", type=int, default=1000, help="labelling priority of "
                   "the first new frame (lower = earlier; round 0 uses 0-87)")
    a.set_defaults(fn=cmd_plan_next)
    a = sub.add_parser("plan-crystals", help="the two prototype crystals as a refitted set "
                       "relaxes them (and NPT 300 K snapshots from there)")
    a.add_argument("--round", type=int, required=True)
    a.add_argument("--params", required=True,
                   help="refitted parameter file (ionic YAML or ionic+delta JSON)")
    a.add_argument("--snapshots", type=int, default=1,
                   help="NPT 300 K snapshots per crystal (unit cell, 1 ps apart)")
    a.add_argument("--priority-base", type=int, default=-400)
    a.set_defaults(fn=cmd_plan_crystals)
    a = sub.add_parser("plan-small", help="small (~21-atom) training cells of every "
                       "composition (cheap labels)")
    a.add_argument("--round", type=int, default=2)
    a.add_argument("--n-atoms", type=int, default=21)
    a.add_argument("--compositions", default=None)
    a.add_argument("--priority-base", type=int, default=10000)
    a.set_defaults(fn=cmd_plan_small)
    a = sub.add_parser("label")
    a.add_argument("--hours", type=float, default=None, help="stop starting new frames "
                   "after this much wall time")
    a.add_argument("--params", default=None, help="JSON dict of gpaw settings "
                   "(default: the registry defaults)")
    a.add_argument("--max-atoms", type=int, default=None)
    a.add_argument("--reverse", action="store_true", help="take the queue from the end")
    a.add_argument("--split", default=None, choices=["train", "valid"],
                   help="only frames of this split (e.g. a second process on the held-out "
                        "frames)")
    a.add_argument("--once", action="store_true", help="return when the rest is claimed")
    a.set_defaults(fn=cmd_label)
    a = sub.add_parser("status")
    a.set_defaults(fn=cmd_status)
    a = sub.add_parser("converge")
    a.add_argument("--cells", default="r0/LiAlCl4/crystal/v1.00,r0/LiAlCl4/crystal_strain/"
                   "v1.03,r0/LiAlCl4/crystal_rattle/s0", help="labels for the cutoff scan")
    a.add_argument("--ecuts", default="350,450,600")
    a.add_argument("--kcells", default="r0/LiAlCl4/crystal_rattle/s0",
                   help="labels for the k-point scan")
    a.add_argument("--kpts", default="1,1,1;2,2,2;3,3,2")
    a.add_argument("--out", default=None, help="file name under the DFT data folder "
                   "(default convergence.json)")
    a.add_argument("--variants", default=None, help='JSON list of [label, params], e.g. '
                   '\'[["r0/NaAlCl4/crystal/v1.00", {"d3": "none"}]]\'')
    a.set_defaults(fn=cmd_converge)
    a = sub.add_parser("convergence-table", help="print the convergence tables (Markdown)")
    a.set_defaults(fn=cmd_convergence_table)
    args = p.parse_args(argv)
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
