"""``build_glass``: one entry point for both start-model routes."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from ase import Atoms

from viglas.errors import StructureError
from viglas.structures.composition import GlassComposition

#: Build routes accepted by :func:`build_glass`.
METHODS: tuple[str, ...] = ("substitution", "packing")

#: Memory of the MD that follows a build, per atom: the ionic potential's neighbour
#: lists (10 Å cutoff + skin) dominate. Measured 9.1 kB/atom for one force call at
#: 19 992 atoms of LiAlCl2.5O0.75 (peak RSS), rounded up; ML potentials need more.
MD_BYTES_PER_ATOM = 10_000
#: Memory of the Python process before any atoms (imports, numba): ~350 MB measured.
BASE_BYTES = 400 * 2 ** 20


def estimate_memory_bytes(n_atoms: int) -> int:
    """Bytes a cell of ``n_atoms`` atoms needs for MD with the ionic potential (the
    build itself needs less): ``BASE_BYTES + MD_BYTES_PER_ATOM * n_atoms``."""
    return int(BASE_BYTES + MD_BYTES_PER_ATOM * int(n_atoms))


def available_memory_bytes() -> int | None:
    """Memory available to a new computation on this machine (Linux ``MemAvailable``,
    else the physical memory), or None when it cannot be told."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(n_atoms: int, *, field: str = "n_atoms",
                 available: int | None = None) -> None:
    """Refuse, before anything is computed, a cell too large for this machine: the
    hard limit :data:`viglas.config.MAX_ATOMS`, and the memory estimate of
    :func:`estimate_memory_bytes` against ``available`` bytes (default: what the
    machine has free now). Raises :class:`StructureError` naming ``field``."""
    from viglas.config import MAX_ATOMS

    n = int(n_atoms)
    if n > MAX_ATOMS:
        raise StructureError("too many atoms for one cell", field=field, value=n,
                             allowed=f"at most {MAX_ATOMS:,} atoms (MD needs about "
                             f"{estimate_memory_bytes(MAX_ATOMS) / 1e9:.0f} GB there)")
    avail = available_memory_bytes() if available is None else int(available)
    need = estimate_memory_bytes(n)
    if avail is not None and need > avail:
        fit = max(0, (avail - BASE_BYTES) // MD_BYTES_PER_ATOM)
        raise StructureError(
            f"a cell of {n:,} atoms needs about {need / 1e9:.1f} GB of memory for its MD, "
            f"this machine has {avail / 1e9:.1f} GB available", field=field, value=n,
            allowed=f"about {fit:,} atoms or fewer here",
            hint="use fewer atoms or a machine with more memory")


def check_density(density: float | None) -> float | None:
    """The requested glass density (g/cm³) validated, or None (the default estimate)."""
    if density is None:
        return None
    try:
        value = float(density)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0.0 or value > 20.0:
        raise StructureError("density must be a positive number in g/cm^3", field="density",
                             value=density, allowed="0 < density <= 20 g/cm^3")
    return value


def build_glass(comp: GlassComposition | str, n_atoms: int, method: str = "substitution",
                density: float | None = None, seed: int = 0,
                min_distance: float | Mapping[str, float] | None = None) -> Atoms:
    """Build a periodic start model of a VIGLAS glass.

    Args:
        comp: composition or formula, e.g. ``"LiAlCl2.5O0.75"``.
        n_atoms: target number of atoms; the nearest size with integer counts is used
            and reported in ``atoms.info["size_message"]`` (x is never changed).
        method: ``"substitution"`` (parent-salt crystal prototype, O bridging two M;
            :mod:`viglas.structures.substitution`) or ``"packing"`` (packmol random
            packing; :mod:`viglas.structures.packing`).
        density: target density in g/cm³; default :func:`estimate_density` (volume
            additivity). The cell matches it exactly.
        seed: seed of every random choice; the same seed gives the same structure.
        min_distance: minimum interatomic distance(s) in Å: one number for all pairs or
            ``{"Al-Cl": 2.0, ...}``; defaults in :mod:`viglas.structures.geometry`.

    Returns:
        :class:`ase.Atoms` (pbc, atoms grouped by element in formula order) with ``info``:
        ``method``, ``composition``, ``seed``, ``density_g_cm3``, ``size_message``,
        ``min_distance_A`` and route-specific keys.

    Raises:
        CompositionError: bad formula; StructureError: bad method, density, atom count or
        minimum distances that cannot be met.
    """
    from viglas.structures.geometry import min_distance_report, min_distance_table
    from viglas.structures.packing import build_packing
    from viglas.structures.substitution import build_substitution

    comp = GlassComposition.parse(comp)
    if method not in METHODS:
        raise StructureError("unknown build method", field="method", value=method,
                             allowed=" or ".join(METHODS))
    if isinstance(n_atoms, (int, np.integer)) and not isinstance(n_atoms, bool):
        check_memory(int(n_atoms))
    rho = check_density(density)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise StructureError("seed must be a non-negative integer", field="seed", value=seed,
                             allowed="an integer >= 0")
    table = min_distance_table(list(comp.counts_per_fu()), min_distance)
    builder = build_substitution if method == "substitution" else build_packing
    atoms = builder(comp, n_atoms, density=rho, seed=int(seed), min_distance=min_distance)
    order = list(comp.counts_per_fu())
    idx = np.argsort([order.index(s) for s in atoms.get_chemical_symbols()], kind="stable")
    out = atoms[idx]
    out.info = dict(atoms.info)
    rep = min_distance_report(out, table)
    out.info["min_distance_A"] = rep["min_distance_A"]
    out.info["min_distance_pair"] = rep["pair"]
    return out
