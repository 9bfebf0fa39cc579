"""Configurations to label with DFT: crystals, strained crystals, melts and quenched glasses.

A *plan* is a list of :class:`ase.Atoms` candidates with ``info``:

- ``label``: unique name, e.g. ``r0/LiAlCl2.5O0.75/melt900/s3``
- ``composition`` (formula), ``kind`` (``crystal``, ``crystal_strain``,
  ``crystal_rattle``, ``melt``, ``glass``), ``t_K`` (MD temperature, 0 for crystals),
  ``density_factor`` (cell density / start-model density), ``seed``, ``round``
  (0: sampled with the shipped ionic set; n: with the n-th refitted set),
  ``sampler`` (potential that made the configuration), ``split`` (``train`` or
  ``valid``: whole MD runs are held out, never single frames of a training run),
  ``priority`` (labelling order: lower first; round-robin over compositions so an
  interrupted labelling still covers every composition).

Disordered cells: :func:`viglas.structures.build_glass` start models of ~64 atoms
(edges ≥ 11 Å, so the default k-point density gives Γ only), heated at fixed volume
with Langevin NVT (2 fs) to 1200 K for ``melt_ps``, then held at the sampling
temperature (``melt``) or cooled at ``cool_rate_K_ps`` to 300 K (``glass``). Cells are
sampled at the start-model density and 10 % denser (PBE-D3 wants denser glasses
than the shipped ionic set gives), so the fit sees the equation of state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

#: Compositions of the fit (as in :data:`viglas.potentials.reference.DEFAULT_COMPOSITIONS`).
from viglas.potentials.reference import DEFAULT_COMPOSITIONS

#: The six compositions the issue requires a per-composition score for (labelled first).
REQUIRED_COMPOSITIONS: tuple[str, ...] = ("LiAlCl4", "LiAlCl2.5O0.75", "NaAlCl2.5O0.75",
                                          "LiGaCl2.5O0.75", "LiInCl2.5O0.75",
                                          "LiBCl2.5O0.75")

#: Disordered-cell recipes of round 0: (kind, T in K, density factor). Their index is
#: part of each frame's seed and label; the labelling order is :data:`ROUND0_ORDER`.
ROUND0_RECIPES: tuple[tuple[str, float, float], ...] = (
    ("melt", 900.0, 1.0),
    ("glass", 300.0, 1.1),
    ("melt", 600.0, 1.1),
    ("melt", 1200.0, 1.0),
    ("glass", 300.0, 1.0),
    ("melt", 600.0, 1.0),
    ("melt", 900.0, 1.1),
    ("melt", 1200.0, 1.1),
)

#: Labelling order of the recipes: the held-out glass (index 4) comes second, so even a
#: short labelling run has validation frames of every composition.
ROUND0_ORDER: tuple[int, ...] = (0, 4, 1, 2, 3, 5, 6, 7)

#: Recipe index whose runs are held out of training (``split=valid``).
ROUND0_VALID: int = 4


def crystal_frames(seed: int = 0, volume_scales: Sequence[float] = (0.97, 1.0, 1.03),
                   rattle_A: float = 0.05) -> list[Atoms]:
    """LiAlCl4 (P2₁/c) and NaAlCl4 (P2₁2₁2₁) cells at ``volume_scales`` × the
    experimental volume (fractional coordinates fixed) and one rattled copy each
    (Gaussian, ``rattle_A`` Å)."""
    from viglas.structures import load_prototype

    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    for name in ("LiAlCl4", "NaAlCl4"):
        proto = load_prototype(name)
        proto.info = {}
        for vs in volume_scales:
            a = proto.copy()
            a.set_cell(np.asarray(proto.cell) * vs ** (1.0 / 3.0), scale_atoms=True)
            kind = "crystal" if abs(vs - 1.0) < 1e-9 else "crystal_strain"
            a.info.update(label=f"r0/{name}/{kind}/v{vs:.2f}", composition=name,
                          kind=kind, t_K=0.0, density_factor=round(1.0 / vs, 4),
                          seed=seed, round=0, sampler="experiment", split="train")
            out.append(a)
        r = proto.copy()
        r.positions += rng.normal(0.0, rattle_A, size=r.positions.shape)
        r.info.update(label=f"r0/{name}/crystal_rattle/s{seed}", composition=name,
                      kind="crystal_rattle", t_K=0.0, density_factor=1.0, seed=seed,
                      round=0, sampler="experiment", split="valid")
        out.append(r)
    for i, a in enumerate(out):
        a.info["priority"] = i
    return out


def _langevin(atoms: Atoms, t_K: float | Callable[[int], float], steps: int, seed: int,
              timestep_fs: float = 2.0) -> None:
    from ase import units
    from ase.md.langevin import Langevin

    t0 = t_K(0) if callable(t_K) else t_K
    dyn = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=t0,
                   friction=0.02 / units.fs, fixcm=True, rng=np.random.default_rng(seed))
    if callable(t_K):
        chunk = 50
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            dyn.set_temperature(temperature_K=t_K(done))
            dyn.run(n)
            done += n
    else:
        dyn.run(steps)


def disordered_frame(formula: str, kind: str, t_K: float, density_factor: float, seed: int,
                     *, calculator, n_atoms: int = 64, melt_K: float = 1200.0,
                     melt_ps: float = 3.0, hold_ps: float = 2.0,
                     cool_rate_K_ps: float = 100.0, timestep_fs: float = 2.0) -> Atoms:
    """One disordered cell sampled with ``calculator`` (NVT Langevin, fixed volume).

    Start model: ``build_glass(formula, n_atoms, seed=seed)`` compressed to
    ``density_factor`` × its density; melt at ``melt_K`` for ``melt_ps``; then
    ``melt``: hold ``hold_ps`` at ``t_K``; ``glass``: cool at ``cool_rate_K_ps`` to
    ``t_K`` and hold ``hold_ps``. Returns the last configuration (no velocities).
    """
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from viglas.structures import build_glass

    atoms = build_glass(formula, n_atoms, method="substitution", seed=seed)
    rho0 = float(atoms.info.get("density_g_cm3", 0.0))
    atoms.info = {}
    atoms.set_cell(np.asarray(atoms.cell) / density_factor ** (1.0 / 3.0), scale_atoms=True)
    atoms.calc = calculator
    MaxwellBoltzmannDistribution(atoms, temperature_K=melt_K,
                                 rng=np.random.default_rng(seed + 11))
    n_melt = int(round(melt_ps * 1000 / timestep_fs))
    n_hold = int(round(hold_ps * 1000 / timestep_fs))
    _langevin(atoms, melt_K, n_melt, seed + 12, timestep_fs)
    if kind == "glass":
        n_cool = int(round((melt_K - t_K) / cool_rate_K_ps * 1000 / timestep_fs))
        _langevin(atoms, lambda i: melt_K - (melt_K - t_K) * min(1.0, i / max(n_cool, 1)),
                  n_cool, seed + 13, timestep_fs)
    _langevin(atoms, t_K, n_hold, seed + 14, timestep_fs)
    out = Atoms(atoms.numbers, positions=atoms.get_positions(wrap=True), cell=atoms.cell,
                pbc=True)
    out.info.update(start_density_g_cm3=round(rho0, 4))
    return out


def plan_compositions(compositions: Sequence[str] | None = None) -> list[str]:
    """``compositions``, or the fit's compositions with the required ones first."""
    return list(compositions or (list(REQUIRED_COMPOSITIONS) + [
        c for c in DEFAULT_COMPOSITIONS if c not in REQUIRED_COMPOSITIONS]))


