#!/usr/bin/env python
"""Probe (issue 12, item 3): does a *nonlinear* ACE on top of the shipped fit lift In?

Sessions 9-12 extended the linear correction of ``dft-delta`` in every direction named
(docs/dft.md) and LiInCl2.5O0.75 stayed at force R2 0.76-0.79 on frames it was not
trained on. This probe fits, with pacemaker (python-ace + tensorpotential), a
Finnis-Sinclair ACE (body order up to 4, trainable radial functions, two densities
with a square-root embedding: nonlinear in its coefficients) to the residual

    PBE-D3 label - (shipped dft-delta)        (--residual model, the default)
    PBE-D3 label - (dft-delta's ionic baseline) (--residual baseline)

on exactly the frames the shipped set was fitted on (the training labels its file
records), and scores the stack "model + ACE" on every other labelled frame (the
plan's held-out frames and the shipped set's own glasses it was not trained on), per
composition, with the project's R2 (``dft_fit.score``). Nothing here is shipped.

    python scripts/ace_residual_probe.py prepare DIR [--compositions LiInCl2.5O0.75]
        [--residual model|baseline] [--functions-per-element 150] [--rcut 5.0]
        [--block-spec default|small] [--kappa 0.95] [--maxiter 300]
    python scripts/ace_residual_probe.py fit DIR        # pacemaker; minutes to an hour
    python scripts/ace_residual_probe.py fit DIR --grace  # GRACE-FS, stress in the loss
    python scripts/ace_residual_probe.py score DIR [--json REPORT] [--grace-fs MODEL.yaml]

``prepare`` writes DIR/train.pkl.gz, DIR/test.pkl.gz and a pacemaker DIR/input.yaml
whose species blocks are those the compositions can form (a centre and up to two
other elements of one composition), capped at ``--functions-per-element`` functions
per element; ``score`` also times the stack on a 252-atom cell (one core).

Needs (not in any extra: a probe): ``pip install python-ace`` and, for ``fit``,
``pip install --no-deps tensorpotential`` with ``pip install tensorflow-cpu==2.20.0
"tf_keras==2.20.*" matscipy sympy questionary`` (tensorpotential's own requirement pulls
tensorflow[and-cuda], gigabytes). ``fit`` mends one numpy-2 incompatibility of
tensorpotential 0.6.2.1 in process (``float()`` of a one-element array).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import combinations
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

#: F14, the linear ionic+delta fit these probes correct (byte-identical to what
#: ``dft-delta`` was before a correction was stacked on it): named by file, so that the
#: residual stays the same whatever ``dft-delta`` becomes
F14 = (Path(__file__).resolve().parents[1] / "viglas" / "potentials" / "data" / "dft"
       / "samplers" / "dft_delta_f14.json")

#: per block arity (a centre alone, with one other element, with two): radial functions
#: and lmax per body order (pacemaker's nradmax_by_orders / lmax_by_orders); the
#: ``--functions-per-element`` cap then keeps the lowest-order functions first
BLOCK_SPECS = {
    "default": {1: "{nradmax_by_orders: [15, 6, 4, 3], lmax_by_orders: [0, 3, 3, 2]}",
                2: "{nradmax_by_orders: [15, 6, 3, 2], lmax_by_orders: [0, 3, 2, 1]}",
                3: "{nradmax_by_orders: [15, 3, 3, 2], lmax_by_orders: [0, 2, 2, 1]}"},
    "small": {1: "{nradmax_by_orders: [8, 4, 3], lmax_by_orders: [0, 3, 2]}",
              2: "{nradmax_by_orders: [8, 3, 2], lmax_by_orders: [0, 2, 1]}",
              3: "{nradmax_by_orders: [8, 2, 1], lmax_by_orders: [0, 2, 1]}"},
}

INPUT = """seed: 42
metadata: {{origin: "viglas scripts/ace_residual_probe.py"}}
potential:
  deltaSplineBins: 0.001
  elements: [{elements}]
  embeddings:
    ALL: {{npot: 'FinnisSinclairShiftedScaled', fs_parameters: [1, 1, 1, 0.5], ndensity: 2}}
  bonds:
    ALL: {{radbase: SBessel, radparameters: [5.25], rcut: {rcut}, dcut: 0.01, NameOfCutoffFunction: cos}}
  functions:
    number_of_functions_per_element: {nfunc}
{blocks}
data:
  filename: {dir}/train.pkl.gz
  test_filename: {dir}/test.pkl.gz
  reference_energy: 0
