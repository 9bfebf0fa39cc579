"""Start models from both routes: stoichiometry, neutrality, distances, density, seeds.

Every structure is built once (cached) at the smallest exact size (~20 atoms) and shared
by the tests that check it, so the full A x M x x matrix for both routes stays fast.
"""

from __future__ import annotations

import itertools
import os
from functools import lru_cache

import numpy as np
import pytest

from viglas.errors import CompositionError, StructureError
from viglas.structures import (
    GlassComposition,
    build_glass,
    estimate_density,
    min_distance_table,
)
from viglas.structures.composition import FORMAL_CHARGES
from viglas.structures.geometry import bond_length, pair_key
from viglas.units import density_g_cm3

os.environ.setdefault("OMP_NUM_THREADS", "1")

ALKALIS = ("Li", "Na")
FORMERS = ("Al", "Ga", "In", "B")
XS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
METHODS = ("substitution", "packing")
MATRIX = list(itertools.product(ALKALIS, FORMERS, XS, METHODS))


def _comp(a: str, m: str, x: float) -> GlassComposition:
    return GlassComposition(alkali={a: 1.0}, former={m: 1.0}, x=x)


@lru_cache(maxsize=None)
def _build(formula: str, n_atoms: int, method: str, seed: int = 0, density: float | None = None):
    return build_glass(formula, n_atoms, method=method, seed=seed, density=density)


def _min_ratio(atoms, table) -> tuple[float, str]:
    """Smallest d_ij / d_min(i, j) over all pairs, minimum image (ASE, independent of
    the matscipy neighbour list used by the builders)."""
    d = atoms.get_all_distances(mic=True)
    syms = atoms.get_chemical_symbols()
    dmin = np.array([[table[pair_key(a, b)] for b in syms] for a in syms])
    np.fill_diagonal(d, np.inf)
    ratio = d / dmin
    i, j = np.unravel_index(np.argmin(ratio), ratio.shape)
    return float(ratio[i, j]), f"{syms[i]}-{syms[j]} {d[i, j]:.3f} A"


@pytest.mark.parametrize("a, m, x, method", MATRIX)
def test_stoichiometry_neutrality_distance_density(a, m, x, method):
    comp = _comp(a, m, x)
    atoms = _build(comp.formula, 20, method)
    syms = atoms.get_chemical_symbols()
    counts = {el: syms.count(el) for el in set(syms)}
    n_m = counts[m]
    # exact stoichiometry A1 M1 Cl(4-2x) O(x): no rounding, x unchanged
    assert counts[a] == n_m
    assert counts["Cl"] == pytest.approx((4 - 2 * x) * n_m, abs=1e-9)
    assert counts.get("O", 0) == pytest.approx(x * n_m, abs=1e-9)
    assert set(counts) == set(comp.counts_per_fu())
    # charge neutrality
    assert sum(FORMAL_CHARGES[el] * n for el, n in counts.items()) == 0
    # minimum distances (defaults, per pair) across periodic boundaries
    ratio, worst = _min_ratio(atoms, min_distance_table(syms))
    assert ratio >= 1.0 - 1e-6, worst
    # density of the cell = the default estimate (within 1 %)
    rho = density_g_cm3(float(atoms.get_masses().sum()), atoms.get_volume())
    assert rho == pytest.approx(estimate_density(comp), rel=0.01)
    assert atoms.pbc.all()


@pytest.mark.parametrize("method", METHODS)
def test_mixed_alkali_and_former(method):
    comp = GlassComposition.from_formula("Li0.5Na0.5Al0.5Ga0.5Cl3O0.5")
    atoms = _build(comp.formula, 40, method)
    syms = atoms.get_chemical_symbols()
    n = {el: syms.count(el) for el in ("Li", "Na", "Al", "Ga", "Cl", "O")}
    assert n["Li"] == n["Na"] == n["Al"] == n["Ga"]
    assert n["Cl"] == 6 * n["Li"] and n["O"] == n["Li"]
    assert _min_ratio(atoms, min_distance_table(syms))[0] >= 1.0 - 1e-6


