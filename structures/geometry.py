"""Ionic radii, default minimum distances and geometry clean-up for initial glass models.

Default minimum distances (Å) used by both build routes (override with
``min_distance=`` in :func:`viglas.structures.build_glass`):

* cation–anion: 0.85 × (r_cation + r_anion) with the Shannon (1976) radii in
  :data:`SHANNON_RADII` (Al–Cl 1.87, Al–O 1.48, Li–Cl 2.04, Na–Cl 2.41, B–O 1.24 Å);
* anion–anion: 0.80 × (r_1 + r_2) (Cl–Cl 2.90, Cl–O 2.53, O–O 2.16 Å);
* cation–cation: 2.40 Å for every pair (closest M–M in corner-sharing tetrahedra is ≈ 3 Å).

(The random cells of the potential fit's reference sampling,
:func:`viglas.potentials.reference.random_cell`, use their own placement thresholds,
a separate quantity documented there.)

Reference M–X bond lengths for the tetrahedra (used by the substitution route) are
``r_M + r_X - delta_X`` with delta_Cl = 0.07 Å (calibrated so that Al–Cl = 2.13 Å as in
LiAlCl4) and delta_O = 0: Al–Cl 2.13, Ga–Cl 2.21, In–Cl 2.36, B–Cl 1.85, Al–O 1.74,
Ga–O 1.82, In–O 1.97, B–O 1.46 Å.

R. D. Shannon, Acta Cryst. A 32, 751 (1976).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ase import Atoms

from viglas.chemistry import ANIONS, CATIONS
from viglas.errors import StructureError

#: Shannon (1976) effective ionic radii in Å at the coordination of these glasses:
#: Li+ (IV), Na+ (VI), Al3+/Ga3+/In3+/B3+ (IV), Cl- (VI), O2- (II).
SHANNON_RADII: dict[str, float] = {"Li": 0.59, "Na": 1.02, "Al": 0.39, "Ga": 0.47, "In": 0.62,
                                   "B": 0.11, "Cl": 1.81, "O": 1.35}
_BOND_DELTA = {"Cl": 0.07, "O": 0.0}
CATION_CATION_MIN_A = 2.40


def bond_length(m: str, x: str) -> float:
    """Reference M–X bond length in Å for a former M in a tetrahedron with anion X."""
    return SHANNON_RADII[m] + SHANNON_RADII[x] - _BOND_DELTA[x]


def default_min_distance(a: str, b: str) -> float:
    """Default minimum distance in Å between elements ``a`` and ``b`` (see module doc)."""
    ca, cb = a in CATIONS, b in CATIONS
    if ca and cb:
        return CATION_CATION_MIN_A
    if not ca and not cb:
        return round(0.80 * (SHANNON_RADII[a] + SHANNON_RADII[b]), 3)
    return round(0.85 * (SHANNON_RADII[a] + SHANNON_RADII[b]), 3)


def pair_key(a: str, b: str) -> str:
    """Canonical pair key ``"X-Y"`` with X, Y in alphabetical order."""
    return "-".join(sorted((a, b)))


def min_distance_table(symbols: list[str] | tuple[str, ...],
                       min_distance: float | Mapping[str, float] | None = None) -> dict[str, float]:
    """Minimum distance in Å for every pair of the given elements.

    ``min_distance`` None -> defaults; a number -> that value for every pair; a mapping
    ``{"Al-Cl": 2.0, ...}`` -> overrides for the named pairs, defaults for the rest.
    """
    elems = sorted(set(symbols))
    table = {pair_key(a, b): default_min_distance(a, b) for i, a in enumerate(elems) for b in elems[i:]}
    if min_distance is None:
        return table
    if isinstance(min_distance, Mapping):
        for key, val in min_distance.items():
            parts = str(key).replace("–", "-").split("-")
            if len(parts) != 2 or any(p not in SHANNON_RADII for p in parts):
                raise StructureError("unknown pair in min_distance", field="min_distance", value=key,
                                     allowed="keys like 'Al-Cl' of elements " + ", ".join(SHANNON_RADII))
            table[pair_key(*parts)] = _positive_distance(val, key)
        return table
    d = _positive_distance(min_distance, "min_distance")
    return {k: d for k in table}


def _positive_distance(val: object, name: str) -> float:
    try:
        d = float(val)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        d = float("nan")
    if not np.isfinite(d) or d <= 0 or d > 5.0:
        raise StructureError(f"minimum distance {name} must be a positive length in Å",
                             field="min_distance", value=val, allowed="0 < d <= 5 Å")
    return d


def additive_radii(elements: list[str] | tuple[str, ...], table: Mapping[str, float]) -> dict[str, float]:
    """Per-element radii (Å) whose sums approximate the pair table (for packmol).

    Anions: half their like-pair minimum distance; cations: the smallest
    ``d_min(cation, anion) - r_anion`` over the anions present (at least 0.3 Å).
    """
    elements = list(dict.fromkeys(elements))
    anions = [e for e in elements if e in ANIONS]
    radii = {a: table[pair_key(a, a)] / 2 for a in anions}
    for c in elements:
        if c in radii:
            continue
        if anions:
            radii[c] = max(0.3, min(table[pair_key(c, a)] - radii[a] for a in anions))
        else:
            radii[c] = table[pair_key(c, c)] / 2
    return radii


#: Largest hard-sphere packing fraction accepted before building (random close packing is 0.64).
MAX_PACKING_FRACTION = 0.55


def check_packing_fraction(counts: Mapping[str, int], volume_a3: float,
                           table: Mapping[str, float]) -> float:
    """Hard-sphere packing fraction of spheres with :func:`additive_radii` in ``volume_a3``.

    Raises StructureError (field ``min_distance``) above :data:`MAX_PACKING_FRACTION`:
    such minimum distances cannot be met at this density.
    """
    radii = additive_radii(list(counts), table)
    phi = sum(n * 4.0 / 3.0 * np.pi * radii[el] ** 3 for el, n in counts.items()) / volume_a3
    if phi > MAX_PACKING_FRACTION:
        raise StructureError(
            f"minimum distances too large for this density (hard-sphere packing fraction "
            f"{phi:.2f} > {MAX_PACKING_FRACTION})", field="min_distance",
            value={k: v for k, v in table.items()}, allowed="smaller minimum distances or a lower density")
    return float(phi)


def _pair_matrix(atoms: Atoms, table: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom species index and the species x species minimum-distance matrix."""
    syms = atoms.get_chemical_symbols()
    elems = sorted(set(syms))
    idx = np.array([elems.index(s) for s in syms])
    mat = np.array([[table[pair_key(a, b)] for b in elems] for a in elems])
    return idx, mat


