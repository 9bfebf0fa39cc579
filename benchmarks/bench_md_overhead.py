"""Overhead of the MD loop + observers over the bare force calls (ionic potential).

A 504-atom LACO-like melt (see bench_forces.melt), NVT Langevin at 1000 K, dt 1 fs.
The calculator's ``calculate`` is wrapped by a timer, so

    overhead = wall time of the run / time spent inside the force calls - 1

counts everything that is not force evaluation: ASE integrator, guards, thermo log,
trajectory frames, checkpoints, final merge into H5MD. Two runs are timed:

* ``run_md``: viglas.md.run_md with a frame and a log row every
  ``--save-every`` steps (default 10), default checkpointing (>= 500 steps per segment),
  progress bar off, thermostat ``--thermostat`` (default langevin).
* ``ase``: the bare ASE Langevin loop (``dyn.run(steps)``), no observers, for reference.
* ``fused``: the bare loop of viglas' own NVT integrator (``LangevinBAOAB_NVT.step``),
  no observers: what run_md uses for ``thermostat="langevin"`` in NVT.

Usage::

    python benchmarks/bench_md_overhead.py [--atoms 504] [--steps 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _timed_calc():
    from viglas.potentials import IonicPotential

    calc = IonicPotential("trial")
    acc = {"t": 0.0, "n": 0}
    orig = calc.calculate

    def timed(*args, **kw):
        t0 = time.perf_counter()
        orig(*args, **kw)
        acc["t"] += time.perf_counter() - t0
        acc["n"] += 1

    calc.calculate = timed
    return calc, acc


def run_viglas(atoms, steps: int, save_every: int, progress: bool = False,
               thermostat: str = "langevin") -> dict:
    from viglas.md import run_md

    calc, acc = _timed_calc()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_md(atoms, calc, ensemble="nvt", thermostat=thermostat, temperature_K=1000,
                     steps=steps, save_every=save_every, workdir=d, seed=1, progress=progress)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "force_s": acc["t"], "force_calls": acc["n"],
            "overhead": wall / acc["t"] - 1.0, "frames": res.n_frames,
            "segments": int(round(steps / max(1, res.steps_done / 20)))}


def run_ase(atoms, steps: int) -> dict:
    import numpy as np
    from ase import units
    from ase.md.langevin import Langevin

    a = atoms.copy()
    calc, acc = _timed_calc()
    a.calc = calc
    dyn = Langevin(a, 1.0 * units.fs, temperature_K=1000, friction=0.01 / units.fs,
                   fixcm=False, rng=np.random.default_rng(1))
    t0 = time.perf_counter()
    dyn.run(steps)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "force_s": acc["t"], "force_calls": acc["n"],
            "overhead": wall / acc["t"] - 1.0}


def run_fused(atoms, steps: int) -> dict:
    import numpy as np
    from ase import units

    from viglas.md import LangevinBAOAB_NVT

    a = atoms.copy()
    calc, acc = _timed_calc()
    a.calc = calc
    dyn = LangevinBAOAB_NVT(a, 1.0 * units.fs, temperature_K=1000, friction=0.01 / units.fs,
                            rng=np.random.default_rng(1))
    t0 = time.perf_counter()
    for _ in range(steps):
        dyn.step()
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "force_s": acc["t"], "force_calls": acc["n"],
            "overhead": wall / acc["t"] - 1.0}


def main(argv=None) -> dict:
    from bench_forces import melt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=504)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--save-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--thermostat", default="langevin", help="langevin, bussi, nose-hoover")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    atoms = melt(args.atoms)
    rows = {"run_md": [], "ase": [], "fused": []}
    load0 = os.getloadavg()
    for _ in range(args.repeats):
        rows["run_md"].append(run_viglas(atoms, args.steps, args.save_every,
                                         thermostat=args.thermostat))
        rows["ase"].append(run_ase(atoms, args.steps))
        rows["fused"].append(run_fused(atoms, args.steps))
    out = {"n_atoms": len(atoms), "steps": args.steps, "save_every": args.save_every,
           "thermostat": args.thermostat,
           "load_avg": [load0, os.getloadavg()], "runs": rows,
           "run_md_overhead_median": statistics.median(r["overhead"] for r in rows["run_md"]),
           "ase_overhead_median": statistics.median(r["overhead"] for r in rows["ase"]),
           "fused_overhead_median": statistics.median(r["overhead"] for r in rows["fused"]),
           "ms_per_force_call_median": statistics.median(
               1e3 * r["force_s"] / r["force_calls"] for r in rows["run_md"])}
    print(f"{len(atoms)} atoms, {args.steps} steps, NVT {args.thermostat}, frame+log every "
          f"{args.save_every}: "
          f"run_md overhead {100 * out['run_md_overhead_median']:.1f} % | bare ASE Langevin "
          f"loop {100 * out['ase_overhead_median']:.1f} % | bare fused BAOAB loop "
          f"{100 * out['fused_overhead_median']:.1f} % | force call "
          f"{out['ms_per_force_call_median']:.2f} ms")
    for r in rows["run_md"]:
        print(f"  run_md: wall {r['wall_s']:.1f} s, in forces {r['force_s']:.1f} s, "
              f"{r['force_calls']} calls, {r['frames']} frames")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
