#!/usr/bin/env python
"""Build, extend and inspect the shipped DFT (GPAW PBE-D3(BJ)) dataset.

    python scripts/dft_labels.py plan                 # sample candidates (ionic MD, ~1 min)
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


def cmd_plan(args) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from viglas.potentials.dft_sampling import plan_round0, read_frames, write_frames

    existing = {}
    if PLAN.exists():
        existing = {a.info["label"]: a for a in read_frames(PLAN)}
    frames = plan_round0(seeds_per_recipe=args.seeds, existing=existing, log=_log)
    write_frames(frames, PLAN)
    _log(f"{len(frames)} candidates in {PLAN.relative_to(ROOT)}")


def cmd_label(args) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from viglas.potentials.dft import DFTLabelStore, label_atoms
    from viglas.potentials.dft_sampling import read_frames

    store = DFTLabelStore(LABELS, json.loads(args.params) if args.params else None)
    _log(f"labels -> {store.dir.relative_to(ROOT)} (settings {store.hash})")
    t0 = time.time()
    budget = args.hours * 3600 if args.hours else None
    while True:
        frames = read_frames(PLAN)
        if args.max_atoms:
            frames = [a for a in frames if len(a) <= args.max_atoms]
        if args.reverse:
            frames = frames[::-1]
        todo = [a for a in frames if not store.has(a)]
        if not todo:
            _log("every candidate is labelled")
            return
        left = None if budget is None else budget - (time.time() - t0)
        if left is not None and left <= 0:
            return
        n = sum(1 for _ in label_atoms(todo, store, log=_log, stop_after_s=left))
        if n == 0:  # everything left is claimed by other processes
            if args.once:
                return
            time.sleep(30)


def cmd_status(args) -> None:
    from viglas.potentials.dft import read_labels
    from viglas.potentials.dft_sampling import read_frames

    plan = read_frames(PLAN) if PLAN.exists() else []
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

    out_path = DATA / "convergence.json"
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
        done["runs"].append(rec)
        done["versions"] = code_versions()
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(done, indent=0))
        tmp.replace(out_path)
        _log(f"{a.info['label']} {params}: E={res.energy:.4f} eV "
             f"{time.time() - t0:.0f} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("plan")
    a.add_argument("--seeds", type=int, default=1, help="MD seeds per recipe")
    a.set_defaults(fn=cmd_plan)
    a = sub.add_parser("label")
    a.add_argument("--hours", type=float, default=None, help="stop starting new frames "
                   "after this much wall time")
    a.add_argument("--params", default=None, help="JSON dict of gpaw settings "
                   "(default: the registry defaults)")
    a.add_argument("--max-atoms", type=int, default=None)
    a.add_argument("--reverse", action="store_true", help="take the queue from the end")
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
    a.set_defaults(fn=cmd_converge)
    args = p.parse_args(argv)
    args.fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