def min_distance_report(atoms: Atoms, table: Mapping[str, float] | None = None) -> dict:
    """Shortest interatomic distance across periodic boundaries.

    Returns ``{"min_distance_A", "pair", "worst_ratio", "worst_pair", "worst_distance_A"}``
    where ``worst_ratio`` is the smallest d_ij / d_min(i, j) over all pairs (>= 1 means
    every threshold is met) and ``worst_pair`` / ``worst_distance_A`` the pair attaining it.
    """
    from matscipy.neighbours import neighbour_list

    if table is None:
        table = min_distance_table(atoms.get_chemical_symbols())
    cutoff = max(max(table.values()), 3.5)
    i, j, d = neighbour_list("ijd", atoms, cutoff)
    syms = np.array(atoms.get_chemical_symbols())
    if len(d) == 0:
        return {"min_distance_A": float("inf"), "pair": "", "worst_ratio": float("inf"),
                "worst_pair": "", "worst_distance_A": float("inf")}
    k = int(np.argmin(d))
    sp, mat = _pair_matrix(atoms, table)
    ratio = d / mat[sp[i], sp[j]]
    w = int(np.argmin(ratio))
    return {"min_distance_A": float(d[k]), "pair": pair_key(syms[i[k]], syms[j[k]]),
            "worst_ratio": float(ratio[w]), "worst_pair": pair_key(syms[i[w]], syms[j[w]]),
            "worst_distance_A": float(d[w])}


def _single_thread_blas():  # noqa: ANN202
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1)