fit:
  loss: {{kappa: {kappa}, L1_coeffs: 1e-8, L2_coeffs: 1e-8}}
  optimizer: BFGS
  maxiter: {maxiter}
backend:
  evaluator: tensorpot
  batch_size: 50
  display_step: 25
"""


#: the GRACE-FS size of session 13's two runs (gracemaker's FS preset, potential.kwargs)
GRACE_FS_SIZE = ("max_order: 3, lmax: [3, 3, 2], n_rad_max: [12, 8, 4], embedding_size: 16, "
                 "fs_parameters: [[1.0, 1.0], [1.0, 0.5]]")

GRACE_INPUT = """seed: 1
cutoff: {rcut}
data:
  filename: {dir}/grace_train.pkl.gz
  reference_energy: 0
potential:
  elements: [{elements}]
  preset: FS
  kwargs: {{{kwargs}}}
  scale: False
  shift: False
fit:
  loss: {{
    energy: {{ weight: {wE}, type: square }},
    forces: {{ weight: 1, type: square }},
    stress: {{ weight: {wS}, type: square }},
  }}
  target_total_updates: {updates}
  optimizer: Adam
  opt_params: {{learning_rate: 0.01, use_ema: True, ema_momentum: 0.99, weight_decay: null,
               clipnorm: 1.0}}
  scheduler: cosine_decay
  scheduler_params: {{"minimum_learning_rate": 0.0008}}
  batch_size: 8
  test_batch_size: 32
  jit_compile: True
  eval_init_stats: True
  checkpoint_freq: 10
  progressbar: False
  train_shuffle: False
"""


def _frames(compositions: list[str] | None):
    from viglas.potentials.delta import load_delta_file
    from viglas.potentials.dft_fit import load_dataset

    shipped = load_delta_file(F14)
    frames = [a for a in load_dataset()
              if not compositions or a.info["label"].split("/")[1] in compositions]
    return frames, set(shipped["delta"]["meta"]["fit"]["train_labels"]), shipped


def _round_prefixes(rounds: str | None) -> tuple[str, ...]:
    """Label prefixes of the labelling rounds "N,M" (``--train-rounds``)."""
    return tuple(f"r{k}/" for k in (rounds or "").split(",") if k)


def _scored(frames, seen, meta: dict) -> list:
    """The frames a probe is scored on: neither F14's training frames nor the rounds
    ``prepare --train-rounds`` added to the probe's training."""
    extra = _round_prefixes(meta.get("train_rounds"))
    return [a for a in frames if a.info["label"] not in seen
            and not a.info["label"].startswith(extra)]


def _base_predictor(residual: str, shipped: dict):
    """The shipped set (``model``) or the ionic baseline its file carries (``baseline``)."""
    from viglas.potentials.dft_fit import calculator_predictor, ionic_predictor

    if residual == "model":
        return calculator_predictor({"name": "ionic", "params": {"parameters": str(F14)}})
    return ionic_predictor(shipped["baseline"])


