"""Random-packing route: atoms placed by packmol in a periodic box at the target density.

Packmol (Martínez et al., J. Comput. Chem. 30, 2157 (2009); the ``packmol`` wheel
ships the binary) places every atom as a one-atom molecule in a cubic periodic box
(``pbc`` keyword) whose volume gives the target density. Packmol only knows additive
radii, so each element gets the radius ``r = d_min(X, X)/2`` for anions and
``r = min_anion (d_min(cation, anion) - r_anion)`` for cations (cation–anion pairs get
exactly their minimum distance); afterwards every pair is brought to its own minimum
distance from :func:`viglas.structures.geometry.min_distance_table` by an overlap-only
minimisation (:func:`viglas.structures.geometry.enforce_min_distances`).
The same seed gives the same structure (packmol's own seed is derived from it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from ase import Atoms

from viglas.errors import MissingDependencyError, StructureError
from viglas.structures.composition import GlassComposition, supercell_size
from viglas.structures.geometry import (
    additive_radii,
    check_packing_fraction,
    enforce_min_distances,
    min_distance_report,
    min_distance_table,
)
from viglas.units import volume_a3_for_density


def packmol_executable() -> str:
    """Path of the packmol binary (PATH first, then the one in the ``packmol`` wheel)."""
    exe = shutil.which("packmol")
    if exe:
        return exe
    try:
        import packmol  # type: ignore[import-not-found]

        cand = Path(packmol.__file__).parent / "binaries" / "packmol"
        if cand.exists():
            return str(cand)
    except ImportError:
        pass
    raise MissingDependencyError("packmol executable not found", field="method", value="packing",
                                 hint="pip install packmol (or use --method substitution)")


def build_packing(comp: GlassComposition | str, n_atoms: int, *, density: float | None = None,
                  seed: int = 0, min_distance: float | Mapping[str, float] | None = None,
                  timeout_s: float = 300.0) -> Atoms:
    """Random start model packed by packmol in a cubic periodic box (see module doc).

    Args:
        comp: composition or formula.
        n_atoms: target number of atoms (nearest exact size, see :func:`supercell_size`).
        density: target density in g/cm³ (default :func:`estimate_density`).
        seed: seed of the packing.
        min_distance: minimum distances in Å (number or ``{"Al-Cl": 2.0}``).
        timeout_s: wall-time limit of the packmol run in s.

    Returns:
        Periodic :class:`ase.Atoms` (cubic cell) with ``info`` keys ``method``,
        ``composition``, ``seed``, ``density_g_cm3``, ``size_message``.
    """
    from viglas.structures.density import estimate_density

    comp = GlassComposition.parse(comp)
    size = supercell_size(comp, n_atoms)
    rho = estimate_density(comp) if density is None else density
    symbols = [el for el, n in size.counts.items() for _ in range(n)]
    masses = Atoms(symbols).get_masses().sum()
    length = volume_a3_for_density(float(masses), rho) ** (1.0 / 3.0)
    table = min_distance_table(list(size.counts), min_distance)
    radii = additive_radii(list(size.counts), table)
    check_packing_fraction(size.counts, length ** 3, table)
    exe = packmol_executable()
    # packmol seeds must be positive; map every int seed to a distinct positive one
    pm_seed = 1 + (int(seed) % 2_147_483_000)
    with tempfile.TemporaryDirectory(prefix="viglas_packmol_") as tmp:
        lines = [
            f"tolerance {2 * min(radii.values()):.4f}", "filetype xyz", "output packed.xyz",
            f"seed {pm_seed}", "nloop 200",
            f"pbc 0. 0. 0. {length:.6f} {length:.6f} {length:.6f}",
        ]
        for el, n in size.counts.items():
            if n == 0:
                continue
            Path(tmp, f"{el}.xyz").write_text(f"1\n{el}\n{el} 0.0 0.0 0.0\n")
            lines += [f"structure {el}.xyz", f"  number {n}", f"  radius {radii[el]:.4f}",
                      "end structure"]
        Path(tmp, "pack.inp").write_text("\n".join(lines) + "\n")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        try:
            with open(Path(tmp, "pack.inp")) as fin:
                proc = subprocess.run([exe], stdin=fin, cwd=tmp, capture_output=True, text=True,
                                      timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            raise StructureError(f"packmol did not finish in {timeout_s:g} s", field="density",
                                 value=rho, allowed="a lower density or fewer atoms") from None
        out = Path(tmp, "packed.xyz")
        if not out.exists():
            tail = " ".join(proc.stdout.strip().splitlines()[-3:])
            raise StructureError(f"packmol failed: {tail}", field="method", value="packing")
        rows = out.read_text().splitlines()[2:2 + size.n_atoms]
    syms = [r.split()[0] for r in rows]
    pos = np.array([[float(v) for v in r.split()[1:4]] for r in rows])
    atoms = Atoms(syms, positions=pos, cell=[length] * 3, pbc=True)
    # packmol output precision and its approximate (additive) radii: enforce every pair
    atoms.wrap()
    if min_distance_report(atoms, table)["worst_ratio"] < 1.0:
        atoms = enforce_min_distances(atoms, table)
    order = np.argsort([list(size.counts).index(s) for s in atoms.get_chemical_symbols()], kind="stable")
    atoms = atoms[order]
    out_atoms = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    out_atoms.info.update({"method": "packing", "composition": comp.formula, "seed": int(seed),
                           "density_g_cm3": float(rho), "size_message": size.message})
    return out_atoms
