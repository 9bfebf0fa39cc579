"""Substitution route: glass start models from the parent-salt crystal prototypes.

Recipe (seeded, reproducible):

1. Supercell of the prototype of the majority alkali (LiAlCl4 P2₁/c or NaAlCl4
   P2₁2₁2₁, Z = 4) with the number of formula units nearest the target that is a
   multiple of 4 and gives integer counts (:func:`supercell_size`); the most cubic
   supercell shape is found with :func:`ase.build.find_optimal_cell_shape`.
2. Alkali and former sites are relabelled at random with the exact counts
   (Li <-> Na, Al -> Ga/In/B for mixed or non-Al compositions).
3. Oxygen: each O replaces two Cl and bridges two M. Pairs of neighbouring MCl4
   tetrahedra (M–M within 7.5 Å) are chosen greedily, always among the pairs whose
   formers have the fewest bridges so far (ties broken by M–M distance plus seeded
   noise), so bridges are spread evenly; from each tetrahedron the Cl closest to the
   partner M is removed and O is put at the M–M midpoint. Only when no such pair is
   left does an O replace a single Cl as a non-bridging O (then another Cl is removed
   from the former with the most Cl); the counts are stored in ``atoms.info``.
4. The cell is scaled isotropically to the target density (default
   :func:`estimate_density`, which includes the ionic-size correction of the formers).
5. A restrained relaxation (scipy L-BFGS, no force field) brings every MX4 tetrahedron
   to its reference bond lengths (Shannon radii: Al–Cl 2.13, Ga–Cl 2.21, In–Cl 2.36,
   B–Cl 1.85, Al–O 1.74 Å, ...; ideal tetrahedral X–X) and pushes apart every other
   pair closer than its minimum distance (:mod:`viglas.structures.geometry`).

The result is a defect-rich, strained crystal: a start for the melt-quench, not a glass.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
from ase import Atoms

from viglas.errors import StructureError
from viglas.structures.composition import ALKALI, GlassComposition, supercell_size
from viglas.structures.geometry import (
    bond_length,
    check_packing_fraction,
    enforce_min_distances,
    min_distance_report,
    min_distance_table,
    relax_geometry,
)
from viglas.structures.prototypes import PROTOTYPE_Z, load_prototype
from viglas.units import volume_a3_for_density

#: Largest M–M distance (Å, in the prototype) for which two tetrahedra may share an O.
BRIDGE_CUTOFF_A = 7.5
_COS_TET = -1.0 / 3.0


@lru_cache(maxsize=64)
def _cell_shape(cellpar: tuple[float, ...], n_cells: int) -> np.ndarray:
    from ase.build import find_optimal_cell_shape
    from ase.geometry import cellpar_to_cell

    return find_optimal_cell_shape(cellpar_to_cell(cellpar), n_cells, "sc")


def _supercell(proto: Atoms, n_cells: int) -> Atoms:
    from ase.build import make_supercell

    if n_cells == 1:
        return proto.copy()
    p = _cell_shape(tuple(float(v) for v in proto.cell.cellpar()), n_cells)
    sup = make_supercell(proto, p)
    if len(sup) != len(proto) * n_cells:  # pragma: no cover - ase guarantees det = n
        raise StructureError("supercell construction failed", field="n_atoms", value=len(sup))
    return sup


def _assign(symbols: np.ndarray, sites: np.ndarray, fractions: Mapping[str, float],
            counts: Mapping[str, int], rng: np.random.Generator) -> None:
    order = rng.permutation(sites)
    start = 0
    for el in fractions:
        symbols[order[start:start + counts[el]]] = el
        start += counts[el]


def build_substitution(comp: GlassComposition | str, n_atoms: int, *, density: float | None = None,
                       seed: int = 0, min_distance: float | Mapping[str, float] | None = None) -> Atoms:
    """Glass start model by substitution into the parent-salt prototype (see module doc).

    Args:
        comp: composition or formula.
        n_atoms: target number of atoms; the nearest multiple of 4 formula units with
            integer counts is used (reported in ``atoms.info["size_message"]``).
        density: target density in g/cm³ (default :func:`estimate_density`).
        seed: seed of every random choice.
        min_distance: minimum distances in Å (number or ``{"Al-Cl": 2.0}``; defaults in
            :mod:`viglas.structures.geometry`).

    Returns:
        Periodic :class:`ase.Atoms` with ``info`` keys ``method``, ``composition``,
        ``seed``, ``density_g_cm3``, ``n_bridging_O``, ``n_nonbridging_O``, ``prototype``,
        ``size_message``.
    """
    from matscipy.neighbours import neighbour_list

    from viglas.structures.density import estimate_density

    comp = GlassComposition.parse(comp)
    size = supercell_size(comp, n_atoms, multiple_of=PROTOTYPE_Z)
    n_cells = size.n_formula_units // PROTOTYPE_Z
    major = max(comp.alkali, key=lambda a: (comp.alkali[a], -ALKALI.index(a)))
    proto = load_prototype(major)
    sup = _supercell(proto, n_cells)
    rng = np.random.default_rng(seed)

    symbols = np.array(sup.get_chemical_symbols(), dtype=object)
    _assign(symbols, np.flatnonzero(symbols == major), comp.alkali, size.counts, rng)
    m_sites = np.flatnonzero(symbols == "Al")
    _assign(symbols, m_sites, comp.former, size.counts, rng)
    sup.set_chemical_symbols(list(symbols))
    pos = sup.get_positions()

    # ligands of every former (4 Cl at ~2.13 Å in the prototype)
    i, j, dvec = neighbour_list("ijD", sup, 2.6)
    is_m = np.zeros(len(sup), bool)
    is_m[m_sites] = True
    sel = is_m[i] & (symbols[j] == "Cl")
    ligands: dict[int, list[int]] = {int(m): [] for m in m_sites}
    lig_vec: dict[tuple[int, int], np.ndarray] = {}
    for a, b, v in zip(i[sel], j[sel], dvec[sel]):
        ligands[int(a)].append(int(b))
        lig_vec[(int(a), int(b))] = v
    if any(len(v) != 4 for v in ligands.values()):  # pragma: no cover - prototype data check
        raise StructureError("prototype tetrahedra are not MCl4", field="prototype", value=major)

    # candidate bridges: neighbouring formers, shortest image per pair
    mi, mj, md, mD = neighbour_list("ijdD", sup[m_sites], BRIDGE_CUTOFF_A)
    keep = mi < mj
    best: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
    for a, b, d, v in zip(mi[keep], mj[keep], md[keep], mD[keep]):
        key = (int(m_sites[a]), int(m_sites[b]))
        if key not in best or d < best[key][0]:
            best[key] = (float(d), v)
    edges = sorted(best)
    e_i = np.array([e[0] for e in edges], dtype=int)
    e_j = np.array([e[1] for e in edges], dtype=int)
    e_d = np.array([best[e][0] for e in edges])
    e_v = np.array([best[e][1] for e in edges]).reshape(-1, 3)
    noise = rng.uniform(0.0, 1.0, size=len(edges))
    used = np.zeros(len(edges), bool)

    n_o = size.counts.get("O", 0)
    removed: set[int] = set()
    remaining = {m: list(v) for m, v in ligands.items()}
    o_positions: list[np.ndarray] = []
    o_bonds: list[tuple[int, int, np.ndarray]] = []  # (M, O index among new O, vector M->O)
    deg = {int(m): 0 for m in m_sites}
    n_bridging = n_nonbridging = 0

    def take_cl(m: int, target: np.ndarray) -> int:
        best_cl = min(remaining[m], key=lambda c: float(np.linalg.norm(pos[m] + lig_vec[(m, c)] - target)))
        remaining[m].remove(best_cl)
        removed.add(best_cl)
        return best_cl

    for _ in range(n_o):
        n_left = np.array([len(remaining[int(a)]) for a in e_i]), np.array([len(remaining[int(b)]) for b in e_j])
        ok = (~used) & (n_left[0] > 0) & (n_left[1] > 0)
        if ok.any():
            di = np.array([deg[int(a)] for a in e_i])
            dj = np.array([deg[int(b)] for b in e_j])
            key_max = np.maximum(di, dj)
            key_sum = di + dj
            idx = np.flatnonzero(ok)
            m1 = key_max[idx].min()
            idx = idx[key_max[idx] == m1]
            m2 = key_sum[idx].min()
            idx = idx[key_sum[idx] == m2]
            k = int(idx[np.argmin(e_d[idx] + noise[idx])])
            used[k] = True
            a, b, v = int(e_i[k]), int(e_j[k]), e_v[k]
            take_cl(a, pos[a] + v)
            take_cl(b, pos[b] - v)  # the image of a seen from b sits at pos[b] - v
            o_idx = len(o_positions)
            o_positions.append(pos[a] + 0.5 * v)
            o_bonds += [(a, o_idx, 0.5 * v), (b, o_idx, -0.5 * v)]
            deg[a] += 1
            deg[b] += 1
            n_bridging += 1
        else:
            # non-bridging O on the former with the most Cl left, another Cl removed elsewhere
            order = sorted(remaining, key=lambda m: (-len(remaining[m]), rng.uniform()))
            if len(remaining[order[0]]) < 1 or sum(len(v) for v in remaining.values()) < 2:
                raise StructureError("not enough Cl left to place O", field="composition",
                                     value=comp.formula)
            m = order[0]
            c = remaining[m][int(rng.integers(len(remaining[m])))]
            remaining[m].remove(c)
            removed.add(c)
            v = lig_vec[(m, c)] / np.linalg.norm(lig_vec[(m, c)]) * bond_length(symbols[m], "O")
            o_idx = len(o_positions)
            o_positions.append(pos[m] + v)
            o_bonds.append((m, o_idx, v))
            other = next(mm for mm in order if mm != m and remaining[mm]) if len(order) > 1 else m
            c2 = remaining[other][int(rng.integers(len(remaining[other])))]
            remaining[other].remove(c2)
            removed.add(c2)
            deg[m] += 1
            n_nonbridging += 1

    keep_idx = np.array([k for k in range(len(sup)) if k not in removed], dtype=int)
    new_index = {int(old): new for new, old in enumerate(keep_idx)}
    atoms = sup[keep_idx]
    if o_positions:
        atoms += Atoms("O" * len(o_positions), positions=np.array(o_positions))
    n_kept = len(keep_idx)
    atoms.pbc = True

    # bonds: M-X of every tetrahedron and ideal X-X within it, each with the exact vector
    # it had when built (so the right periodic image is bonded even in small cells)
    tetra: dict[int, list[tuple[int, np.ndarray]]] = {
        new_index[int(m)]: [(new_index[c], lig_vec[(int(m), c)]) for c in remaining[int(m)]]
        for m in m_sites}
    for m, o, vec in o_bonds:
        tetra[new_index[m]].append((n_kept + o, vec))
    syms = atoms.get_chemical_symbols()
    bonds: list[tuple[int, int]] = []
    bond_vec: list[np.ndarray] = []
    r0: list[float] = []
    for m, ligs in tetra.items():
        lengths = [bond_length(syms[m], syms[x]) for x, _ in ligs]
        for (x, vec), d in zip(ligs, lengths):
            bonds.append((m, x))
            bond_vec.append(vec)
            r0.append(d)
        for p in range(len(ligs)):
            for q in range(p + 1, len(ligs)):
                d1, d2 = lengths[p], lengths[q]
                bonds.append((ligs[p][0], ligs[q][0]))
                bond_vec.append(ligs[q][1] - ligs[p][1])
                r0.append(float(np.sqrt(d1 * d1 + d2 * d2 - 2 * d1 * d2 * _COS_TET)))
    bonds_arr, r0_arr = np.array(bonds, dtype=int).reshape(-1, 2), np.array(r0)
    raw = atoms.positions[bonds_arr[:, 1]] - atoms.positions[bonds_arr[:, 0]]
    images = np.rint((np.array(bond_vec).reshape(-1, 3) - raw) @ np.linalg.inv(np.array(atoms.cell)))

    # scale to the target density, then restore the tetrahedra and remove overlaps
    rho = estimate_density(comp) if density is None else density
    volume = volume_a3_for_density(float(atoms.get_masses().sum()), rho)
    atoms.set_cell(atoms.cell * (volume / atoms.get_volume()) ** (1.0 / 3.0), scale_atoms=True)
    table = min_distance_table(atoms.get_chemical_symbols(), min_distance)
    syms_now = atoms.get_chemical_symbols()
    check_packing_fraction({el: syms_now.count(el) for el in set(syms_now)}, atoms.get_volume(), table)
    atoms = relax_geometry(atoms, table, bonds=bonds_arr, bond_r0=r0_arr, bond_images=images,
                           wrap=False)
    if min_distance_report(atoms, table)["worst_ratio"] < 1.0:
        atoms = enforce_min_distances(atoms, table, bonds=bonds_arr, bond_r0=r0_arr,
                                      bond_images=images)
    atoms.wrap()
    out = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
    out.info.update({
        "method": "substitution", "composition": comp.formula, "seed": int(seed),
        "density_g_cm3": float(rho), "prototype": proto.info.get("prototype", major),
        "n_bridging_O": int(n_bridging), "n_nonbridging_O": int(n_nonbridging),
        "size_message": size.message,
    })
    return out