def _planned_frame(label: str, existing: dict[str, Atoms], comp: str, kind: str,
                   t_K: float, df: float, seed: int, calc, n_atoms: int,
                   log: Callable[[str], None]) -> Atoms:
    """The frame ``label`` of a plan: the existing one, or sampled now with
    :func:`disordered_frame`; its recipe metadata set in ``info``."""
    if label in existing:
        a = existing[label]
    else:
        a = disordered_frame(comp, kind, t_K, df, seed, calculator=calc, n_atoms=n_atoms)
        log(f"sampled {label} ({len(a)} atoms)")
    a.info.update(label=label, composition=comp, kind=kind, t_K=t_K, density_factor=df,
                  seed=seed)
    return a


def plan_round0(*, seeds_per_recipe: int = 1, compositions: Sequence[str] | None = None,
                n_atoms: int = 64, calculator=None, log: Callable[[str], None] = print,
                existing: dict[str, Atoms] | None = None) -> list[Atoms]:
    """The round-0 plan: crystals first, then disordered cells round-robin over the
    compositions (required ones first) and :data:`ROUND0_RECIPES`.

    The sampler is the shipped ionic default (milliseconds per step). For each
    composition, the run of recipe :data:`ROUND0_VALID` (a 300 K glass at the start
    density) is held out (``split=valid``). ``existing`` (label -> Atoms) skips frames already
    planned, so the plan can be extended without redoing MD.
    """
    from viglas.potentials import IonicPotential

    comps = plan_compositions(compositions)
    existing = dict(existing or {})
    calc = calculator or IonicPotential(None)
    out = crystal_frames()
    base = len(out)
    n_rec = len(ROUND0_RECIPES)
    for rep in range(seeds_per_recipe):
        for ri, (kind, t_K, df) in enumerate(ROUND0_RECIPES):
            for ci, comp in enumerate(comps):
                seed = 1000 * rep + 100 * ri + ci
                label = f"r0/{comp}/{kind}{int(t_K)}/d{df:.2f}/s{seed}"
                a = _planned_frame(label, existing, comp, kind, t_K, df, seed, calc,
                                   n_atoms, log)
                a.info.update(round=0,
                              sampler="ionic:default(CHGNet-fitted)",
                              split="valid" if ri == ROUND0_VALID else "train",
                              priority=base + (rep * n_rec + ROUND0_ORDER.index(ri))
                              * len(comps) + ci)
                out.append(a)
    return out


