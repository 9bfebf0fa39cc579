"""Ionic potential: parameters file, exact derivatives, neighbour-list reuse, DSF vs Ewald."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from viglas.errors import CalculatorError, ConfigError
from viglas.potentials import (IonicParameters, IonicPotential, load_parameters,
                               save_parameters, trial_parameters_path)
from viglas.potentials.ewald import ewald_for_atoms
from viglas.units import COULOMB_EV_A


def random_cell(counts: dict[str, int], density_g_cm3: float, seed: int = 0,
                dmin: float = 1.9) -> Atoms:
    """Random cubic cell with a minimum distance (a crude disordered start)."""
    from ase.data import atomic_masses, atomic_numbers

    rng = np.random.default_rng(seed)
    syms = [s for s, c in counts.items() for _ in range(c)]
    mass = sum(atomic_masses[atomic_numbers[s]] for s in syms)
    L = (mass * 1.66053906660 / density_g_cm3) ** (1 / 3)
    pos: list[np.ndarray] = []
    for _ in syms:
        while True:
            p = rng.uniform(0, L, 3)
            if not pos:
                break
            d = np.asarray(pos) - p
            d -= L * np.round(d / L)
            if np.min(np.einsum("ij,ij->i", d, d)) > dmin**2:
                break
        pos.append(p)
    return Atoms(syms, positions=pos, cell=[L] * 3, pbc=True)


LACO_LIKE = {"Li": 16, "Al": 16, "Cl": 40, "O": 12}


@pytest.fixture(scope="module")
def params() -> IonicParameters:
    return load_parameters("trial")


@pytest.fixture(scope="module")
def cell84() -> Atoms:
    return random_cell(LACO_LIKE, 2.2, seed=1)


def test_trial_file_loads_and_round_trips(params, tmp_path):
    assert params.charge_scale == 0.75 and params.coulomb.method == "dsf"
    assert params.charge("O") == pytest.approx(-1.5)
    assert params.pair("Cl", "Al") is params.pairs["Al-Cl"]
    out = save_parameters(params, tmp_path / "p.yaml")
    again = load_parameters(out)
    assert again == params
    assert "TRIAL" in params.description


def test_pair_keys_are_canonicalised_and_errors_name_the_field():
    d = {"schema": "viglas-ionic/1", "charges": {"Li": 1, "Cl": -1},
         "pairs": {"Li-Cl": {"A": 100.0, "rho": 0.3}}}
    p = IonicParameters.model_validate(d)
    assert list(p.pairs) == ["Cl-Li"]
    from viglas.potentials import parameters_from_dict

    bad = dict(d, pairs={"Cl-Li": {"A": 100.0, "rho": -0.3}})
    with pytest.raises(ConfigError) as exc:
        parameters_from_dict(bad)
    assert exc.value.field == "pairs.Cl-Li.rho"
    with pytest.raises(ConfigError):
        parameters_from_dict(dict(d, pairs={"Li-Xx": {"A": 1.0, "rho": 0.3}}))
    with pytest.raises(ConfigError):  # pair of an element without a charge
        parameters_from_dict(dict(d, pairs={"Li-O": {"A": 1.0, "rho": 0.3}}))


def test_default_parameters_missing_names_trial(monkeypatch, tmp_path):
    import viglas.potentials.parameters as mod

    monkeypatch.setattr(mod, "chgnet_ionic_path", lambda: tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as exc:
        load_parameters(None)
    assert "trial" in exc.value.one_line()


def test_unknown_element_fails_up_front(params):
    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    a.calc = IonicPotential(params)
    with pytest.raises(ConfigError) as exc:
        a.get_potential_energy()
    assert "Cu" in exc.value.one_line()
    a.pbc = False
    with pytest.raises(CalculatorError):
        IonicPotential(params).get_potential_energy(a)


def test_forces_are_minus_gradient_and_sum_to_zero(params, cell84):
    a = cell84.copy()
    a.calc = IonicPotential(params)
    f = a.get_forces()
    assert np.abs(f.sum(axis=0)).max() < 1e-10  # Newton's third law
    h = 1e-5
    for idx, k in [(0, 0), (20, 2), (50, 1), (83, 0)]:
        e = []
        for sgn in (1, -1):
            b = a.copy()
            b.positions[idx, k] += sgn * h
            b.calc = IonicPotential(params)
            e.append(b.get_potential_energy())
        assert f[idx, k] == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=2e-6)


def test_stress_is_strain_derivative(params, cell84):
    a = cell84.copy()
    a.calc = IonicPotential(params)
    s = a.get_stress(voigt=False)
    v, h = a.get_volume(), 1e-6
    for p, q in [(0, 0), (2, 2), (1, 2), (0, 1)]:
        eps = np.zeros((3, 3))
        eps[p, q] += h / 2
        eps[q, p] += h / 2
        e = []
        for sgn in (1, -1):
            b = a.copy()
            b.set_cell(a.cell[:] @ (np.eye(3) + sgn * eps), scale_atoms=True)
            b.calc = IonicPotential(params)
            e.append(b.get_potential_energy())
        assert s[p, q] == pytest.approx((e[0] - e[1]) / (2 * h) / v, abs=1e-7)


def test_small_cell_images_and_triclinic(params):
    """A cell smaller than the cutoff sees its own images; energy per atom is size-free."""
    small = bulk("LiCl", "rocksalt", a=5.14)  # 2-atom fcc primitive (triclinic) cell
    big = bulk("LiCl", "rocksalt", a=5.14, cubic=True).repeat(2)
    es = []
    for a in (small, big):
        a.calc = IonicPotential(params)
        es.append(a.get_potential_energy() / len(a))
    assert es[0] == pytest.approx(es[1], abs=1e-9)
    # trial set: LiCl rocksalt at the experimental lattice constant is near zero pressure
    p_gpa = -big.get_stress()[:3].mean() * 160.21766
    assert abs(p_gpa) < 0.5


def test_verlet_list_reuse_matches_fresh_build(params, cell84):
    rng = np.random.default_rng(3)
    a = cell84.copy()
    calc = IonicPotential(params, skin=1.0)
    a.calc = calc
    a.get_forces()
    assert calc.n_rebuilds == 1
    # small moves and a small cell strain (NPT-like) keep the list
    a.positions += rng.normal(scale=0.1, size=a.positions.shape)
    a.set_cell(a.cell[:] * 1.01, scale_atoms=True)
    f, s = a.get_forces(), a.get_stress()
    assert calc.n_rebuilds == 1
    fresh = IonicPotential(params, skin=0.0)
    b = a.copy()
    b.calc = fresh
    np.testing.assert_allclose(f, b.get_forces(), atol=1e-10)
    np.testing.assert_allclose(s, b.get_stress(), atol=1e-12)
    # a big move forces a rebuild
    a.positions[0] += 0.8
    a.get_forces()
    assert calc.n_rebuilds == 2


def test_numba_and_numpy_backends_agree(params, cell84):
    a = cell84.copy()
    a.set_cell(a.cell[:] @ np.array([[1.0, 0.05, 0.0], [0.0, 1.0, 0.02], [0.0, 0.0, 1.0]]),
               scale_atoms=True)  # triclinic
    fast, ref = IonicPotential(params, backend="auto"), IonicPotential(params, backend="numpy")
    assert ref.backend == "numpy"
    assert fast.get_potential_energy(a) == pytest.approx(ref.get_potential_energy(a), abs=1e-9)
    np.testing.assert_allclose(fast.get_forces(a), ref.get_forces(a), atol=1e-10)
    np.testing.assert_allclose(fast.get_stress(a), ref.get_stress(a), atol=1e-13)
    assert fast.min_distance == pytest.approx(ref.min_distance)
    with pytest.raises(CalculatorError):
        IonicPotential(params, backend="fortran")


@pytest.mark.parametrize("case", ["primitive", "cell84"])
def test_cell_list_equals_matscipy_half_list(case, cell84):
    """numba cell list == matscipy list (same pairs, same canonical order), unwrapped input."""
    from matscipy.neighbours import neighbour_list

    from viglas.potentials.ionic import half_neighbour_list

    a = bulk("LiCl", "rocksalt", a=5.14) if case == "primitive" else cell84.copy()
    if case == "cell84":
        a.set_cell(a.cell[:] @ np.array([[1, 0.1, 0], [0, 1, 0.05], [0, 0, 1]]),
                   scale_atoms=True)
    rng = np.random.default_rng(1)
    cell = np.asarray(a.cell)
    pos = a.positions + rng.integers(-2, 3, size=a.positions.shape) @ cell
    for rc in (2.9, 11.0):
        i, j, S = half_neighbour_list(pos, cell, rc)
        ri, rj, rS = neighbour_list("ijS", positions=pos, cell=cell, pbc=[True] * 3, cutoff=rc)
        lexpos = (rS[:, 0] > 0) | ((rS[:, 0] == 0) & ((rS[:, 1] > 0) | ((rS[:, 1] == 0)
                                                                       & (rS[:, 2] > 0))))
        keep = (ri < rj) | ((ri == rj) & lexpos)
        ri, rj, rS = ri[keep], rj[keep], rS[keep]
        order = np.lexsort((rS[:, 2], rS[:, 1], rS[:, 0], rj, ri))
        np.testing.assert_array_equal(i, ri[order])
        np.testing.assert_array_equal(j, rj[order])
        np.testing.assert_array_equal(S, rS[order])
        d = np.linalg.norm(pos[j] - pos[i] + S @ cell, axis=1)
        assert d.max() < rc and len(d) > 0


def _melt_like(params, seed=2, extra_steps=0):
    """Random LACO-like cell, briefly equilibrated at 1500 K with the potential
    (and a second snapshot ``extra_steps`` later when asked)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    a = random_cell(LACO_LIKE, 2.2, seed=seed, dmin=2.0)
    a.calc = IonicPotential(params)
    thermalize_momenta(a, temperature_K=1500, rng=np.random.default_rng(seed))
    dyn = Langevin(a, 1.0 * units.fs, temperature_K=1500, friction=0.05 / units.fs,
                   fixcm=False, rng=np.random.default_rng(seed))
    dyn.run(300)
    if not extra_steps:
        return a
    first = a.copy()
    dyn.run(extra_steps)
    return first, a


