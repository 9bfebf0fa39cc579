"""Three-body (angle) term of the ionic potential: exact derivatives, backends, format."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms

from viglas.errors import ConfigError
from viglas.potentials import IonicPotential, load_parameters, save_parameters
from viglas.potentials.parameters import parameters_from_dict

from test_potential import LACO_LIKE, random_cell

TB = {"Al": {"k": 3.0, "cos0": -1.0 / 3.0, "gamma": 1.2, "cutoff": 3.4,
             "neighbours": ["Cl", "O"]},
      "Li": {"k": 0.7, "cos0": -0.5, "gamma": 0.8, "cutoff": 3.2, "neighbours": ["O"]}}


@pytest.fixture(scope="module")
def params3():
    d = load_parameters("trial").to_yaml_dict()
    d["three_body"] = TB
    return parameters_from_dict(d)


@pytest.fixture(scope="module")
def cell():
    return random_cell(LACO_LIKE, 2.2, seed=3)


def _e(atoms, p, backend="auto"):
    a = atoms.copy()
    a.calc = IonicPotential(p, backend=backend)
    return a.get_potential_energy(), a


def test_energy_matches_direct_triplet_sum(params3, cell):
    """E3 from the calculator equals a plain python loop over triplets."""
    e_all, a = _e(cell, params3)
    e3 = a.calc.energy_terms["three_body"]
    d = params3.to_yaml_dict()
    d.pop("three_body")
    e_pair, _ = _e(cell, parameters_from_dict(d))
    assert e_all - e_pair == pytest.approx(e3, rel=1e-10)
    # direct sum with minimum-image vectors (cell > 2 cutoffs)
    pos, L = cell.positions, cell.cell.array.diagonal()
    sym = cell.get_chemical_symbols()
    ref = 0.0
    for c, sc in enumerate(sym):
        tb = params3.three_body.get(sc)
        if tb is None:
            continue
        bonds = []
        for j, sj in enumerate(sym):
            if j == c or sj not in tb.neighbours:
                continue
            v = pos[j] - pos[c]
            v -= L * np.round(v / L)
            if np.linalg.norm(v) < tb.cutoff:
                bonds.append(v)
        for x in range(len(bonds)):
            for y in range(x + 1, len(bonds)):
                u, w = bonds[x], bonds[y]
                cs = u @ w / np.linalg.norm(u) / np.linalg.norm(w)
                ref += tb.k * (cs - tb.cos0) ** 2 * tb.screening(np.linalg.norm(u)) * \
                    tb.screening(np.linalg.norm(w))
    assert ref > 0.5  # the test cell has angles to count
    assert e3 == pytest.approx(ref, rel=1e-10)


def test_forces_and_stress_are_exact_derivatives(params3, cell):
    e0, a = _e(cell, params3)
    f = a.get_forces()
    assert np.abs(f.sum(axis=0)).max() < 1e-9
    h = 1e-5
    rng = np.random.default_rng(0)
    for idx in rng.choice(len(cell), 8, replace=False):
        for x in range(3):
            b = cell.copy()
            b.positions[idx, x] += h
            ep, _ = _e(b, params3)
            b.positions[idx, x] -= 2 * h
            em, _ = _e(b, params3)
            assert -(ep - em) / (2 * h) == pytest.approx(f[idx, x], abs=2e-6)
    s = a.get_stress(voigt=False)
    vol = cell.get_volume()
    for (x, y) in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2)]:
        eps = np.eye(3)
        eps[x, y] += h
        b = cell.copy()
        b.set_cell(cell.cell.array @ eps, scale_atoms=True)
        ep, _ = _e(b, params3)
        eps[x, y] -= 2 * h
        b = cell.copy()
        b.set_cell(cell.cell.array @ eps, scale_atoms=True)
        em, _ = _e(b, params3)
        assert (ep - em) / (2 * h) / vol == pytest.approx(s[x, y], abs=1e-7)


def test_numba_and_numpy_agree_and_term_is_smooth(params3, cell):
    ea, a = _e(cell, params3, "numba")
    eb, b = _e(cell, params3, "numpy")
    assert ea == pytest.approx(eb, rel=1e-12)
    np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-10)
    np.testing.assert_allclose(a.get_stress(), b.get_stress(), atol=1e-12)
    # one Al with two O: energy goes continuously to zero as one O leaves the cutoff
    tb = params3.three_body["Al"]
    L = 20.0
    es = []
    for r in (tb.cutoff - 0.02, tb.cutoff - 1e-4, tb.cutoff + 1e-4):
        m = Atoms("AlOO", positions=[[10, 10, 10], [11.8, 10, 10], [10, 10 + r, 10]],
                  cell=[L] * 3, pbc=True)
        m.calc = IonicPotential(params3)
        m.get_potential_energy()
        es.append(m.calc.energy_terms["three_body"])
    assert es[0] > 0 and es[1] < 1e-12 * max(1.0, es[0]) + 1e-30 and es[2] == 0.0


def test_three_body_is_optional_in_the_file(params3, tmp_path):
    p = save_parameters(params3, tmp_path / "p3.yaml")
    text = p.read_text()
    assert "three_body:" in text and "gamma: Angstrom" in text
    again = load_parameters(p)
    assert again.three_body["Al"].neighbours == ["Cl", "O"]
    assert again.model_copy(update={"units": params3.units}) == params3
    plain = save_parameters(load_parameters("trial"), tmp_path / "p.yaml").read_text()
    assert "three_body" not in plain


@pytest.mark.parametrize("bad, field", [
    ({"Al": {**TB["Al"], "neighbours": ["Xx"]}}, "three_body.Al.neighbours"),
    ({"Al": {**TB["Al"], "cutoff": 9.0}}, "three_body"),
    ({"Al": {**TB["Al"], "cos0": -1.5}}, "three_body.Al.cos0"),
    ({"Al": {**TB["Al"], "fixed": ["rho"]}}, "three_body.Al.fixed"),
    ({"Si": TB["Al"]}, "three_body.Si"),
])
def test_bad_three_body_names_the_field(bad, field):
    d = load_parameters("trial").to_yaml_dict()
    d["three_body"] = bad
    with pytest.raises(ConfigError) as e:
        parameters_from_dict(d)
    assert e.value.field.startswith(field)


def test_angle_term_prefers_its_angle():
    """An AlCl3 fragment: the term is zero at cos0 and grows quadratically away from it."""
    d = load_parameters("trial").to_yaml_dict()
    d["three_body"] = {"Al": {"k": 1.0, "cos0": -0.5, "gamma": 1.0, "cutoff": 3.0,
                              "neighbours": ["Cl"]}}
    p = parameters_from_dict(d)

    def e3(theta_deg):
        t = math.radians(theta_deg)
        m = Atoms("AlClCl", positions=[[0, 0, 0], [2.1, 0, 0], [2.1 * math.cos(t), 2.1 * math.sin(t), 0]],
                  cell=[20] * 3, pbc=True)
        m.calc = IonicPotential(p)
        m.get_potential_energy()
        return m.calc.energy_terms["three_body"]

    f2 = math.exp(1.0 / (2.1 - 3.0)) ** 2
    assert e3(120) == pytest.approx(0.0, abs=1e-14)
    assert e3(90) == pytest.approx(0.25 * f2, rel=1e-10)
    assert e3(180) == pytest.approx(0.25 * f2, rel=1e-10)