def prepare(args) -> int:
    import pandas as pd
    from ase.calculators.singlepoint import SinglePointCalculator

    from viglas.potentials.dft_fit import reference_arrays
    from viglas.units import EV_A3_TO_GPA

    comps = args.compositions.split(",") if args.compositions else None
    frames, seen, shipped = _frames(comps)
    if not frames:
        sys.exit(f"--compositions: no labelled frame has any of {args.compositions!r}")
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    ref = reference_arrays(frames)
    base = _base_predictor(args.residual, shipped)(frames)
    extra = _round_prefixes(args.train_rounds)
    rows = []
    for a, r, b in zip(frames, ref, base):
        at = a.copy()
        at.calc = None
        de = float(r["energy"]) - float(b["energy"])
        df_ = np.asarray(r["forces"]) - b["forces"]
        ds = np.asarray(r["stress"]) - np.asarray(b["stress"])
        g = at.copy()  # gracemaker reads its targets from a calculator
        g.calc = SinglePointCalculator(g, energy=de, forces=df_, stress=ds)
        rows.append({"ase_atoms": at, "energy": de, "energy_corrected": de,
                     "forces": df_.tolist(), "grace_atoms": g, "stress": ds,
                     "label": a.info["label"], "composition": a.info["label"].split("/")[1],
                     # mean square PBE-D3 force component: the scale of force R2
                     "ref_force_ms": float(np.mean(np.asarray(r["forces"]) ** 2)),
                     "train": a.info["label"] in seen or a.info["label"].startswith(extra)})
    df = pd.DataFrame(rows)
    for name, part in (("train", df[df.train]), ("test", df[~df.train])):
        part.drop(columns=["train", "grace_atoms", "stress"]).to_pickle(out / f"{name}.pkl.gz")
        g = part[["grace_atoms", "energy", "forces", "stress", "label", "composition",
                  "ref_force_ms"]].rename(
            columns={"grace_atoms": "ase_atoms"})
        g.to_pickle(out / f"grace_{name}.pkl.gz")
    sets = {tuple(sorted(set(a.get_chemical_symbols()))) for a in frames}
    elements = sorted({e for s in sets for e in s})
    blocks = set()
    for s in sets:
        for c in s:
            rest = sorted(e for e in s if e != c)
            blocks.add((c,))
            blocks.update((c, x) for x in rest)
            blocks.update((c, x, y) for x, y in combinations(rest, 2))
    spec = BLOCK_SPECS[args.block_spec]
    lines = "\n".join(f'    "{" ".join(b)}": {spec[len(b)]}' for b in sorted(blocks))
    (out / "input.yaml").write_text(INPUT.format(
        elements=", ".join(elements), rcut=args.rcut, nfunc=args.functions_per_element,
        blocks=lines, dir=out.resolve(), kappa=args.kappa, maxiter=args.maxiter))
    # F14's sigmas, as GRACE loss weights relative to the forces'
    w = shipped["delta"]["meta"]["fit"]["weights"]
    wE = (w["sigma_F_eV_A"] / w["sigma_E_eV_atom"]) ** 2 * args.grace_energy_scale
    wS = (w["sigma_F_eV_A"] / (w["sigma_S_GPa"] / EV_A3_TO_GPA)) ** 2 * args.grace_stress_scale
    (out / "grace_input.yaml").write_text(GRACE_INPUT.format(
        dir=out.resolve(), elements=", ".join(elements), rcut=args.rcut, wE=round(wE, 4),
        wS=round(wS, 4), updates=args.grace_updates, kwargs=args.grace_kwargs))
    (out / "probe.json").write_text(json.dumps({
        "residual": args.residual, "compositions": comps, "n_train": int(df.train.sum()),
        "n_test": int((~df.train).sum()), "blocks": len(blocks), "rcut_A": args.rcut,
        "functions_per_element": args.functions_per_element, "block_spec": args.block_spec,
        "kappa": args.kappa,
        "maxiter": args.maxiter, "grace_loss_weights": {"energy": wE, "forces": 1.0,
                                                           "stress": wS},
        "grace_updates": args.grace_updates, "grace_kwargs": args.grace_kwargs,
        "train_rounds": args.train_rounds}, indent=1) + "\n")
    print(f"{out}: {int(df.train.sum())} training, {int((~df.train).sum())} scored frames, "
          f"{len(blocks)} species blocks; next: python {sys.argv[0]} fit {out}")
    return 0


