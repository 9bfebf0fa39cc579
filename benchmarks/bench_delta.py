"""MD throughput of the ionic+delta potential against the plain ionic set it corrects.

Issue 12 allows a many-body/linear-ML form only if it keeps >= 20 ns/day for a 200-atom
cell on one core. Both potentials run the production MD loop (``viglas.md.run_md``:
Langevin NVT at 600 K, 2 fs, H5MD frames every 100 steps) on the same ~200-atom LACO
melt, in this one process, repeats interleaved; the CPU time per step (process time,
less sensitive to a shared machine than wall time) and the wall time are reported.

    python benchmarks/bench_delta.py [--model dft-delta] [--atoms 200] [--steps 400]
                                     [--repeats 3] [--json benchmarks/bench_delta.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def _ns_day(ms: float, dt_fs: float = 2.0) -> float:
    return dt_fs * 1e-6 * 86400.0 / (ms / 1000.0)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="dft-delta", help="ionic+delta file or shipped name")
    ap.add_argument("--atoms", type=int, default=200)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    import numpy as np

    from viglas.md import run_md
    from viglas.potentials import IonicPotential
    from viglas.potentials.delta import make_potential
    from viglas.structures import build_glass

    atoms = build_glass("LiAlCl2.5O0.75", args.atoms, seed=0)
    atoms.info = {}
    MaxwellBoltzmannDistribution(atoms, temperature_K=600.0, rng=np.random.default_rng(0))
    makers = {"ionic": lambda: IonicPotential(None), "ionic+delta": lambda: make_potential(args.model)}
    cpu: dict[str, list[float]] = {k: [] for k in makers}
    wall: dict[str, list[float]] = {k: [] for k in makers}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats + 1):  # the first round compiles (numba), not timed
            for name, make in makers.items():
                calc = make()
                t0, c0 = time.perf_counter(), time.process_time()
                run_md(atoms.copy(), calc, ensemble="nvt", thermostat="langevin",
                       temperature_K=600.0, timestep_fs=2.0, steps=args.steps,
                       save_every=100, workdir=os.path.join(tmp, f"{name}{rep}"), seed=rep,
                       progress=False)
                if rep:
                    cpu[name].append((time.process_time() - c0) / args.steps * 1e3)
                    wall[name].append((time.perf_counter() - t0) / args.steps * 1e3)
    out = {"atoms": len(atoms), "steps": args.steps, "repeats": args.repeats,
           "model": args.model, "machine": platform.processor() or platform.machine(),
           "date": time.strftime("%Y-%m-%d"), "results": {}}
    for name in makers:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        out["results"][name] = {"cpu_ms_per_step": round(c, 3), "wall_ms_per_step": round(w, 3),
                                "ns_per_day_cpu": round(_ns_day(c), 1)}
    out["cost_ratio_delta_over_ionic"] = round(
        out["results"]["ionic+delta"]["cpu_ms_per_step"] / out["results"]["ionic"]["cpu_ms_per_step"], 2)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