#: Small-cell recipes (kind, T in K, density factor) of the cheap rounds: ~21-atom cells
#: cost ~1–2 CPU-min each (2×2×2 k-points) against 4–8 for 63 atoms, so for the same
#: DFT time they give ~4× more independent local environments; densities span the
#: equation of state up to 20 % above the start model.
SMALL_RECIPES: tuple[tuple[str, float, float], ...] = (
    ("melt", 1200.0, 1.0),
    ("melt", 900.0, 1.15),
    ("glass", 300.0, 1.1),
    ("melt", 600.0, 1.1),
    ("glass", 300.0, 1.2),
    ("melt", 900.0, 1.0),
)


def compressed_crystals(rnd: int, volume_scales: Sequence[float] = (0.91, 0.94),
                        rattle_A: float = 0.05, priority_base: int = -50) -> list[Atoms]:
    """LiAlCl4 and NaAlCl4 compressed towards the PBE-D3 equilibrium volume (≈ 0.93 of
    the experimental one for NaAlCl4, docs/dft.md), each also rattled: the equation of
    state where the refitted sets relax to, labelled in the training split."""
    from viglas.structures import load_prototype

    rng = np.random.default_rng(1000 + rnd)
    out: list[Atoms] = []
    for name in ("LiAlCl4", "NaAlCl4"):
        proto = load_prototype(name)
        proto.info = {}
        for vs in volume_scales:
            a = proto.copy()
            a.set_cell(np.asarray(proto.cell) * vs ** (1.0 / 3.0), scale_atoms=True)
            for kind in ("crystal_strain", "crystal_rattle"):
                b = a.copy()
                if kind == "crystal_rattle":
                    b.positions += rng.normal(0.0, rattle_A, size=b.positions.shape)
                b.info.update(label=f"r{rnd}/{name}/{kind}/v{vs:.2f}", composition=name,
                              kind=kind, t_K=0.0, density_factor=round(1.0 / vs, 4),
                              seed=1000 + rnd, round=rnd, sampler="experiment",
                              split="train", priority=priority_base + len(out))
                out.append(b)
    return out


def plan_small(rnd: int, *, n_atoms: int = 21, compositions: Sequence[str] | None = None,
               calculator=None, sampler: str = "ionic:default(CHGNet-fitted)",
               priority_base: int = 10000, log: Callable[[str], None] = print,
               existing: dict[str, Atoms] | None = None) -> list[Atoms]:
    """Small disordered cells (training split only) for every composition and
    :data:`SMALL_RECIPES`, round-robin over compositions, priorities from
    ``priority_base``; plus :func:`compressed_crystals`."""
    from viglas.potentials import IonicPotential

    comps = plan_compositions(compositions)
    existing = dict(existing or {})
    calc = calculator or IonicPotential(None)
    out = compressed_crystals(rnd)
    for ri, (kind, t_K, df) in enumerate(SMALL_RECIPES):
        for ci, comp in enumerate(comps):
            seed = 10000 * rnd + 100 * ri + ci
            label = f"r{rnd}/{comp}/small/{kind}{int(t_K)}/d{df:.2f}/s{seed}"
            a = _planned_frame(label, existing, comp, kind, t_K, df, seed, calc, n_atoms,
                               log)
            a.info.update(round=rnd, sampler=sampler,
                          split="train", priority=priority_base + ri * len(comps) + ci)
            out.append(a)
    return out


def write_frames(frames: Sequence[Atoms], path: str | Path) -> Path:
    """Write candidate frames to a (gzipped) extxyz file atomically."""
    import os

    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / (path.name + f".{os.getpid()}.tmp" + "".join(path.suffixes[-1:]))
    write(tmp, list(frames), format="extxyz")
    tmp.replace(path)
    return path


def read_frames(path: str | Path) -> list[Atoms]:
    """Candidate frames of a plan file, sorted by ``priority``."""
    from ase.io import read

    frames = list(read(str(path), index=":", format="extxyz"))
    for a in frames:
        a.calc = None
    return sorted(frames, key=lambda a: int(a.info.get("priority", 0)))


def frame_info(a: Atoms) -> dict[str, Any]:
    """The plan metadata of a frame (for tables)."""
    keys = ("label", "composition", "kind", "t_K", "density_factor", "seed", "round",
            "sampler", "split", "priority")
    return {k: a.info.get(k) for k in keys}
