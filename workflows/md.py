"""Resumable molecular dynamics: NVE, NVT, NPT, schedules, H5MD output, melt-quench.

:func:`run_md` cuts a run into segments of ``checkpoint_every`` steps. During a segment
frames and thermo rows are kept in memory; at its end they are written out
(the frames as a small .npz *part* file, written to a temporary name and renamed),
the thermo rows are appended to the CSV log, and a checkpoint (positions, momenta,
cell, integrator state, random-generator state, counters) is written atomically
(temporary file + ``os.replace``). After ``kill -9`` at any moment the same call
resumes from the last checkpoint: parts and log rows written after it are dropped,
so the finished trajectory holds every frame exactly once. When all steps are done the
parts are merged into the trajectory file (again temp file + rename).

Every segment starts by rebuilding the integrator from the saved state (positions,
momenta, cell, thermostat/barostat variables, random-generator state), in an
uninterrupted run as in a resumed one, and the ionic potential sums its pairs in a
canonical order, so a resumed run reproduces the uninterrupted one bit for bit.

Files, for ``trajectory="traj.h5"`` in ``workdir``::

    traj.h5           H5MD trajectory (viglas.trajectory layout; readable by MDAnalysis)
    traj.log.csv      thermo log: step, time_fs, temperature_K, target_temperature_K,
                      potential_energy_eV, kinetic_energy_eV, total_energy_eV,
                      conserved_energy_eV, pressure_GPa, volume_A3, density_g_cm3
    traj.ckpt.npz     last checkpoint
    traj.parts/       frames of finished segments (.npz) not yet merged (removed at the end)
    traj.result.json  summary (MDResult.to_dict())

Guards stop a run with :class:`viglas.errors.MDError` (last good checkpoint kept) on a
non-finite energy or force, a temperature above ``max_temperature_K``, or two atoms
closer than ``min_distance_A``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from viglas import walltime as _walltime
from viglas.errors import CheckpointError, ConfigError, MDError
from viglas.provenance import model_identity, stable_hash
from viglas.units import density_g_cm3
from viglas.workflows.schedules import Schedule

#: eV/Å^3 -> GPa
EV_A3_TO_GPA = 160.21766208

ENSEMBLES = ("nve", "nvt", "npt")
THERMOSTATS = ("langevin", "bussi", "nose-hoover")
LOG_COLUMNS = ("step", "time_fs", "temperature_K", "target_temperature_K",
               "potential_energy_eV", "kinetic_energy_eV", "total_energy_eV",
               "conserved_energy_eV", "pressure_GPa", "volume_A3", "density_g_cm3")
OBSERVABLES = ("temperature", "potential_energy", "kinetic_energy", "total_energy",
               "pressure", "volume", "density")
_CKPT_VERSION = 1


@dataclass
class MDResult:
    """Outcome of :func:`run_md`. Means are over the logged rows after step 0."""

    workdir: str
    trajectory: str
    log: str
    checkpoint: str
    steps_done: int
    n_frames: int
    time_fs: float
    timestep_fs: float
    n_atoms: int
    mean_temperature_K: float
    mean_pressure_GPa: float | None
    mean_volume_A3: float
    mean_density_g_cm3: float
    energy_drift_eV_atom_ps: float | None
    resumed: bool
    wall_time_s: float
    ensemble: str
    thermostat: str | None
    atoms: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the Atoms)."""
        d = asdict(self)
        d.pop("atoms", None)
        return d


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


# ------------------------------------------------------------------ helpers
def _paths(workdir: Path, trajectory: str | Path) -> dict[str, Path]:
    traj = Path(trajectory)
    if not traj.is_absolute():
        traj = workdir / traj
    stem = traj.name[: -len(traj.suffix)] if traj.suffix else traj.name
    base = traj.parent
    return {"traj": traj, "log": base / f"{stem}.log.csv", "ckpt": base / f"{stem}.ckpt.npz",
            "parts": base / f"{stem}.parts", "result": base / f"{stem}.result.json"}


