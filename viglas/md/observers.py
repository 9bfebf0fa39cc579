"""What watches an MD run: the guards and thermo/frame recording (:class:`Observer`)
and the progress display (:class:`Progress`)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from viglas.errors import MDError
from viglas.md.integrators import Integrator
from viglas.units import EV_A3_TO_GPA, density_g_cm3


class Observer:
    """Guards and thermo/frame recording with per-segment cached masses and DOF."""

    def __init__(self, atoms, calc, integ: Integrator, timestep_fs: float,
                 paths: dict[str, Path], max_temperature_K: float, min_distance_A: float,
                 store_velocities: bool):
        from ase import units

        self.atoms, self.calc, self.integ = atoms, calc, integ
        self.timestep_fs = timestep_fs
        self.paths = paths
        self.max_temperature_K, self.min_distance_A = max_temperature_K, min_distance_A
        self.store_velocities = store_velocities
        m = atoms.get_masses()
        self.inv_m = (1.0 / m)[:, None]
        self.mass_amu = float(m.sum())
        self.dof = atoms.get_number_of_degrees_of_freedom()
        self.kB = units.kB
        self.fs = units.fs
        self.is_ionic = hasattr(calc, "min_distance") and hasattr(calc, "reset_neighbor_list")
        self.has_stress = "stress" in getattr(calc, "implemented_properties", ())

    def _hint(self) -> str:
        ck = self.paths["ckpt"]
        return (f"last good checkpoint kept: {ck}" if ck.exists()
                else "no checkpoint was written yet") + \
            "; try a smaller time step, a relaxed start structure or other potential parameters"

    def _ekin_temp(self) -> tuple[float, float]:
        p = self.atoms.arrays.get("momenta")
        if p is None:
            return 0.0, 0.0
        ekin = 0.5 * float(np.sum(p * p * self.inv_m))
        return ekin, 2.0 * ekin / (self.dof * self.kB)

    def guard(self, step: int) -> None:
        atoms, calc = self.atoms, self.calc
        e = calc.get_potential_energy(atoms)
        f = calc.results.get("forces")
        if f is None:
            f = calc.get_forces(atoms)
        if not (math.isfinite(e) and np.isfinite(f).all()):
            raise MDError(f"non-finite energy or forces at step {step}", field="energy",
                          value=float(e), hint=self._hint())
        t = self._ekin_temp()[1]
        if not math.isfinite(t) or t > self.max_temperature_K:
            raise MDError(f"runaway temperature at step {step}", field="temperature_K",
                          value=round(float(t), 1),
                          allowed=f"<= {self.max_temperature_K:g} K (max_temperature_K)",
                          hint=self._hint())
        if self.min_distance_A > 0:
            if self.is_ionic:
                dmin = float(calc.min_distance)
            else:
                from matscipy.neighbours import neighbour_list

                d = neighbour_list("d", atoms, self.min_distance_A)
                dmin = float(d.min()) if len(d) else float("inf")
            if dmin < self.min_distance_A:
                raise MDError(f"atoms too close at step {step}", field="min_distance_A",
                              value=round(dmin, 4), allowed=f">= {self.min_distance_A} A",
                              hint=self._hint())

    def record(self, step: int, frames: dict, rows: list, *, save: bool, log: bool) -> None:
        atoms, calc = self.atoms, self.calc
        epot = float(calc.get_potential_energy(atoms))
        ekin, temp = self._ekin_temp()
        cell = atoms.cell.array
        vol = abs(float(np.linalg.det(cell)))
        dens = density_g_cm3(self.mass_amu, vol)
        pres = float("nan")
        if self.has_stress:
            try:
                st = calc.get_stress(atoms)
                # virial part + ideal-gas part 2 Ekin / (3 V)
                pres = float((-np.mean(st[:3]) + 2.0 * ekin / (3.0 * vol)) * EV_A3_TO_GPA)
            except Exception:  # noqa: BLE001 - calculator without working stress
                self.has_stress = False
        if save:
            frames["step"].append(step)
            frames["cell"].append(cell.copy())
            frames["positions"].append(atoms.positions.copy())
            if self.store_velocities:
                frames["velocities"].append(atoms.get_velocities() * self.fs)  # Å/fs
            for name, val in (("temperature", temp), ("potential_energy", epot),
                              ("kinetic_energy", ekin), ("total_energy", epot + ekin),
                              ("pressure", pres), ("volume", vol), ("density", dens)):
                frames[name].append(val)
        if log:
            integ = self.integ
            cons = integ.conserved_energy()
            rows.append(f"{step},{step * self.timestep_fs:.6f},{temp:.6f},"
                        f"{integ.target_temperature():.6f},{epot:.10f},{ekin:.10f},"
                        f"{epot + ekin:.10f},{cons:.10f},{pres:.8f},{vol:.8f},{dens:.8f}\n")


class Progress:
    """A rich progress bar on a terminal; elsewhere (a log file, a pipe) a plain line
    every ``PLAIN_EVERY_S`` seconds with the step, the rate and the time left, so a
    long run never sits silent (or nothing when disabled)."""

    PLAIN_EVERY_S = 30.0

    def __init__(self, enabled: bool, total: int, done: int, label: str):
        import sys

        self._p = None
        self._plain = False
        if not enabled:
            return
        if not sys.stderr.isatty():
            self._plain = True
            self._label, self._total, self._done0 = label, int(total), int(done)
            self._t0 = self._last = time.monotonic()
            self._step = int(done)
            what = "resuming at step %d of %d" % (done, total) if done else f"{total} steps"
            print(f"{label}: {what}; progress every {self.PLAIN_EVERY_S:.0f} s", file=sys.stderr,
                  flush=True)
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                           MofNCompleteColumn(), TextColumn("steps"), TimeElapsedColumn(),
                           TimeRemainingColumn())
        self._p.start()
        if done:
            self._p.console.print(f"{label}: resuming from the checkpoint at step {done} of "
                                  f"{total}")
        self._task = self._p.add_task(label, total=total, completed=done)
        self._last = time.monotonic()

    def update(self, step: int) -> None:
        if self._plain:
            self._step = step
            if time.monotonic() - self._last > self.PLAIN_EVERY_S:
                self._line()
            return
        if self._p is not None and time.monotonic() - self._last > 0.2:
            self._p.update(self._task, completed=step)
            self._last = time.monotonic()

    def _line(self) -> None:
        import sys

        now = time.monotonic()
        self._last = now
        rate = (self._step - self._done0) / max(now - self._t0, 1e-9)
        left = (self._total - self._step) / rate if rate > 0 else float("nan")
        eta = f"about {left / 60:.1f} min left" if left == left else "time left unknown"
        print(f"{self._label}: step {self._step} of {self._total} "
              f"({100.0 * self._step / max(self._total, 1):.0f} %, {rate:.0f} steps/s, {eta})",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()

