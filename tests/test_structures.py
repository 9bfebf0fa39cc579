"""Compositions, supercell sizing, density estimate, prototypes and structure files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase import Atoms

from viglas.errors import CompositionError, StructureError
from viglas.structures import (
    GlassComposition,
    estimate_density,
    load_prototype,
    prototype_path,
    read_structure,
    supercell_size,
    write_structure,
)
from viglas.structures.composition import FORMAL_CHARGES


@pytest.mark.parametrize("formula, alkali, former, x", [
    ("LiAlCl2.5O0.75", {"Li": 1.0}, {"Al": 1.0}, 0.75),
    ("NaGaCl3O0.5", {"Na": 1.0}, {"Ga": 1.0}, 0.5),
    ("LiAlCl4", {"Li": 1.0}, {"Al": 1.0}, 0.0),
    ("LiAl0.5Ga0.5Cl3O0.5", {"Li": 1.0}, {"Al": 0.5, "Ga": 0.5}, 0.5),
    ("Li0.5Na0.5AlCl4", {"Li": 0.5, "Na": 0.5}, {"Al": 1.0}, 0.0),
    ("Li4Al4Cl10O3", {"Li": 1.0}, {"Al": 1.0}, 0.75),  # several formula units
    ("NaBCl1O1.5", {"Na": 1.0}, {"B": 1.0}, 1.5),
    ("Na In Cl3.5 O0.25", {"Na": 1.0}, {"In": 1.0}, 0.25),
])
def test_parse_formula(formula, alkali, former, x):
    comp = GlassComposition.from_formula(formula)
    assert comp.alkali == alkali and comp.former == former and comp.x == pytest.approx(x)
    assert comp.charge_sum() == pytest.approx(0.0, abs=1e-12)
    # formula string round-trips and counts follow A M Cl(4-2x) O(x)
    assert GlassComposition.from_formula(comp.formula) == comp
    counts = comp.counts_per_fu()
    assert counts["Cl"] == pytest.approx(4 - 2 * x)
    assert counts.get("O", 0.0) == pytest.approx(x)
    assert sum(comp.element_fractions().values()) == pytest.approx(1.0)
    assert "." not in comp.label and "/" not in comp.label
    assert comp.mobile_species == tuple(alkali)


def test_laco_properties():
    comp = GlassComposition.from_formula("LiAlCl2.5O0.75")
    assert comp.formula == "LiAlCl2.5O0.75"
    assert comp.label == "LiAlCl2p5O0p75"
    assert comp.oxygen_fraction == pytest.approx(0.75 / 3.25)  # p = O/(O+Cl)
    assert comp.element_fractions()["O"] == pytest.approx(0.75 / 5.25)
    assert comp == GlassComposition(alkali={"Li": 1}, former={"Al": 1}, x=0.75)
    with pytest.raises(Exception):
        comp.x = 0.5  # frozen
    assert {comp: 1}[GlassComposition.from_formula("Li4Al4Cl10O3")] == 1  # hashable
    assert GlassComposition.model_validate_json(comp.model_dump_json()) == comp


@pytest.mark.parametrize("formula, charge", [
    ("LiAlCl3", "+1"), ("LiAlCl4O0.5", "-1"), ("NaGaCl2O0.5", "+1"), ("LiAl0.5Ga0.5Cl4O1", "-2"),
])
def test_charge_balance_rejected_with_charge_sum(formula, charge):
    with pytest.raises(CompositionError) as err:
        GlassComposition.from_formula(formula)
    assert err.value.field == "composition"
    assert f"charge sum = {charge}" in str(err.value)


@pytest.mark.parametrize("formula, fragment", [
    ("KAlCl4", "unknown element 'K'"),
    ("LiAlCl4Xx", "unknown element 'Xx'"),
    ("LiAlCl4(", "cannot read"),
    ("", "empty formula"),
    ("LiCl", "needs an alkali, a network former and Cl"),
    ("Li2Al2Cl8Na", "not charge balanced"),
    ("Li2AlCl5", "A:M ratio"),
])
def test_bad_formulas(formula, fragment):
    with pytest.raises(CompositionError) as err:
        GlassComposition.from_formula(formula)
    assert fragment in str(err.value)


@pytest.mark.parametrize("kwargs, field", [
    ({"alkali": {"Li": 1}, "former": {"Al": 1}, "x": 2.0}, "x"),
    ({"alkali": {"Li": 1}, "former": {"Al": 1}, "x": -0.1}, "x"),
    ({"alkali": {"K": 1}, "former": {"Al": 1}}, "alkali"),
    ({"alkali": {"Li": 0.5}, "former": {"Al": 1}}, "alkali"),
    ({"alkali": {"Li": 1}, "former": {"Si": 1}}, "former"),
    ({"alkali": {"Li": 1}, "former": {"Al": 0.5, "Ga": 0.6}}, "former"),
])
def test_model_validation_names_field(kwargs, field):
    with pytest.raises(CompositionError) as err:
        GlassComposition(**kwargs)
    assert err.value.field == field


@pytest.mark.parametrize("formula, target, n_fu, n_atoms", [
    ("LiAlCl2.5O0.75", 200, 40, 210),   # multiples of 4 f.u. (21 atoms): 189 or 210 -> 210
    ("LiAlCl2.5O0.75", 21, 4, 21),
    ("LiAlCl2.5O0.75", 8, 4, 21),       # fewer than one block but more than one f.u.
    ("LiAlCl4", 198, 33, 198),
    ("LiAlCl3.5O0.25", 100, 16, 92),    # blocks of 4 f.u. = 23 atoms: 92 or 115 -> 92
    ("Li0.5Na0.5Al0.5Ga0.5Cl3O0.5", 100, 18, 99),
])
def test_supercell_size(formula, target, n_fu, n_atoms):
    comp = GlassComposition.from_formula(formula)
    size = supercell_size(comp, target)
    assert (size.n_formula_units, size.n_atoms) == (n_fu, n_atoms)
    assert size.exact == (n_atoms == target)
    assert sum(size.counts.values()) == size.n_atoms
    # integer counts in exactly the composition's ratio: x is never changed
    for el, c in comp.counts_per_fu().items():
        assert size.counts[el] == pytest.approx(c * n_fu, abs=1e-9)
    assert sum(FORMAL_CHARGES[el] * n for el, n in size.counts.items()) == 0
    assert str(n_atoms) in size.message


def test_supercell_size_multiple_of_and_too_few_atoms():
    size = supercell_size("LiAlCl3O0.5", 100, multiple_of=4)
    assert size.n_formula_units % 4 == 0 and size.n_atoms == 110  # 88 or 110 -> 110
    with pytest.raises(StructureError) as err:
        supercell_size("LiAlCl4", 5)
    assert err.value.field == "n_atoms" and "too few atoms" in str(err.value)
    with pytest.raises(StructureError):
        supercell_size("LiAlCl4", 12.5)


def test_density_estimate():
    # parent salts exactly (crystal densities, Mairesse 1977/1979)
    assert estimate_density("LiAlCl4") == pytest.approx(1.974, abs=1e-3)
    assert estimate_density("NaAlCl4") == pytest.approx(1.887, abs=1e-3)
    # O for 2 Cl: lighter but much more compact -> denser; volume additivity value for LACO
    assert estimate_density("LiAlCl2.5O0.75") == pytest.approx(2.067, abs=2e-3)
    xs = [0, 0.25, 0.5, 0.75, 1.0, 1.5]
    rho = [estimate_density(GlassComposition(alkali={"Li": 1}, former={"Al": 1}, x=x)) for x in xs]
    assert np.all(np.diff(rho) > 0)
    # heavier former (Ga) -> denser; ideal mixing of the alkalis lies between the end members
    assert estimate_density("LiGaCl4") > estimate_density("LiAlCl4")
    mixed = estimate_density("Li0.5Na0.5AlCl4")
    assert 1.887 < mixed < 1.974


@pytest.mark.parametrize("name, sg, density", [("LiAlCl4", 14, 1.974), ("NaAlCl4", 19, 1.887)])
def test_prototypes_match_literature(name, sg, density):
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        struct = Structure.from_file(prototype_path(name))
    assert struct.composition.reduced_formula == name
    assert len(struct) == 24  # Z = 4
    assert SpacegroupAnalyzer(struct, symprec=0.01).get_space_group_number() == sg
    assert struct.density == pytest.approx(density, rel=1e-3)
    text = open(prototype_path(name)).read()
    assert "_journal_year" in text and "Mairesse" in text
    atoms = load_prototype(name[:2])
    d = atoms.get_all_distances(mic=True)[np.array(atoms.get_chemical_symbols()) == "Al"]
    al_cl = np.sort(d, axis=1)[:, 1:5]  # four Cl around each Al, the fifth neighbour far away
    # published records: LiAlCl4 Al-Cl 2.12-2.14 A; NaAlCl4 2.14-2.29 A (COD 1004043 as is)
    assert np.all((al_cl > 2.10) & (al_cl < 2.30))
    assert 2.12 < al_cl.mean() < 2.20
    assert np.all(np.sort(d, axis=1)[:, 5] > 3.0)


def _random_atoms() -> Atoms:
    rng = np.random.default_rng(1)
    syms = ["Li"] * 4 + ["Al"] * 4 + ["Cl"] * 10 + ["O"] * 3
    cell = np.array([[9.0, 0.0, 0.0], [1.0, 8.5, 0.0], [0.5, 0.3, 10.0]])
    return Atoms(syms, scaled_positions=rng.uniform(size=(len(syms), 3)), cell=cell, pbc=True)


@pytest.mark.parametrize("name", ["s.cif", "s.xyz", "s.extxyz", "POSCAR", "s.vasp"])
def test_write_read_roundtrip(tmp_path, name):
    atoms = _random_atoms()
    atoms.info["composition"] = "LiAlCl2.5O0.75"
    path = write_structure(atoms, tmp_path / name)
    back = read_structure(path)
    assert back.get_chemical_formula() == atoms.get_chemical_formula()
    np.testing.assert_allclose(back.cell.cellpar(), atoms.cell.cellpar(), atol=1e-5)
    np.testing.assert_allclose(np.sort(back.get_all_distances(mic=True).ravel()),
                               np.sort(atoms.get_all_distances(mic=True).ravel()), atol=1e-4)


def test_cif_reads_back_with_exact_formula(tmp_path):
    from pymatgen.core import Structure

    path = write_structure(_random_atoms(), tmp_path / "laco.cif")
    struct = Structure.from_file(path)
    assert struct.composition.formula == "Li4 Al4 Cl10 O3"
    assert struct.is_ordered  # every occupancy exactly 1


def test_writer_errors(tmp_path):
    with pytest.raises(StructureError) as err:
        write_structure(_random_atoms(), tmp_path / "s.pdb")
    assert err.value.field == "output"
    with pytest.raises(StructureError) as err:
        write_structure(_random_atoms(), tmp_path / "missing" / "s.cif")
    assert "does not exist" in str(err.value)
    with pytest.raises(StructureError):
        read_structure(tmp_path / "none.cif")