def _atomic_write_bytes(path: Path, writer) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        writer(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _calculator_id(calc, spec) -> dict[str, Any]:
    if spec is not None:
        from viglas.calculators import _as_spec

        s = _as_spec(spec)
        return {"name": s.name, "params_hash": stable_hash(s.params)}
    params = getattr(calc, "params", None)
    if hasattr(params, "model_dump"):
        return {"name": type(calc).__name__, "params_hash": stable_hash(model_identity(params))}
    return {"name": type(calc).__name__}


# --------------------------------------------------------------- integrators
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


class _Integrator:
    """Wraps one ASE integrator: builds it from state, sets targets, saves state."""

    def __init__(self, atoms, ensemble: str, thermostat: str | None, dt_fs: float,
                 t_sched: Schedule | None, p_sched: Schedule | None, rng: np.random.Generator,
                 friction_per_fs: float, tdamp_fs: float, pdamp_fs: float, step: int,
                 state: dict[str, np.ndarray]):
        from ase import units

        self.atoms, self.ensemble, self.thermostat = atoms, ensemble, thermostat
        self.t_sched, self.p_sched = t_sched, p_sched
        self.dt_fs = dt_fs
        dt = dt_fs * units.fs
        t_now = t_sched(step * dt_fs) if t_sched is not None else None
        t_ref = t_sched.max if t_sched is not None else None
        self._last_t = t_now
        self._last_p = None
        if ensemble == "nve":
            from ase.md.verlet import VelocityVerlet

            self.dyn = VelocityVerlet(atoms, dt)
        elif ensemble == "nvt" and thermostat == "langevin":
            from ase.constraints import FixCom

            # the constraint only tells the observers that 3 DOF are removed; the fused
            # integrator keeps the centre of mass fixed itself
            atoms.set_constraint(FixCom())
            self.dyn = LangevinBAOAB_NVT(atoms, dt, temperature_K=t_now,
                                         friction=friction_per_fs / units.fs, rng=rng)
        elif ensemble == "nvt" and thermostat == "bussi":
            from ase.md.bussi import Bussi

            self.dyn = Bussi(atoms, dt, temperature_K=t_now, taut=tdamp_fs * units.fs, rng=rng)
            self.dyn.transferred_energy = float(state.get("transferred_energy", 0.0))
        elif ensemble == "nvt" and thermostat == "nose-hoover":
            from ase.md.nose_hoover_chain import NoseHooverChainNVT

            self.dyn = NoseHooverChainNVT(atoms, dt, temperature_K=t_ref,
                                          tdamp=tdamp_fs * units.fs, tchain=3)
            th = self.dyn._thermostat
            if "eta" in state:
                th._eta[:] = state["eta"]
                th._p_eta[:] = state["p_eta"]
            self._set_nhc_temperature(t_now)
        elif ensemble == "npt" and thermostat == "nose-hoover":
            from ase.md.nose_hoover_chain import IsotropicMTKNPT

            p_now = p_sched(step * dt_fs)
            self.dyn = IsotropicMTKNPT(atoms, dt, temperature_K=t_ref,
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

            p_now = p_sched(step * dt_fs)
            with warnings.catch_warnings():  # "Using heuristic P_mass ..." is expected
                warnings.simplefilter("ignore", UserWarning)
                self.dyn = LangevinBAOAB(atoms, dt, temperature_K=t_now,
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
        t_fs = step * self.dt_fs
        if self.t_sched is not None and self.ensemble != "nve" and not self.t_sched.is_constant:
            t = self.t_sched(t_fs)
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
        if self.p_sched is not None and not self.p_sched.is_constant:
            p = self.p_sched(t_fs)
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
        if self.thermostat == "nose-hoover" and self.t_sched is not None and self.t_sched.is_constant:
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


# ------------------------------------------------------------- trajectory parts
def _write_part(path: Path, frames: dict[str, list], velocities: bool) -> None:
    """Write one segment's frames to ``path`` (.npz, atomically)."""
    arrays = {"step": np.asarray(frames["step"], dtype=np.int64),
              "cell": np.asarray(frames["cell"], dtype=np.float64),
              "positions": np.asarray(frames["positions"], dtype=np.float64)}
    if velocities:
        arrays["velocities"] = np.asarray(frames["velocities"], dtype=np.float64)
    for name in OBSERVABLES:
        arrays[name] = np.asarray(frames[name], dtype=np.float64)
    _atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))


def _merge(dest: Path, old: tuple[Path, int] | None, parts: list[Path], numbers, masses,
           timestep_fs: float, velocities: bool, metadata: dict,
           compression: str | None = "lzf") -> int:
    """Write ``dest`` = first n frames of ``old`` (an earlier merged trajectory) + the
    frames of ``parts``, atomically (temp file + rename). Returns the number of frames."""
    import h5py

    from viglas.trajectory import H5MDWriter, read_errors

    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    dt = float(timestep_fs)
    total = 0
    with H5MDWriter(tmp, numbers, masses, timestep_fs=timestep_fs, velocities=velocities,
                    observables=OBSERVABLES, metadata=metadata, compression=compression) as w:
        if old is not None:
            src, n_keep = old
            groups = w.series_names()
            with read_errors(src), h5py.File(src, "r") as f:
                for gname in groups:
                    if gname not in f:
                        raise CheckpointError("existing trajectory lacks a series",
                                              field="trajectory", value=f"{src}:{gname}")
                n = min(n_keep, f["particles/all/position/step"].shape[0])
                for start in range(0, n, 1000):
                    stop = min(n, start + 1000)
                    steps = f["particles/all/position/step"][start:stop]
                    w.append_series(steps, steps * dt,
                                    {g: f[g]["value"][start:stop] for g in groups})
                total += n
        # batch parts so that each HDF5 append moves ~64 MB
        keys = ("step", "cell", "positions", *(("velocities",) if velocities else ()),
                *OBSERVABLES)
        batch: list[dict[str, np.ndarray]] = []
        size = 0

        def flush():
            nonlocal batch, size
            if batch:
                b = {k: np.concatenate([part[k] for part in batch]) for k in keys}
                w.append_frames(b["step"], b["step"] * dt, b["positions"], b["cell"],
                                b.get("velocities"), {name: b[name] for name in OBSERVABLES})
            batch, size = [], 0

        for part in parts:
            with np.load(part) as z:
                batch.append({k: z[k] for k in keys})
            size += batch[-1]["positions"].nbytes
            total += len(batch[-1]["step"])
            if size > 64 * 2**20:
                flush()
        flush()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)
    return total