def relax_geometry(atoms: Atoms, table: Mapping[str, float], *,
                   bonds: np.ndarray | None = None, bond_r0: np.ndarray | None = None,
                   max_iter: int = 1000, margin: float = 0.02, w_overlap: float = 10.0,
                   w_bond: float = 1.0, gtol: float = 1e-3,
                   bond_images: np.ndarray | None = None, wrap: bool = True) -> Atoms:
    """Remove overlaps (and, if given, restrain bonds) in a fixed periodic cell.

    Minimises ``sum_bonds (r - r0)^2 + w_overlap * sum_{pairs, r < dmin} (dmin(1+margin) - r)^2``
    with L-BFGS (scipy) over the positions; the cell is not changed. ``bonds`` is an
    (n, 2) index array with reference lengths ``bond_r0`` (Å), weighted by ``w_bond``;
    the overlap term applies to every pair, so reference lengths shorter than the minimum
    distances are overruled. ``bond_images`` (n, 3) integer cell offsets fix which periodic
    image of atom j each bond uses (bond vector = r_j - r_i + images @ cell); without them
    the minimum image of the start positions is used. Returns a new Atoms, wrapped into
    the cell if ``wrap`` (keep ``wrap=False`` to pass the same ``bond_images`` again).
    """
    from matscipy.neighbours import neighbour_list
    from ase.geometry import find_mic
    from scipy.optimize import minimize

    work = atoms.copy()
    sp, mat = _pair_matrix(work, table)
    cutoff = float(mat.max()) * (1 + margin) + 0.3
    n = len(work)
    if bonds is None or len(bonds) == 0:
        bonds = np.zeros((0, 2), dtype=int)
        bond_r0 = np.zeros(0)
    bonds = np.asarray(bonds, dtype=int)
    bond_r0 = np.asarray(bond_r0, dtype=float)
    shift = np.zeros((len(bonds), 3))
    if len(bonds) and bond_images is not None:
        shift = np.asarray(bond_images, dtype=float) @ np.array(work.cell)
    elif len(bonds):
        # minimum image of each bond at the start (positions are not wrapped while minimising)
        raw = work.positions[bonds[:, 1]] - work.positions[bonds[:, 0]]
        mic, _ = find_mic(raw, work.cell, pbc=True)
        shift = mic - raw

    def energy(flat: np.ndarray) -> tuple[float, np.ndarray]:
        pos = flat.reshape(n, 3)
        work.positions = pos
        grad = np.zeros_like(pos)
        e = 0.0
        i, j, d, dv = neighbour_list("ijdD", work, cutoff)
        if len(i):
            target = mat[sp[i], sp[j]] * (1 + margin)
            sel = d < target
            i, j, d, dv, target = i[sel], j[sel], d[sel], dv[sel], target[sel]
            over = target - d
            # each pair appears twice (i->j and j->i): half weight per entry
            e += 0.5 * w_overlap * float(np.sum(over ** 2))
            g = (-w_overlap * over / np.maximum(d, 1e-9))[:, None] * dv  # dE/dr_j per entry
            np.add.at(grad, j, 0.5 * g)
            np.add.at(grad, i, -0.5 * g)
        if len(bonds):
            bv = pos[bonds[:, 1]] - pos[bonds[:, 0]] + shift
            r = np.linalg.norm(bv, axis=1)
            dr = r - bond_r0
            e += w_bond * float(np.sum(dr ** 2))
            g = (2 * w_bond * dr / np.maximum(r, 1e-9))[:, None] * bv
            np.add.at(grad, bonds[:, 1], g)
            np.add.at(grad, bonds[:, 0], -g)
        return e, grad.ravel()

    # L-BFGS-B calls BLAS on tiny vectors: threads only add overhead (7x slower on a busy
    # 2-core machine), so run it single-threaded when threadpoolctl is available
    with _single_thread_blas():
        res = minimize(energy, work.positions.ravel().copy(), jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "gtol": gtol, "ftol": 1e-10})
    work.positions = res.x.reshape(n, 3)
    if wrap:
        work.wrap()
    return work


def enforce_min_distances(atoms: Atoms, table: Mapping[str, float], **kwargs) -> Atoms:  # noqa: ANN003
    """Run :func:`relax_geometry` until every pair meets its minimum distance.

    Raises StructureError if the thresholds cannot be met (too dense for them).
    Positions are returned wrapped into the cell.
    """
    kwargs.setdefault("wrap", False)
    out = atoms
    for attempt in range(4):
        # stiffer overlap walls and softer bonds on each attempt
        out = relax_geometry(out, table, margin=0.02 * (attempt + 1), w_overlap=10.0 * 4 ** attempt,
                             w_bond=0.3 ** attempt, **kwargs)
        if min_distance_report(out, table)["worst_ratio"] >= 1.0 - 1e-9:
            out.wrap()
            return out
    rep = min_distance_report(out, table)
    raise StructureError(
        f"cannot satisfy the minimum distances at this density ({rep['worst_pair']} pair at "
        f"{rep['worst_distance_A']:.2f} Å, {table[rep['worst_pair']]:.2f} Å asked)",
        field="min_distance", value=dict(table), allowed="smaller minimum distances or a lower density")
