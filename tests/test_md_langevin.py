"""The fused NVT Langevin (BAOAB) integrator samples the right ensemble."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

from viglas.errors import ConfigError
from viglas.md import LangevinBAOAB_NVT, run_md


class Einstein(Calculator):
    """Every atom tied to its own anchor by a spring k (eV/Å^2)."""

    implemented_properties = ("energy", "forces")

    def __init__(self, anchors, k):
        super().__init__()
        self.anchors, self.k = np.array(anchors), float(k)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = atoms.positions - self.anchors
        self.results = {"energy": 0.5 * self.k * float(np.sum(d * d)), "forces": -self.k * d}


def _crystal(n=240, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 30, (n, 3))
    symbols = ["Li", "Cl", "O", "Na"] * (n // 4)
    a = Atoms(symbols, positions=pos, cell=[30, 30, 30], pbc=True)
    a.calc = Einstein(pos, k=2.0)
    return a


@pytest.mark.parametrize("dt_fs", [1.0, 4.0])
def test_baoab_samples_canonical_harmonic(dt_fs):
    """<k x^2> = kT per DOF for any dt (BAOAB is exact in configuration for harmonic
    springs) and the kinetic temperature equals the target, counting the 3 COM DOF."""
    atoms = _crystal()
    T = 600.0
    dyn = LangevinBAOAB_NVT(atoms, dt_fs * units.fs, temperature_K=T, friction=0.05 / units.fs,
                            rng=np.random.default_rng(3))
    m = atoms.get_masses()[:, None]
    com0 = atoms.get_center_of_mass()
    for _ in range(200):  # equilibrate (1/friction = 20 fs)
        dyn.step()
    pot, kin = [], []
    for _ in range(1500):
        dyn.step()
        d = atoms.positions - atoms.calc.anchors
        pot.append(np.mean(2.0 * atoms.calc.k * d * d / 2.0))  # k <x^2> per DOF
        p = atoms.get_momenta()
        kin.append(np.sum(p * p / m) / (3 * len(atoms) - 3))
        assert np.abs(p.sum(axis=0)).max() < 1e-9
    kT = units.kB * T
    # 720 DOF x ~70 independent samples: relative error ~ 0.2 %; allow 2 %
    assert np.mean(pot) / kT == pytest.approx(1.0, abs=0.02)
    if dt_fs == 1.0:  # kinetic T of BAOAB carries an O(dt^2) bias at large steps
        assert np.mean(kin) / kT == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(atoms.get_center_of_mass(), com0, atol=1e-9)


def test_baoab_relaxes_velocity_at_friction_rate():
    """Velocity autocorrelation decays as exp(-friction t) for free particles."""
    atoms = _crystal(n=400)
    atoms.calc.k = 0.0
    gamma = 0.02 / units.fs
    dyn = LangevinBAOAB_NVT(atoms, 1.0 * units.fs, temperature_K=300, friction=gamma,
                            rng=np.random.default_rng(1))
    for _ in range(300):
        dyn.step()
    v0 = atoms.get_velocities().copy()
    for _ in range(50):
        dyn.step()
    c = np.sum(v0 * atoms.get_velocities()) / np.sum(v0 * v0)
    assert c == pytest.approx(np.exp(-0.02 * 50), abs=0.06)


def test_baoab_temperature_change_and_bad_friction(tmp_path):
    atoms = _crystal(n=80)
    dyn = LangevinBAOAB_NVT(atoms, 1.0 * units.fs, temperature_K=300, friction=0.1 / units.fs,
                            rng=np.random.default_rng(0))
    dyn.set_temperature(temperature_K=1200)
    for _ in range(400):
        dyn.step()
    assert atoms.get_temperature() > 700
    with pytest.raises(ConfigError) as e:
        run_md(_crystal(n=8), Einstein(np.zeros((8, 3)), 1.0), thermostat="langevin",
               temperature_K=300, steps=5, friction_per_fs=0.0, workdir=tmp_path)
    assert e.value.field == "friction_per_fs"