# ------------------------------------------------------------------ checkpoint
def _save_checkpoint(path: Path, meta: dict, atoms, dyn_state: dict, rng_state: dict) -> None:
    arrays = {"positions": atoms.get_positions(), "momenta": atoms.get_momenta(),
              "cell": np.asarray(atoms.cell, dtype=np.float64)}
    for k, v in dyn_state.items():
        arrays[f"dyn__{k}"] = np.asarray(v)
    meta = dict(meta, rng_state=rng_state, version=_CKPT_VERSION)
    arrays["meta_json"] = np.array(json.dumps(meta, default=str))
    _atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))


def _load_checkpoint(path: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta_json"]))
            arrays = {k: z[k].copy() for k in z.files if k != "meta_json"}
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot read checkpoint ({exc})", field="checkpoint",
                              value=str(path), hint="delete it to start the run afresh") from exc
    dyn = {k[5:]: v for k, v in arrays.items() if k.startswith("dyn__")}
    return meta, arrays, dyn


def _read_log(path: Path) -> dict[str, np.ndarray]:
    if not path.exists() or path.stat().st_size == 0:
        return {c: np.zeros(0) for c in LOG_COLUMNS}
    data = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
    data = np.atleast_1d(data)
    return {c: np.asarray(data[c], dtype=float) for c in LOG_COLUMNS}