@pytest.mark.parametrize("method, density, min_distance", [
    ("substitution", 2.2, None), ("packing", 1.9, None), ("packing", None, 2.0),
    ("substitution", None, {"Li-O": 1.9, "Cl-Cl": 3.2}),
])
def test_density_and_min_distance_overrides(method, density, min_distance):
    atoms = build_glass("LiAlCl2.5O0.75", 42, method=method, density=density,
                        min_distance=min_distance, seed=1)
    rho = density_g_cm3(float(atoms.get_masses().sum()), atoms.get_volume())
    target = density if density is not None else estimate_density("LiAlCl2.5O0.75")
    assert rho == pytest.approx(target, rel=0.01)
    table = min_distance_table(atoms.get_chemical_symbols(), min_distance)
    if min_distance == 2.0:
        assert set(table.values()) == {2.0}
    ratio, worst = _min_ratio(atoms, table)
    assert ratio >= 1.0 - 1e-6, worst


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_structure(method):
    a = build_glass("NaAlCl3O0.5", 44, method=method, seed=7)
    b = build_glass("NaAlCl3O0.5", 44, method=method, seed=7)
    c = build_glass("NaAlCl3O0.5", 44, method=method, seed=8)
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell, b.cell)
    assert not np.allclose(a.positions, c.positions)


def test_substitution_oxygen_bridges_two_formers():
    atoms = _build("LiAlCl2.5O0.75", 84, "substitution")  # 16 f.u.: Li16 Al16 Cl40 O12
    syms = np.array(atoms.get_chemical_symbols())
    d = atoms.get_all_distances(mic=True)
    o, al, cl = syms == "O", syms == "Al", syms == "Cl"
    n_al_per_o = (d[np.ix_(o, al)] < 2.0).sum(axis=1)
    assert atoms.info["n_bridging_O"] == o.sum() == 12
    assert np.all(n_al_per_o == 2)  # every O is an Al-O-Al bridge
    # tetrahedra kept: each Al has 4 anions at bond length, Al-O 1.74 A, Al-Cl 2.13 A
    al_o = d[np.ix_(al, o)]
    al_cl = d[np.ix_(al, cl)]
    n_lig = (al_o < 2.0).sum(axis=1) + (al_cl < 2.4).sum(axis=1)
    assert np.all(n_lig == 4)
    assert al_o[al_o < 2.0].mean() == pytest.approx(bond_length("Al", "O"), abs=0.05)
    assert al_cl[al_cl < 2.4].mean() == pytest.approx(bond_length("Al", "Cl"), abs=0.05)
    assert atoms.info["prototype"] == "LiAlCl4"


@pytest.mark.parametrize("formula, m, proto", [
    ("NaGaCl4", "Ga", "NaAlCl4"), ("LiInCl4", "In", "LiAlCl4"), ("LiBCl4", "B", "LiAlCl4"),
])
def test_substitution_former_size_and_prototype(formula, m, proto):
    """Ga/In/B tetrahedra take their own M-Cl bond length (Shannon radii); Na uses NaAlCl4."""
    atoms = _build(formula, 24, "substitution")
    assert atoms.info["prototype"] == proto
    syms = np.array(atoms.get_chemical_symbols())
    d = atoms.get_all_distances(mic=True)[np.ix_(syms == m, syms == "Cl")]
    nearest4 = np.sort(d, axis=1)[:, :4]
    assert nearest4.mean() == pytest.approx(bond_length(m, "Cl"), abs=0.05)
    assert bond_length("B", "Cl") < bond_length("Al", "Cl") < bond_length("Ga", "Cl") < bond_length("In", "Cl")


def test_size_is_nearest_exact_and_reported():
    atoms = _build("LiAlCl2.5O0.75", 200, "packing")
    assert len(atoms) == 210  # 40 f.u.; 189 would be further from 200
    assert "210" in atoms.info["size_message"]
    sub = build_glass("LiAlCl3O0.5", 100, method="substitution")  # multiples of 4 f.u. (Z = 4)
    assert len(sub) == 110 and sub.get_chemical_symbols().count("Al") % 4 == 0


@pytest.mark.parametrize("kwargs, error, field", [
    ({"comp": "LiAlCl3"}, CompositionError, "composition"),
    ({"comp": "LiAlCl4Xe"}, CompositionError, "composition"),
    ({"density": 0.0}, StructureError, "density"),
    ({"density": -1.5}, StructureError, "density"),
    ({"n_atoms": 4}, StructureError, "n_atoms"),
    ({"method": "random"}, StructureError, "method"),
    ({"seed": -1}, StructureError, "seed"),
    ({"min_distance": -1.0}, StructureError, "min_distance"),
    ({"min_distance": {"Al-Xx": 2.0}}, StructureError, "min_distance"),
    ({"min_distance": 4.5, "method": "packing"}, StructureError, "min_distance"),  # too dense
])
def test_bad_inputs_raise_named_errors(kwargs, error, field):
    args = {"comp": "LiAlCl4", "n_atoms": 24, "method": "substitution"} | kwargs
    with pytest.raises(error) as err:
        build_glass(args.pop("comp"), args.pop("n_atoms"), **args)
    assert err.value.field == field
    assert "\n" not in err.value.one_line()
