"""The on-disk state of an MD run: file names, checkpoints, frame parts, the thermo log.

:func:`viglas.md.run_md` cuts a run into segments. During a segment frames and thermo
rows are kept in memory; at its end the frames are written as a small .npz *part*
(:func:`write_part`), the rows are appended to the CSV log, and a checkpoint
(positions, momenta, cell, integrator state, random-generator state, counters) is
written (:func:`save_checkpoint`). Every file is written to a temporary name and
renamed (:func:`atomic_write_bytes`), so a kill at any moment leaves the last complete
version. When all steps are done the parts are merged into the H5MD trajectory
(:func:`merge_parts`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from viglas.errors import CheckpointError
from viglas.files import atomic_write_bytes, temporary_name

LOG_COLUMNS = ("step", "time_fs", "temperature_K", "target_temperature_K",
               "potential_energy_eV", "kinetic_energy_eV", "total_energy_eV",
               "conserved_energy_eV", "pressure_GPa", "volume_A3", "density_g_cm3")
OBSERVABLES = ("temperature", "potential_energy", "kinetic_energy", "total_energy",
               "pressure", "volume", "density")
CKPT_VERSION = 1


def run_paths(workdir: Path, trajectory: str | Path) -> dict[str, Path]:
    """The files of a run whose trajectory is ``trajectory`` (relative to ``workdir``):
    ``traj``, ``log`` (.log.csv), ``ckpt`` (.ckpt.npz), ``parts`` (folder), ``result``
    (.result.json)."""
    traj = Path(trajectory)
    if not traj.is_absolute():
        traj = workdir / traj
    stem = traj.name[: -len(traj.suffix)] if traj.suffix else traj.name
    base = traj.parent
    return {"traj": traj, "log": base / f"{stem}.log.csv", "ckpt": base / f"{stem}.ckpt.npz",
            "parts": base / f"{stem}.parts", "result": base / f"{stem}.result.json"}



def write_part(path: Path, frames: dict[str, list], velocities: bool) -> None:
    """Write one segment's frames to ``path`` (.npz, atomically)."""
    arrays = {"step": np.asarray(frames["step"], dtype=np.int64),
              "cell": np.asarray(frames["cell"], dtype=np.float64),
              "positions": np.asarray(frames["positions"], dtype=np.float64)}
    if velocities:
        arrays["velocities"] = np.asarray(frames["velocities"], dtype=np.float64)
    for name in OBSERVABLES:
        arrays[name] = np.asarray(frames[name], dtype=np.float64)
    atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))


def merge_parts(dest: Path, old: tuple[Path, int] | None, parts: list[Path], numbers, masses,
           timestep_fs: float, velocities: bool, metadata: dict,
           compression: str | None = "lzf") -> int:
    """Write ``dest`` = first n frames of ``old`` (an earlier merged trajectory) + the
    frames of ``parts``, atomically (temp file + rename). Returns the number of frames."""
    import h5py

    from viglas.trajectory import H5MDWriter, read_errors

    tmp = temporary_name(dest)
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
                    w.append_series(steps, steps * float(timestep_fs),
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
                w.append_frames(b["step"], b["step"] * float(timestep_fs), b["positions"],
                                b["cell"], b.get("velocities"),
                                {name: b[name] for name in OBSERVABLES})
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



def save_checkpoint(path: Path, meta: dict, atoms, dyn_state: dict, rng_state: dict) -> None:
    arrays = {"positions": atoms.get_positions(), "momenta": atoms.get_momenta(),
              "cell": np.asarray(atoms.cell, dtype=np.float64)}
    for k, v in dyn_state.items():
        arrays[f"dyn__{k}"] = np.asarray(v)
    meta = dict(meta, rng_state=rng_state, version=CKPT_VERSION)
    arrays["meta_json"] = np.array(json.dumps(meta, default=str))
    atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))


def load_checkpoint(path: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta_json"]))
            arrays = {k: z[k].copy() for k in z.files if k != "meta_json"}
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot read checkpoint ({exc})", field="checkpoint",
                              value=str(path), hint="delete it to start the run afresh") from exc
    dyn = {k[5:]: v for k, v in arrays.items() if k.startswith("dyn__")}
    return meta, arrays, dyn


def read_log(path: Path) -> dict[str, np.ndarray]:
    if not path.exists() or path.stat().st_size == 0:
        return {c: np.zeros(0) for c in LOG_COLUMNS}
    data = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
    data = np.atleast_1d(data)
    return {c: np.asarray(data[c], dtype=float) for c in LOG_COLUMNS}



def part_index(p: Path) -> int | None:
    name = p.name
    if name.startswith("part_") and name.endswith(".npz"):
        try:
            return int(name[5:-4])
        except ValueError:
            return None
    return None