# ---------------------------------------------------------------------- run
def run_md(atoms, calculator, *, ensemble: str = "nvt", thermostat: str | None = "langevin",
           temperature_K: float | Schedule | None = 300.0,
           pressure_GPa: float | Schedule | None = None, timestep_fs: float = 1.0,
           steps: int, save_every: int = 10, workdir: str | Path = ".",
           trajectory: str | Path = "traj.h5", seed: int = 0,
           checkpoint_every: int | None = None, log_every: int | None = None,
           progress: bool = True, store_velocities: bool = False,
           friction_per_fs: float = 0.01, tdamp_fs: float | None = None,
           pdamp_fs: float | None = None, max_temperature_K: float | None = None,
           min_distance_A: float = 0.6, guard_every: int = 10,
           compression: str | None = "lzf", metadata: dict | None = None) -> MDResult:
    """Run (or resume) molecular dynamics and write an H5MD trajectory.

    Parameters
    ----------
    atoms : starting structure (ase.Atoms, periodic). Not modified; the result holds
        the final state. Momenta already on ``atoms`` are kept, otherwise velocities are
        drawn from Maxwell-Boltzmann at the first target temperature (seeded).
    calculator : an ASE calculator, or a spec for :func:`viglas.calculators.get_calculator`
        (``"ionic"``, ``{"name": "chgnet", "params": {...}}``); a spec's element support
        is checked before anything runs.
    ensemble : ``"nve"``, ``"nvt"`` or ``"npt"`` (isotropic).
    thermostat : ``"langevin"`` (NVT: Langevin with fixed centre of mass; NPT:
        Langevin-BAOAB barostat), ``"bussi"`` (NVT only, stochastic velocity rescaling) or
        ``"nose-hoover"`` (NVT: Nose-Hoover chain; NPT: isotropic MTK). Ignored for NVE.
    temperature_K : K, a number or a :class:`Schedule` over time (ramps, holds). For NVE
        only the initial velocities use it.
    pressure_GPa : GPa, number or Schedule; required for NPT.
    timestep_fs : fs.  steps : number of MD steps in total (a rerun with more steps
        extends a finished run).
    save_every : steps between trajectory frames (frame 0 is the start).
    workdir, trajectory : output directory and trajectory file name (relative to workdir).
    seed : seeds the initial velocities and every stochastic thermostat.
    checkpoint_every : steps per segment, rounded up to a multiple of ``save_every``
        (default: about steps/20, kept between 500 and 5000 steps).
    log_every : steps between thermo-log rows (default ``save_every``).
    friction_per_fs : Langevin friction (1/fs); tdamp_fs / pdamp_fs: Nose-Hoover / Bussi
        thermostat and barostat times (fs; defaults 100 and 1000 time steps).
    max_temperature_K : guard (default ``max(5 * highest target, 5000)``).
    min_distance_A : guard, Å.
    compression : HDF5 filter of the trajectory: ``"lzf"`` (default: ~3x faster to
        write and ~2.5x faster to read than gzip for ~20 % more disk; readable by every
        h5py-based reader such as MDAnalysis), ``"gzip"`` (portable to C HDF5 tools such
        as VMD's H5MD plugin) or None.

    Returns an :class:`MDResult`; rerunning the same call in the same workdir resumes.
    Raises :class:`MDError` when a guard trips and :class:`CheckpointError` when the
    checkpoint on disk belongs to another run.
    """
    from ase import Atoms

    t_wall0 = time.perf_counter()
    # ---------------------------------------------------------------- validate
    ensemble = str(ensemble).lower()
    if ensemble not in ENSEMBLES:
        raise ConfigError("unknown ensemble", field="ensemble", value=ensemble,
                          allowed=", ".join(ENSEMBLES))
    if ensemble == "nve":
        thermostat = None
    else:
        thermostat = str(thermostat or "langevin").lower().replace("_", "-")
        if thermostat in ("nosehoover", "nose-hoover-chain", "nhc", "mtk"):
            thermostat = "nose-hoover"
        if thermostat not in THERMOSTATS:
            raise ConfigError("unknown thermostat", field="thermostat", value=thermostat,
                              allowed=", ".join(THERMOSTATS))
        if ensemble == "npt" and thermostat == "bussi":
            raise ConfigError("bussi has no barostat here", field="thermostat",
                              value=thermostat, allowed="langevin or nose-hoover for npt")
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise ConfigError("atoms must be a non-empty ase.Atoms", field="atoms", value=repr(atoms))
    if not all(atoms.pbc) or atoms.get_volume() <= 0:
        raise ConfigError("MD needs a 3D periodic cell", field="atoms.pbc",
                          value=tuple(bool(x) for x in atoms.pbc))
    steps = int(steps)
    save_every = int(save_every)
    if steps < 1:
        raise ConfigError("steps must be >= 1", field="steps", value=steps)
    if save_every < 1:
        raise ConfigError("save_every must be >= 1", field="save_every", value=save_every)
    if not (0 < timestep_fs <= 10):
        raise ConfigError("time step out of range", field="timestep_fs", value=timestep_fs,
                          allowed="0 < timestep_fs <= 10 fs")
    t_sched = Schedule.coerce(temperature_K, "temperature_K")
    p_sched = Schedule.coerce(pressure_GPa, "pressure_GPa")
    if t_sched is None and (ensemble != "nve" or not np.any(atoms.get_momenta())):
        raise ConfigError("a temperature is needed", field="temperature_K", value=None)
    if t_sched is not None and t_sched.min <= 0 and ensemble != "nve":
        raise ConfigError("target temperature must be > 0 K", field="temperature_K",
                          value=t_sched.min)
    if ensemble == "npt" and p_sched is None:
        raise ConfigError("NPT needs a pressure", field="pressure_GPa", value=None,
                          allowed="a number in GPa or a schedule")
    if ensemble != "npt":
        p_sched = None
    if thermostat == "langevin" and not friction_per_fs > 0:
        raise ConfigError("Langevin friction must be > 0", field="friction_per_fs",
                          value=friction_per_fs, allowed="> 0 (1/fs), e.g. 0.01")
    if compression not in ("gzip", "lzf", None):
        raise ConfigError("unknown compression", field="compression", value=compression,
                          allowed="gzip, lzf or None")
    if checkpoint_every is None:
        # ~20 segments, but 500..5000 steps each (checkpoint I/O stays negligible)
        target = min(max(steps / 20, 500), 5000)
        checkpoint_every = max(save_every, int(math.ceil(target / save_every)) * save_every)
    checkpoint_every = int(checkpoint_every)
    if checkpoint_every < 1:
        raise ConfigError("checkpoint_every must be >= 1", field="checkpoint_every",
                          value=checkpoint_every, allowed=f"a multiple of {save_every}")
    # segments end on saved frames: round up to a multiple of save_every
    checkpoint_every = int(math.ceil(checkpoint_every / save_every)) * save_every
    log_every = int(log_every or save_every)
    if log_every < 1:
        raise ConfigError("log_every must be >= 1", field="log_every", value=log_every)
    tdamp_fs = float(tdamp_fs or 100.0 * timestep_fs)
    pdamp_fs = float(pdamp_fs or 1000.0 * timestep_fs)
    t_max = t_sched.max if t_sched is not None else 1000.0
    max_temperature_K = float(max_temperature_K or max(5.0 * t_max, 5000.0))

    # ------------------------------------------------------------ calculator
    spec = None
    calc = calculator
    if calc is None or isinstance(calc, (str, dict)) or type(calc).__name__ == "CalculatorSpec":
        from viglas.calculators import check_elements, get_calculator

        spec = calculator
        check_elements(spec, atoms.get_chemical_symbols())
        calc = get_calculator(spec)

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = _paths(workdir, trajectory)
    numbers = atoms.numbers.copy()
    masses = atoms.get_masses()
    signature = {
        "n_atoms": len(atoms), "numbers_hash": stable_hash(numbers.tolist()),
        "ensemble": ensemble, "thermostat": thermostat, "timestep_fs": float(timestep_fs),
        "save_every": save_every, "seed": int(seed),
        "temperature": t_sched.to_dict() if t_sched else None,
        "pressure": p_sched.to_dict() if p_sched else None,
        "calculator": _calculator_id(calc, spec), "store_velocities": bool(store_velocities),
    }
    if ensemble == "nvt" and thermostat == "langevin":
        signature["integrator"] = "viglas-baoab"  # not ASE's Langevin: no mixed resumes
    run_meta = {"program": "viglas.workflows.md.run_md", "signature": signature,
                "friction_per_fs": friction_per_fs, "tdamp_fs": tdamp_fs, "pdamp_fs": pdamp_fs,
                **(metadata or {})}

    # ------------------------------------------------------------ state
    work = atoms.copy()
    work.set_constraint()
    work.calc = calc
    dyn_state: dict[str, np.ndarray] = {}
    resumed = False
    if paths["ckpt"].exists():
        meta, arrays, dyn_state = _load_checkpoint(paths["ckpt"])
        if meta.get("signature") != json.loads(json.dumps(signature, default=str)):
            raise CheckpointError("a checkpoint of a different run is in the way",
                                  field="checkpoint", value=str(paths["ckpt"]),
                                  hint="use another output path/workdir, or delete the "
                                       "checkpoint, log and parts to start afresh")
        if meta["step"] > steps:
            raise CheckpointError("the checkpoint is already past the requested steps",
                                  field="steps", value=steps,
                                  allowed=f">= {meta['step']} (steps done)")
        resumed = True
        step, n_frames, n_parts = int(meta["step"]), int(meta["n_frames"]), int(meta["n_parts"])
        merged_frames = int(meta.get("merged_frames", 0))
        merged_parts = int(meta.get("merged_parts", 0))
        log_bytes = int(meta["log_bytes"])
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng_state"]
        work.set_cell(arrays["cell"], scale_atoms=False)
        work.set_positions(arrays["positions"])
        work.set_momenta(arrays["momenta"])
        # drop everything written after the checkpoint
        if paths["parts"].exists():
            for p in paths["parts"].iterdir():
                idx = _part_index(p)
                if idx is None or idx > n_parts or idx <= merged_parts:
                    p.unlink()  # written after the checkpoint, or already merged
        if paths["log"].exists():
            with open(paths["log"], "rb+") as fh:
                fh.truncate(log_bytes)
    else:
        if paths["traj"].exists():
            raise CheckpointError("trajectory exists but there is no checkpoint to resume",
                                  field="trajectory", value=str(paths["traj"]),
                                  hint="delete it or choose another output path")
        step = n_frames = n_parts = merged_frames = merged_parts = 0
        if paths["parts"].exists():
            shutil.rmtree(paths["parts"])
        rng = np.random.default_rng([int(seed), 1])
        if not np.any(work.get_momenta()):
            from ase.md.velocitydistribution import Stationary

            t0 = t_sched(0.0)
            _thermalize(work, t0, np.random.default_rng([int(seed), 0]))
            Stationary(work)
        header = ",".join(LOG_COLUMNS) + "\n"
        _atomic_write_bytes(paths["log"], lambda fh: fh.write(header.encode()))
        log_bytes = len(header.encode())
    paths["parts"].mkdir(parents=True, exist_ok=True)
    for key in ("traj", "log", "ckpt", "result"):  # temp files of a killed writer
        for leftover in paths[key].parent.glob(paths[key].name + ".tmp*"):
            leftover.unlink(missing_ok=True)

    # ------------------------------------------------------------ loop
    bar = _Progress(progress, steps, step, f"MD {ensemble}" + (f"/{thermostat}" if thermostat else ""))
    try:
        while step < steps:
            seg_end = min(steps, (step // checkpoint_every + 1) * checkpoint_every)
            # identical restart path for fresh, continued and resumed segments (the ionic
            # potential sums pairs in a canonical order, so its neighbour list may persist)
            integ = _Integrator(work, ensemble, thermostat, timestep_fs, t_sched, p_sched, rng,
                                friction_per_fs, tdamp_fs, pdamp_fs, step, dyn_state)
            frames: dict[str, list] = {k: [] for k in ("step", "cell", "positions", "velocities",
                                                       *OBSERVABLES)}
            rows: list[str] = []
            obs = _Observer(work, calc, integ, timestep_fs, paths, max_temperature_K,
                            min_distance_A, store_velocities)
            if step == 0:
                obs.guard(0)
                obs.record(0, frames, rows, save=True, log=True)
            dyn = integ.dyn
            schedule_active = (t_sched is not None and not t_sched.is_constant) or \
                (p_sched is not None and not p_sched.is_constant)
            for s in range(step + 1, seg_end + 1):
                if schedule_active:
                    integ.set_targets(s)  # target of the step that ends at s
                dyn.step()
                save = s % save_every == 0
                log = s % log_every == 0
                if save or log or s % guard_every == 0 or s == seg_end:
                    obs.guard(s)
                if save or log:
                    obs.record(s, frames, rows, save=save, log=log)
                    bar.update(s)
                if _walltime.STOP and s < seg_end:  # wall-time segment over: checkpoint here
                    obs.guard(s)  # never checkpoint a state the guards would refuse
                    seg_end = s
                    break
            # ---- segment done: write part, log, checkpoint (in this order)
            if frames["step"]:
                n_parts += 1
                _write_part(paths["parts"] / f"part_{n_parts:06d}.npz", frames,
                            store_velocities)
                n_frames += len(frames["step"])
            if rows:
                with open(paths["log"], "ab") as fh:
                    fh.write("".join(rows).encode())
                    fh.flush()
                    os.fsync(fh.fileno())
                log_bytes = paths["log"].stat().st_size
            dyn_state = integ.state()
            step = seg_end
            _save_checkpoint(paths["ckpt"], {"signature": signature, "step": step,
                                             "n_frames": n_frames, "n_parts": n_parts,
                                             "merged_frames": merged_frames,
                                             "merged_parts": merged_parts,
                                             "log_bytes": log_bytes, "finished": False},
                             work, dyn_state, rng.bit_generator.state)
            if _walltime.STOP and step < steps:
                raise _walltime.WallTimeUp(f"wall-time stop at step {step} of {steps}; "
                                           "checkpoint written, the run resumes from it")
    finally:
        bar.close()

    # ------------------------------------------------------------ merge parts
    parts = sorted((p for p in paths["parts"].iterdir() if _part_index(p) is not None),
                   key=_part_index)
    parts = [p for p in parts if merged_parts < _part_index(p) <= n_parts]
    if merged_frames < n_frames:
        old = (paths["traj"], merged_frames) if merged_frames > 0 else None
        total = _merge(paths["traj"], old, parts, numbers, masses, timestep_fs,
                       store_velocities, run_meta, compression)
        if total != n_frames:
            raise CheckpointError("merged trajectory has an unexpected number of frames",
                                  field="trajectory", value=total, allowed=str(n_frames))
        merged_frames, merged_parts = n_frames, n_parts
        _save_checkpoint(paths["ckpt"], {"signature": signature, "step": step,
                                         "n_frames": n_frames, "n_parts": n_parts,
                                         "merged_frames": merged_frames,
                                         "merged_parts": merged_parts,
                                         "log_bytes": log_bytes, "finished": True},
                         work, dyn_state, rng.bit_generator.state)
    shutil.rmtree(paths["parts"], ignore_errors=True)
    result = _summarise(paths, work, step, n_frames, timestep_fs, ensemble, thermostat,
                        resumed, time.perf_counter() - t_wall0)
    _atomic_write_bytes(paths["result"], lambda fh: fh.write(
        json.dumps(result.to_dict(), indent=1, default=str).encode()))
    return result


def _part_index(p: Path) -> int | None:
    name = p.name
    if name.startswith("part_") and name.endswith(".npz"):
        try:
            return int(name[5:-4])
        except ValueError:
            return None
    return None


def _thermalize(atoms, t_K: float, rng: np.random.Generator) -> None:
    try:
        from ase.md.velocitydistribution import thermalize_momenta

        thermalize_momenta(atoms, temperature_K=t_K, rng=rng)
    except ImportError:  # older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(atoms, temperature_K=t_K, rng=rng)


class _Observer:
    """Guards and thermo/frame recording with per-segment cached masses and DOF."""

    def __init__(self, atoms, calc, integ: _Integrator, dt_fs: float, paths: dict[str, Path],
                 t_max: float, d_min: float, store_velocities: bool):
        from ase import units

        self.atoms, self.calc, self.integ, self.dt_fs = atoms, calc, integ, dt_fs
        self.paths, self.t_max, self.d_min = paths, t_max, d_min
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
        if not math.isfinite(t) or t > self.t_max:
            raise MDError(f"runaway temperature at step {step}", field="temperature_K",
                          value=round(float(t), 1),
                          allowed=f"<= {self.t_max:g} K (max_temperature_K)", hint=self._hint())
        if self.d_min > 0:
            if self.is_ionic:
                dmin = float(calc.min_distance)
            else:
                from matscipy.neighbours import neighbour_list

                d = neighbour_list("d", atoms, self.d_min)
                dmin = float(d.min()) if len(d) else float("inf")
            if dmin < self.d_min:
                raise MDError(f"atoms too close at step {step}", field="min_distance_A",
                              value=round(dmin, 4), allowed=f">= {self.d_min} A",
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
            rows.append(f"{step},{step * self.dt_fs:.6f},{temp:.6f},"
                        f"{integ.target_temperature():.6f},{epot:.10f},{ekin:.10f},"
                        f"{epot + ekin:.10f},{cons:.10f},{pres:.8f},{vol:.8f},{dens:.8f}\n")


def _summarise(paths, atoms, step, n_frames, dt_fs, ensemble, thermostat, resumed,
               wall) -> MDResult:
    log = _read_log(paths["log"])
    sel = log["step"] > 0 if len(log["step"]) > 1 else np.ones(len(log["step"]), bool)

    def mean(key):
        v = log[key][sel]
        v = v[np.isfinite(v)]
        return float(v.mean()) if len(v) else float("nan")

    drift = None
    cons = log["conserved_energy_eV"]
    ok = np.isfinite(cons)
    if ok.sum() >= 3:
        t_ps = log["time_fs"][ok] / 1000.0
        if np.ptp(t_ps) > 0:
            drift = float(np.polyfit(t_ps, cons[ok], 1)[0] / len(atoms))
    p = mean("pressure_GPa")
    out_atoms = atoms.copy()
    out_atoms.set_constraint()
    out_atoms.calc = None
    return MDResult(workdir=str(paths["traj"].parent), trajectory=str(paths["traj"]),
                    log=str(paths["log"]), checkpoint=str(paths["ckpt"]), steps_done=int(step),
                    n_frames=int(n_frames), time_fs=float(step * dt_fs), timestep_fs=float(dt_fs),
                    n_atoms=len(atoms), mean_temperature_K=mean("temperature_K"),
                    mean_pressure_GPa=None if not math.isfinite(p) else p,
                    mean_volume_A3=mean("volume_A3"), mean_density_g_cm3=mean("density_g_cm3"),
                    energy_drift_eV_atom_ps=drift, resumed=bool(resumed), wall_time_s=float(wall),
                    ensemble=ensemble, thermostat=thermostat, atoms=out_atoms)


class _Progress:
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


# ---------------------------------------------------------------- melt-quench
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
                heat_rate_K_ps: float = 1000.0, final_hold_ps: float = 0.0,
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
    steps = int(math.ceil(sched.duration_fs / timestep_fs))
    md_kwargs.setdefault("log_every", max(1, save_every // 10))
    res = run_md(atoms, calculator, ensemble="npt", thermostat=thermostat, temperature_K=sched,
                 pressure_GPa=pressure_GPa, timestep_fs=timestep_fs, steps=steps,
                 save_every=save_every, workdir=workdir, trajectory=trajectory, seed=seed,
                 progress=progress, metadata={"melt_quench": {
                     "t_start_K": t_start, "t_melt_K": t_melt_K, "t_final_K": t_final_K,
                     "hold_ps": hold_ps, "cool_rate_K_ps": cool_rate_K_ps,
                     "heat_rate_K_ps": heat_rate_K_ps, "pressure_GPa": pressure_GPa}},
                 **md_kwargs)
    log = _read_log(Path(res.log))
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