def test_dsf_coulomb_against_ewald(params, capsys):
    """Report DSF (alpha 0.2/A, rc 10 A) vs converged Ewald on a melt-like cell."""
    a0, a = _melt_like(params, extra_steps=200)
    coul = params.model_copy(deep=True)
    coul.pairs = {}
    q = np.array([params.charge(s) for s in a.get_chemical_symbols()])
    e0_dsf = IonicPotential(coul).get_potential_energy(a0)
    e0_ref = ewald_for_atoms(a0, q, r_cut=9.0, tol=1e-10).energy
    a.calc = IonicPotential(coul)
    e_dsf, f_dsf, s_dsf = a.get_potential_energy(), a.get_forces(), a.get_stress(voigt=False)
    ref = ewald_for_atoms(a, q, r_cut=9.0, tol=1e-10)
    n = len(a)
    de = (e_dsf - ref.energy) / n
    dde = ((e_dsf - e0_dsf) - (ref.energy - e0_ref)) / n  # error of an energy difference
    rel_rms = math.sqrt(np.mean((f_dsf - ref.forces) ** 2) / np.mean(ref.forces**2))
    dp_gpa = -(np.trace(s_dsf) - np.trace(ref.stress)) / 3 * 160.21766
    with capsys.disabled():
        print(f"\nDSF vs Ewald ({n} atoms, melt-like): dE = {de * 1000:.1f} meV/atom "
              f"(offset), error of E(t2)-E(t1) = {dde * 1000:.2f} meV/atom, "
              f"force RMS rel. error = {rel_rms:.3f}, dP = {dp_gpa:.2f} GPa "
              f"(Ewald E = {ref.energy / n:.3f} eV/atom)")
    assert abs(de) < 0.1        # eV/atom: DSF energies carry a near-constant offset
    assert abs(dde) < 0.005     # eV/atom: differences between configurations agree
    assert rel_rms < 0.10
    # the full potential's force error is the Coulomb one; a random (unrelaxed) cell is worse
    assert ref.n_kvectors > 100


