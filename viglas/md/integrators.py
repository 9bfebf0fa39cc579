"""MD integrators: the fused Langevin-BAOAB NVT step, and :class:`Integrator`, which
builds one ASE integrator (Verlet, Bussi, Nose-Hoover chain, MTK or Langevin-BAOAB
NPT) from a saved state, follows temperature and pressure schedules and saves its
state for a checkpoint."""

from __future__ import annotations

import math

import numpy as np

from viglas.errors import ConfigError, MDError
from viglas.md.schedules import Schedule
from viglas.units import EV_A3_TO_GPA


class LangevinBAOAB_NVT:
    """NVT Langevin dynamics, BAOAB splitting, centre of mass fixed; one fused step.

    B: p += F dt/2;  A: x += p dt/(2m);  O: p = c1 p + sqrt((1 - c1^2) m kT) xi;
    A: x += p dt/(2m);  B: p += F' dt/2,  with c1 = exp(-friction dt) and xi standard
    normal (Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34; configurational
    averages exact to O(dt^2), the best of the Langevin splittings). The random kicks and
    the forces are projected so the total momentum stays zero and the centre of mass
    does not diffuse (a Langevin bath otherwise makes it random-walk, which shows up in
    every MSD). It writes ``atoms.arrays`` in place and draws one normal vector per step,
    so the step costs a few numpy operations on top of the single force call: it is what
    keeps the loop overhead of ``run_md`` small (benchmarks/bench_md_overhead.py). The
    forces are those of ``atoms.calc``, constraints on ``atoms`` are not applied.

    Arguments follow ASE's integrators (it stands in for ``ase.md.Langevin``):
    ``timestep`` and ``friction`` in ASE units (``timestep_fs * ase.units.fs``,
    ``friction_per_fs / ase.units.fs``), the step kept as ``dt`` like ASE's ``dyn.dt``.
    """

    def __init__(self, atoms, timestep: float, *, temperature_K: float, friction: float,
                 rng: np.random.Generator):
        from ase import units

        if friction <= 0:
            raise ConfigError("Langevin friction must be > 0", field="friction_per_fs",
                              value=friction * units.fs, allowed="> 0 (1/fs)")
        self.atoms, self.dt, self.rng, self.friction = atoms, float(timestep), rng, float(friction)
        m = np.asarray(atoms.get_masses(), dtype=np.float64)[:, None]
        self._m = m
        self._mtot = float(m.sum())
        self._half_dt_over_m = 0.5 * self.dt / m
        self.c1 = math.exp(-self.friction * self.dt)
        self._kB = units.kB
        # forces at the end of the last step, and the positions they belong to: the next
        # step starts from them without asking the calculator again (its state check and
        # copies cost ~0.6 % of a 500-atom ionic step, measured)
        self._forces: np.ndarray | None = None
        self._positions_seen: np.ndarray | None = None
        self.nsteps = 0
        if atoms.arrays.get("momenta") is None:
            atoms.set_momenta(np.zeros((len(atoms), 3)), apply_constraint=False)
        self.set_temperature(temperature_K=temperature_K)

    def set_temperature(self, temperature_K: float) -> None:
        self.temperature_K = float(temperature_K)
        kT = self._kB * self.temperature_K
        self._sigma = np.sqrt((1.0 - self.c1 * self.c1) * kT * self._m)

    def _get_forces(self) -> np.ndarray:
        f = np.array(self.atoms.calc.get_forces(self.atoms), dtype=np.float64)  # own copy
        f -= self._m * (f.sum(axis=0) / self._mtot)  # no net force on the COM
        return f

    def step(self) -> np.ndarray:
        atoms = self.atoms
        p = atoms.arrays["momenta"]
        x = atoms.arrays["positions"]
        f = self._forces
        if f is None or not np.array_equal(self._positions_seen, x):
            f = self._get_forces()  # first step, or someone moved the atoms
        hdt = 0.5 * self.dt
        p += hdt * f                                          # B
        x += p * self._half_dt_over_m                         # A
        xi = self.rng.standard_normal(p.shape)
        xi *= self._sigma
        p *= self.c1                                          # O
        p += xi
        p -= self._m * (p.sum(axis=0) / self._mtot)  # total momentum zero
        x += p * self._half_dt_over_m                         # A
        f = self._get_forces()
        p += hdt * f                                          # B
        self._forces = f
        self._positions_seen = x.copy()
        self.nsteps += 1
        return f


