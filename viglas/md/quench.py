"""Melt-quench: heat, hold and cool a model to a glass under NPT with :func:`run_md`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from viglas.errors import ConfigError, MDError
from viglas.md.checkpoint import read_log
from viglas.md.engine import MDResult, run_md
from viglas.md.schedules import Schedule
from viglas.units import density_g_cm3, md_steps

#: Default heating rate of a melt-quench, K/ps.
HEAT_RATE_K_PS = 1000.0


@dataclass
class MeltQuenchResult:
    """Outcome of :func:`melt_quench`: the glass and the cooling curve.

    ``temperature_K``, ``volume_A3``, ``potential_energy_eV``, ``density_g_cm3`` are the
    logged rows of the cooling stage (instantaneous values), for a Tg fit.
    """

    atoms: Any
    trajectory: str
    log: str
    temperature_K: np.ndarray
    target_temperature_K: np.ndarray
    volume_A3: np.ndarray
    potential_energy_eV: np.ndarray
    density_g_cm3: np.ndarray
    final_density_g_cm3: float
    md: MDResult

    def to_dict(self) -> dict[str, Any]:
        return {"trajectory": self.trajectory, "log": self.log,
                "final_density_g_cm3": self.final_density_g_cm3,
                "temperature_K": self.temperature_K.tolist(),
                "target_temperature_K": self.target_temperature_K.tolist(),
                "volume_A3": self.volume_A3.tolist(),
                "potential_energy_eV": self.potential_energy_eV.tolist(),
                "density_g_cm3": self.density_g_cm3.tolist(), "md": self.md.to_dict()}


def melt_quench_schedule(*, t_start_K: float, t_melt_K: float, t_final_K: float,
                         heat_rate_K_ps: float, hold_ps: float, cool_rate_K_ps: float,
                         final_hold_ps: float = 0.0) -> tuple[Schedule, float, float]:
    """Temperature schedule heat -> hold -> cool (-> hold). Returns (schedule, t_cool_start_fs,
    t_cool_end_fs)."""
    for name, v in (("heat_rate_K_ps", heat_rate_K_ps), ("cool_rate_K_ps", cool_rate_K_ps)):
        if v <= 0:
            raise ConfigError("rate must be > 0", field=name, value=v, allowed="> 0 K/ps")
    if hold_ps < 0 or final_hold_ps < 0:
        raise ConfigError("hold time must be >= 0", field="hold_ps", value=hold_ps)
    if t_final_K >= t_melt_K:
        raise ConfigError("t_final_K must be below t_melt_K", field="t_final_K",
                          value=t_final_K, allowed=f"< {t_melt_K}")
    heat_fs = abs(t_melt_K - t_start_K) / heat_rate_K_ps * 1000.0
    cool_fs = (t_melt_K - t_final_K) / cool_rate_K_ps * 1000.0
    s = Schedule.constant(t_start_K).then_ramp(t_melt_K, heat_fs).then_hold(hold_ps * 1000.0)
    t_cool0 = s.duration_fs
    s = s.then_ramp(t_final_K, cool_fs)
    t_cool1 = s.duration_fs
    if final_hold_ps:
        s = s.then_hold(final_hold_ps * 1000.0)
    return s, t_cool0, t_cool1


#: A melt-quench whose density falls below this fraction of the start density has boiled.
BOIL_DENSITY_FRACTION = 0.5


def melt_quench(atoms, calculator, *, t_melt_K: float, t_final_K: float = 300.0,
                hold_ps: float = 10.0, cool_rate_K_ps: float = 10.0,
                pressure_GPa: float = 0.0, timestep_fs: float = 1.0,
                workdir: str | Path = ".", seed: int = 0, t_start_K: float | None = None,
                heat_rate_K_ps: float = HEAT_RATE_K_PS, final_hold_ps: float = 0.0,
                thermostat: str = "langevin", save_every: int = 100,
                trajectory: str = "melt_quench.h5", progress: bool = True,
                **md_kwargs) -> MeltQuenchResult:
    """Heat -> hold at ``t_melt_K`` -> cool at ``cool_rate_K_ps`` to ``t_final_K``, NPT.

    Temperatures in K, times in ps, rates in K/ps, pressure in GPa, time step in fs.
    ``t_start_K`` (default ``t_final_K``) is the temperature of the initial velocities;
    heating runs at ``heat_rate_K_ps``. Uses :func:`run_md` (so it checkpoints and
    resumes) with ``ensemble="npt"`` and ``thermostat`` (``langevin`` = Langevin-BAOAB,
    ``nose-hoover`` = MTK). Returns the final glass and the logged V(T), E(T) of the
    cooling stage for a glass-transition fit.
    """
    t_start = float(t_final_K if t_start_K is None else t_start_K)
    rho_start = density_g_cm3(float(np.sum(atoms.get_masses())), atoms.get_volume())
    sched, t0, t1 = melt_quench_schedule(t_start_K=t_start, t_melt_K=t_melt_K,
                                         t_final_K=t_final_K, heat_rate_K_ps=heat_rate_K_ps,
                                         hold_ps=hold_ps, cool_rate_K_ps=cool_rate_K_ps,
                                         final_hold_ps=final_hold_ps)
    steps = md_steps(sched.duration_fs, timestep_fs, "up")  # the whole schedule
    md_kwargs.setdefault("log_every", max(1, save_every // 10))
    res = run_md(atoms, calculator, ensemble="npt", thermostat=thermostat, temperature_K=sched,
                 pressure_GPa=pressure_GPa, timestep_fs=timestep_fs, steps=steps,
                 save_every=save_every, workdir=workdir, trajectory=trajectory, seed=seed,
                 progress=progress, metadata={"melt_quench": {
                     "t_start_K": t_start, "t_melt_K": t_melt_K, "t_final_K": t_final_K,
                     "hold_ps": hold_ps, "cool_rate_K_ps": cool_rate_K_ps,
                     "heat_rate_K_ps": heat_rate_K_ps, "pressure_GPa": pressure_GPa}},
                 **md_kwargs)
    log = read_log(Path(res.log))
    rho_min = float(np.min(log["density_g_cm3"])) if len(log["density_g_cm3"]) else rho_start
    if rho_min < BOIL_DENSITY_FRACTION * rho_start:
        raise MDError(f"the melt boiled: density fell from {rho_start:.3g} to {rho_min:.3g} "
                      f"g/cm3 during the melt-quench (trajectory kept: {res.trajectory})",
                      field="t_melt_K", value=t_melt_K,
                      allowed="a melt temperature the potential keeps condensed at "
                      f"{pressure_GPa:g} GPa",
                      hint="lower t_melt_K or raise pressure_GPa")
    sel = (log["time_fs"] >= t0) & (log["time_fs"] <= t1 + 1e-9)
    return MeltQuenchResult(atoms=res.atoms, trajectory=res.trajectory, log=res.log,
                            temperature_K=log["temperature_K"][sel],
                            target_temperature_K=log["target_temperature_K"][sel],
                            volume_A3=log["volume_A3"][sel],
                            potential_energy_eV=log["potential_energy_eV"][sel],
                            density_g_cm3=log["density_g_cm3"][sel],
                            final_density_g_cm3=density_g_cm3(
                                float(np.sum(res.atoms.get_masses())), res.atoms.get_volume()),
                            md=res)