def test_ewald_reproduces_madelung_constant():
    a = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    q = np.where(a.numbers == 11, 1.0, -1.0)
    e = ewald_for_atoms(a, q).energy / (len(a) / 2)
    assert e == pytest.approx(-1.747565 * COULOMB_EV_A / 2.82, rel=1e-6)


def test_nve_energy_conservation_and_momentum(params, capsys):
    from ase import units
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    a = _melt_like(params, seed=4)
    thermalize_momenta(a, temperature_K=1200, rng=np.random.default_rng(1))
    Stationary(a)
    dyn = VelocityVerlet(a, 1.0 * units.fs)
    etot = []
    for _ in range(40):
        dyn.run(10)
        etot.append(a.get_total_energy())
    etot = np.array(etot) / len(a)
    slope = np.polyfit(np.arange(len(etot)) * 10e-3, etot, 1)[0]  # eV/atom/ps
    fluct = etot.std()
    p = a.get_momenta().sum(axis=0)
    with capsys.disabled():
        print(f"\nNVE 400 fs, dt 1 fs, 84 atoms ~1200 K: drift {slope * 1e3:.3f} meV/atom/ps, "
              f"std {fluct * 1e3:.3f} meV/atom, |P_total| {np.abs(p).max():.2e} (ASE momentum units)")
    assert abs(slope) < 5e-3
    assert fluct < 5e-3
    assert np.abs(p).max() < 1e-9


def test_trial_path_is_shipped():
    assert trial_parameters_path().exists()