class Integrator:
    """Wraps one ASE integrator: builds it from state, sets targets, saves state."""

    def __init__(self, atoms, ensemble: str, thermostat: str | None, timestep_fs: float,
                 temperature_K: Schedule | None, pressure_GPa: Schedule | None,
                 rng: np.random.Generator, friction_per_fs: float, tdamp_fs: float,
                 pdamp_fs: float, step: int, state: dict[str, np.ndarray]):
        """``timestep_fs`` in fs; ``temperature_K`` / ``pressure_GPa``: the target
        schedules of :func:`viglas.md.run_md` (K, GPa; None: none). The ASE integrators
        take the step in ASE time units (``dt_ase``; ASE calls it ``timestep``/``dt``)."""
        from ase import units

        self.atoms, self.ensemble, self.thermostat = atoms, ensemble, thermostat
        self.temperature_K, self.pressure_GPa = temperature_K, pressure_GPa
        self.timestep_fs = timestep_fs
        dt_ase = timestep_fs * units.fs
        t_now = temperature_K(step * timestep_fs) if temperature_K is not None else None
        t_ref = temperature_K.max if temperature_K is not None else None
        self._last_t = t_now
        self._last_p = None
        if ensemble == "nve":
            from ase.md.verlet import VelocityVerlet

            self.dyn = VelocityVerlet(atoms, dt_ase)
        elif ensemble == "nvt" and thermostat == "langevin":
            from ase.constraints import FixCom

            # the constraint only tells the observers that 3 DOF are removed; the fused
            # integrator keeps the centre of mass fixed itself
            atoms.set_constraint(FixCom())
            self.dyn = LangevinBAOAB_NVT(atoms, dt_ase, temperature_K=t_now,
                                         friction=friction_per_fs / units.fs, rng=rng)
        elif ensemble == "nvt" and thermostat == "bussi":
            from ase.md.bussi import Bussi

            self.dyn = Bussi(atoms, dt_ase, temperature_K=t_now, taut=tdamp_fs * units.fs, rng=rng)
            self.dyn.transferred_energy = float(state.get("transferred_energy", 0.0))
        elif ensemble == "nvt" and thermostat == "nose-hoover":
            from ase.md.nose_hoover_chain import NoseHooverChainNVT

            self.dyn = NoseHooverChainNVT(atoms, dt_ase, temperature_K=t_ref,
                                          tdamp=tdamp_fs * units.fs, tchain=3)
            th = self.dyn._thermostat
            if "eta" in state:
                th._eta[:] = state["eta"]
                th._p_eta[:] = state["p_eta"]
            self._set_nhc_temperature(t_now)
        elif ensemble == "npt" and thermostat == "nose-hoover":
            from ase.md.nose_hoover_chain import IsotropicMTKNPT

            p_now = pressure_GPa(step * timestep_fs)
            self.dyn = IsotropicMTKNPT(atoms, dt_ase, temperature_K=t_ref,
                                       pressure_au=p_now / EV_A3_TO_GPA,
                                       tdamp=tdamp_fs * units.fs, pdamp=pdamp_fs * units.fs)
            d = self.dyn
            if "eta" in state:
                d._thermostat._eta[:] = state["eta"]
                d._thermostat._p_eta[:] = state["p_eta"]
                d._barostat._xi[:] = state["xi"]
                d._barostat._p_xi[:] = state["p_xi"]
                d._eps = float(state["eps"])
                d._p_eps = float(state["p_eps"])
                d._volume0 = float(state["volume0"])
                d._cell0 = np.array(state["cell0"])
            self._set_nhc_temperature(t_now)
            self._last_p = p_now
        elif ensemble == "npt" and thermostat == "langevin":
            from ase.md.langevinbaoab import LangevinBAOAB

            import warnings

            p_now = pressure_GPa(step * timestep_fs)
            with warnings.catch_warnings():  # "Using heuristic P_mass ..." is expected
                warnings.simplefilter("ignore", UserWarning)
                self.dyn = LangevinBAOAB(atoms, dt_ase, temperature_K=t_now,
                                         externalstress=-p_now / EV_A3_TO_GPA, hydrostatic=True,
                                         T_tau=1.0 / friction_per_fs * units.fs,
                                         P_tau=pdamp_fs * units.fs, rng=rng)
            if "p_eps" in state:
                self.dyn.p_eps = float(state["p_eps"])
                if "force_eps" in state:
                    # ASE computes the cell force before the last velocity half-step;
                    # recomputing it here (after) would make every restart, and so the
                    # trajectory, depend on where the run was checkpointed
                    self.dyn.force_eps = float(state["force_eps"])
                else:  # checkpoint of an older viglas
                    self.dyn._update_force_eps()
            self._last_p = p_now
        else:  # pragma: no cover - validated before
            raise ConfigError("unsupported ensemble/thermostat", field="thermostat",
                              value=(ensemble, thermostat))

    def _set_nhc_temperature(self, t_K: float) -> None:
        """Set the target of a Nose-Hoover chain (and MTK barostat) to ``t_K``."""
        from ase import units

        kT = units.kB * t_K
        d = self.dyn
        try:
            d._thermostat._kT = kT
            if hasattr(d, "_barostat"):
                d._barostat._kT = kT
                d._kT = kT
                d._temperature_K = t_K
        except AttributeError as exc:  # pragma: no cover - ASE internals changed
            raise MDError("this ASE version's Nose-Hoover integrator has no settable target",
                          field="thermostat", value=self.thermostat,
                          hint="use thermostat 'langevin' or 'bussi'") from exc

    def set_targets(self, step: int) -> None:
        """Apply the scheduled temperature/pressure at ``step``."""
        t_fs = step * self.timestep_fs
        if (self.temperature_K is not None and self.ensemble != "nve"
                and not self.temperature_K.is_constant):
            t = self.temperature_K(t_fs)
            if t != self._last_t:
                self._last_t = t
                from ase import units

                d = self.dyn
                if self.thermostat == "langevin":
                    d.set_temperature(temperature_K=t)
                elif self.thermostat == "bussi":
                    d.temp = t * units.kB
                    d.target_kinetic_energy = 0.5 * d.temp * d.ndof
                else:
                    self._set_nhc_temperature(t)
        if self.pressure_GPa is not None and not self.pressure_GPa.is_constant:
            p = self.pressure_GPa(t_fs)
            if p != self._last_p:
                self._last_p = p
                if self.thermostat == "nose-hoover":
                    self.dyn._pressure_au = p / EV_A3_TO_GPA
                else:
                    self.dyn.externalstress = -p / EV_A3_TO_GPA
                    self.dyn._update_force_eps()

    def target_temperature(self) -> float:
        return float(self._last_t) if self._last_t is not None else float("nan")

    def conserved_energy(self) -> float:
        atoms = self.atoms
        if self.ensemble == "nve":
            return float(atoms.get_potential_energy() + atoms.get_kinetic_energy())
        if self.thermostat == "bussi":
            return float(atoms.get_potential_energy() + atoms.get_kinetic_energy()
                         - self.dyn.transferred_energy)
        if (self.thermostat == "nose-hoover" and self.temperature_K is not None
                and self.temperature_K.is_constant):
            return float(self.dyn.get_conserved_energy())
        return float("nan")

    def state(self) -> dict[str, np.ndarray]:
        d = self.dyn
        if self.thermostat == "bussi" and self.ensemble == "nvt":
            return {"transferred_energy": np.array(d.transferred_energy)}
        if self.thermostat == "nose-hoover" and self.ensemble == "nvt":
            return {"eta": d._thermostat._eta.copy(), "p_eta": d._thermostat._p_eta.copy()}
        if self.thermostat == "nose-hoover" and self.ensemble == "npt":
            return {"eta": d._thermostat._eta.copy(), "p_eta": d._thermostat._p_eta.copy(),
                    "xi": d._barostat._xi.copy(), "p_xi": d._barostat._p_xi.copy(),
                    "eps": np.array(d._eps), "p_eps": np.array(d._p_eps),
                    "volume0": np.array(d._volume0), "cell0": np.array(d._cell0)}
        if self.thermostat == "langevin" and self.ensemble == "npt":
            return {"p_eps": np.array(d.p_eps), "force_eps": np.array(d.force_eps)}
        return {}

