"""Resumable molecular dynamics (:func:`run_md`): NVE, NVT, NPT, schedules, H5MD output.

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

from viglas.errors import CheckpointError, ConfigError
from viglas.md import walltime as _walltime
from viglas.files import atomic_write_bytes
from viglas.md.checkpoint import (LOG_COLUMNS, OBSERVABLES, load_checkpoint, merge_parts, part_index, read_log,
                                  run_paths, save_checkpoint, write_part)
from viglas.md.integrators import Integrator
from viglas.md.observers import Observer, Progress
from viglas.md.schedules import Schedule
from viglas.provenance import model_identity, stable_hash

ENSEMBLES = ("nve", "nvt", "npt")
THERMOSTATS = ("langevin", "bussi", "nose-hoover")


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



def _calculator_id(calc, spec) -> dict[str, Any]:
    if spec is not None:
        from viglas.calculators import as_spec

        s = as_spec(spec)
        return {"name": s.name, "params_hash": stable_hash(s.params)}
    params = getattr(calc, "params", None)
    if hasattr(params, "model_dump"):
        return {"name": type(calc).__name__, "params_hash": stable_hash(model_identity(params))}
    return {"name": type(calc).__name__}



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
    # from here on the targets are Schedules (K, GPa) of the time in fs
    temperature_K = Schedule.coerce(temperature_K, "temperature_K")
    pressure_GPa = Schedule.coerce(pressure_GPa, "pressure_GPa")
    if temperature_K is None and (ensemble != "nve" or not np.any(atoms.get_momenta())):
        raise ConfigError("a temperature is needed", field="temperature_K", value=None)
    if temperature_K is not None and temperature_K.min <= 0 and ensemble != "nve":
        raise ConfigError("target temperature must be > 0 K", field="temperature_K",
                          value=temperature_K.min)
    if ensemble == "npt" and pressure_GPa is None:
        raise ConfigError("NPT needs a pressure", field="pressure_GPa", value=None,
                          allowed="a number in GPa or a schedule")
    if ensemble != "npt":
        pressure_GPa = None
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
    t_max = temperature_K.max if temperature_K is not None else 1000.0
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
    paths = run_paths(workdir, trajectory)
    numbers = atoms.numbers.copy()
    masses = atoms.get_masses()
    signature = {
        "n_atoms": len(atoms), "numbers_hash": stable_hash(numbers.tolist()),
        "ensemble": ensemble, "thermostat": thermostat, "timestep_fs": float(timestep_fs),
        "save_every": save_every, "seed": int(seed),
        "temperature": temperature_K.to_dict() if temperature_K else None,
        "pressure": pressure_GPa.to_dict() if pressure_GPa else None,
        "calculator": _calculator_id(calc, spec), "store_velocities": bool(store_velocities),
    }
    if ensemble == "nvt" and thermostat == "langevin":
        signature["integrator"] = "viglas-baoab"  # not ASE's Langevin: no mixed resumes
    run_meta = {"program": "viglas.md.run_md", "signature": signature,
                "friction_per_fs": friction_per_fs, "tdamp_fs": tdamp_fs, "pdamp_fs": pdamp_fs,
                **(metadata or {})}

    # ------------------------------------------------------------ state
    work = atoms.copy()
    work.set_constraint()
    work.calc = calc
    dyn_state: dict[str, np.ndarray] = {}
    resumed = False
    if paths["ckpt"].exists():
        meta, arrays, dyn_state = load_checkpoint(paths["ckpt"])
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
                idx = part_index(p)
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

            _thermalize(work, temperature_K(0.0), np.random.default_rng([int(seed), 0]))
            Stationary(work)
        header = ",".join(LOG_COLUMNS) + "\n"
        atomic_write_bytes(paths["log"], lambda fh: fh.write(header.encode()))
        log_bytes = len(header.encode())
    paths["parts"].mkdir(parents=True, exist_ok=True)
    for key in ("traj", "log", "ckpt", "result"):  # temp files of a killed writer
        for leftover in paths[key].parent.glob(paths[key].name + ".tmp*"):
            leftover.unlink(missing_ok=True)

    # ------------------------------------------------------------ loop
    bar = Progress(progress, steps, step, f"MD {ensemble}" + (f"/{thermostat}" if thermostat else ""))
    try:
        while step < steps:
            seg_end = min(steps, (step // checkpoint_every + 1) * checkpoint_every)
            # identical restart path for fresh, continued and resumed segments (the ionic
            # potential sums pairs in a canonical order, so its neighbour list may persist)
            integ = Integrator(work, ensemble, thermostat, timestep_fs, temperature_K,
                               pressure_GPa, rng, friction_per_fs, tdamp_fs, pdamp_fs, step,
                               dyn_state)
            frames: dict[str, list] = {k: [] for k in ("step", "cell", "positions", "velocities",
                                                       *OBSERVABLES)}
            rows: list[str] = []
            obs = Observer(work, calc, integ, timestep_fs, paths, max_temperature_K,
                            min_distance_A, store_velocities)
            if step == 0:
                obs.guard(0)
                obs.record(0, frames, rows, save=True, log=True)
            dyn = integ.dyn
            schedule_active = (temperature_K is not None and not temperature_K.is_constant) or \
                (pressure_GPa is not None and not pressure_GPa.is_constant)
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
                write_part(paths["parts"] / f"part_{n_parts:06d}.npz", frames,
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
            save_checkpoint(paths["ckpt"], {"signature": signature, "step": step,
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
    parts = sorted((p for p in paths["parts"].iterdir() if part_index(p) is not None),
                   key=part_index)
    parts = [p for p in parts if merged_parts < part_index(p) <= n_parts]
    if merged_frames < n_frames:
        old = (paths["traj"], merged_frames) if merged_frames > 0 else None
        total = merge_parts(paths["traj"], old, parts, numbers, masses, timestep_fs,
                       store_velocities, run_meta, compression)
        if total != n_frames:
            raise CheckpointError("merged trajectory has an unexpected number of frames",
                                  field="trajectory", value=total, allowed=str(n_frames))
        merged_frames, merged_parts = n_frames, n_parts
        save_checkpoint(paths["ckpt"], {"signature": signature, "step": step,
                                         "n_frames": n_frames, "n_parts": n_parts,
                                         "merged_frames": merged_frames,
                                         "merged_parts": merged_parts,
                                         "log_bytes": log_bytes, "finished": True},
                         work, dyn_state, rng.bit_generator.state)
    shutil.rmtree(paths["parts"], ignore_errors=True)
    result = _summarise(paths, work, step, n_frames, timestep_fs, ensemble, thermostat,
                        resumed, time.perf_counter() - t_wall0)
    atomic_write_bytes(paths["result"], lambda fh: fh.write(
        json.dumps(result.to_dict(), indent=1, default=str).encode()))
    return result


def _thermalize(atoms, temperature_K: float, rng: np.random.Generator) -> None:
    try:
        from ase.md.velocitydistribution import thermalize_momenta

        thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    except ImportError:  # older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)



def _summarise(paths, atoms, step, n_frames, timestep_fs, ensemble, thermostat, resumed,
               wall) -> MDResult:
    log = read_log(paths["log"])
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
                    n_frames=int(n_frames), time_fs=float(step * timestep_fs),
                    timestep_fs=float(timestep_fs),
                    n_atoms=len(atoms), mean_temperature_K=mean("temperature_K"),
                    mean_pressure_GPa=None if not math.isfinite(p) else p,
                    mean_volume_A3=mean("volume_A3"), mean_density_g_cm3=mean("density_g_cm3"),
                    energy_drift_eV_atom_ps=drift, resumed=bool(resumed), wall_time_s=float(wall),
                    ensemble=ensemble, thermostat=thermostat, atoms=out_atoms)