def fit(args) -> int:
    import builtins

    if args.grace:
        return fit_grace(args)
    import tensorpotential.compat.pace.fitmetrics as fm

    # tensorpotential 0.6.2.1 calls float() on one-element arrays (an error in numpy>=2.4)
    fm.float = lambda x: builtins.float(np.asarray(x).sum())
    from pyace.cli.pacemaker import main as pacemaker

    os.chdir(args.dir)
    sys.argv = ["pacemaker", "input.yaml"]
    t0 = time.time()
    pacemaker()
    meta = json.loads(Path("probe.json").read_text())
    meta["fit_seconds"] = round(time.time() - t0)
    Path("probe.json").write_text(json.dumps(meta, indent=1) + "\n")
    return 0


def fit_grace(args) -> int:
    """gracemaker on DIR/grace_input.yaml, then the GRACE-FS model exported for pyace's
    C++ evaluator as DIR/seed/1/saved_model.yaml (score it with ``--grace-fs``)."""
    import pandas as pd

    split = np.array_split

    def array_split(a, n, *rest):  # tensorpotential 0.6.2.1 splits DataFrames with
        if isinstance(a, pd.DataFrame):  # numpy, which returns bare arrays with pandas 3
            return [a.iloc[i] for i in split(np.arange(len(a)), n) if len(i)]
        return split(a, n, *rest)

    np.array_split = array_split
    from tensorpotential.cli.gracemaker import main as gracemaker

    os.chdir(args.dir)
    t0 = time.time()
    if not args.export_only:
        gracemaker(["grace_input.yaml"])
    # export the last checkpoint (-rl). Session 13 exported with -r, gracemaker's best
    # checkpoint on its test set, which was the scored frames: selection on them. The
    # input no longer names a test set, and the export takes the last state.
    try:  # the export run ends with sys.exit()
        gracemaker(["grace_input.yaml", "-rl", "-s", "-sf"])
    except SystemExit as e:
        if e.code not in (None, 0):
            raise
    meta = json.loads(Path("probe.json").read_text())
    meta["grace_export"] = "last checkpoint (gracemaker -rl)"
    if not args.export_only:
        meta["grace_fit_seconds"] = round(time.time() - t0)
    Path("probe.json").write_text(json.dumps(meta, indent=1) + "\n")
    return 0


def score(args) -> int:
    from pyace import PyACECalculator

    from viglas.potentials.dft_fit import ase_predictor, stacked_predictor
    from viglas.potentials.dft_fit import score as r2_score

    d = Path(args.dir)
    meta = json.loads((d / "probe.json").read_text())
    frames, seen, shipped = _frames(meta["compositions"])
    test = _scored(frames, seen, meta)
    base = _base_predictor(meta["residual"], shipped)
    if args.grace_fs:  # a GRACE-FS model exported by `gracemaker -r -s -sf`
        from pyace.asecalc import PyGRACEFSCalculator

        ace = PyGRACEFSCalculator(args.grace_fs)
    else:
        ace = PyACECalculator(str(d / "output_potential.yaml"))

    stack = stacked_predictor(base, ase_predictor(ace))

    rows = {}
    for name, pred in (("without", base), ("with", stack)):
        s = r2_score(test, pred)
        keep = ("force_r2", "force_rmse_eV_A", "force_rms_ref_eV_A", "pressure_bias_GPa",
                "pressure_rmse_GPa", "energy_diff_rmse_meV_atom")
        rows[name] = {"all": {k: round(s["all"][k], 4) for k in keep},
                      "by_composition": {c: {k: round(m[k], 4) for k in keep}
                                         for c, m in s["by_composition"].items()},
                      "force_r2_by_composition": {c: round(m["force_r2"], 3) for c, m in
                                                  s["by_composition"].items()}}
        print(f"{name} the ACE: all {s['all']['force_r2']:.3f}  " + "  ".join(
            f"{c} {m['force_r2']:.3f}" for c, m in s["by_composition"].items()), flush=True)
    # speed: one core, a 2x2x1 repeat of a scored glass (or the largest scored frame)
    cell = max(test, key=len)
    cell = cell.repeat((2, 2, 1)) if len(cell) < 100 else cell.copy()
    cell.rattle(0.01, seed=1)
    timing = {}
    for name, calc in (("ace", ace), ("model", None)):
        if calc is None:
            from viglas.potentials.reference import make_calculator

            spec = ({"name": "ionic", "params": {"parameters": str(F14)}}
                    if meta["residual"] == "model" else {"name": "ionic"})
            calc = make_calculator(spec, num_threads=1)
        c = cell.copy()
        c.calc = calc
        c.get_forces()
        t = time.process_time()
        for _ in range(args.steps):
            c.positions += 1e-3
            c.get_forces()
        ms = (time.process_time() - t) / args.steps * 1e3
        timing[name] = {"ms_per_step": round(ms, 2), "ms_per_210_atoms": round(ms / len(c) * 210, 2)}
    print(f"one core, {len(cell)} atoms: ACE {timing['ace']['ms_per_step']} ms/step, "
          f"{'dft-delta' if meta['residual'] == 'model' else 'ionic baseline'} "
          f"{timing['model']['ms_per_step']} ms/step")
    report = {"command": "python scripts/ace_residual_probe.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **meta,
              "grace_fs_model": args.grace_fs,
              "scored_labels": [a.info["label"] for a in test], "scores": rows,
              "timing_cell_atoms": len(cell), "timing_one_core": timing}
    return _write_report(report, args.json)


def _write_report(report: dict, path: str | None) -> int:
    """Write a probe's report as JSON when ``--json`` names a path."""
    if path:
        Path(path).write_text(json.dumps(report, indent=1) + "\n")
        print(f"-> {path}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("dir")
    p.add_argument("--compositions", default=None,
                   help="comma-separated compositions (default: every labelled one)")
    p.add_argument("--residual", choices=["model", "baseline"], default="model")
    p.add_argument("--functions-per-element", type=int, default=150)
    p.add_argument("--rcut", type=float, default=5.0)
    p.add_argument("--train-rounds", default=None, metavar="N,M",
                   help="also train on the frames of these labelling rounds (e.g. a stack's "
                        "own glasses: the loop); the rest of the scored set stays as it is")
    p.add_argument("--block-spec", choices=sorted(BLOCK_SPECS), default="default")
    p.add_argument("--kappa", type=float, default=0.95, help="force share of the loss")
    p.add_argument("--maxiter", type=int, default=300)
    p.add_argument("--grace-updates", type=int, default=6000,
                   help="gracemaker: Adam updates (batches of 8 frames)")
    p.add_argument("--grace-kwargs", default=GRACE_FS_SIZE,
                   help="the GRACE-FS preset's size (gracemaker potential.kwargs, YAML)")
    p.add_argument("--grace-energy-scale", type=float, default=0.01,
                   help="gracemaker: energy weight as a fraction of F14's sigma_E weight")
    p.add_argument("--grace-stress-scale", type=float, default=0.1,
                   help="gracemaker: stress weight as a fraction of F14's sigma_S weight")
    p = sub.add_parser("fit")
    p.add_argument("dir")
    p.add_argument("--grace", action="store_true",
                   help="fit GRACE-FS with gracemaker (stress in the loss) instead of pacemaker")
    p.add_argument("--export-only", action="store_true",
                   help="with --grace: only export DIR's last gracemaker checkpoint")
    p = sub.add_parser("score")
    p.add_argument("dir")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--grace-fs", default=None, metavar="YAML",
                   help="score this GRACE-FS model (gracemaker, stress in its loss) instead "
                   "of DIR's pacemaker ACE; DIR still gives the probe's settings")
    p.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    return {"prepare": prepare, "fit": fit, "score": score}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
