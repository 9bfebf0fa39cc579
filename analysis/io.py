"""Trajectory readers: viglas H5MD, ASE .traj / extxyz, VASP XDATCAR, LAMMPS dumps.

All readers return a :class:`TrajectoryData`: unwrapped positions of the selected
species (Å), the time axis (fs), the mean cell volume and the atom counts, with the
centre-of-mass drift of a reference group (framework or whole system) removed.

* H5MD (ours): read in chunks of frames through :class:`viglas.trajectory.H5MDTrajectory`;
  only the selected species is kept, so memory ~ positions of one species.
* Other formats are read frame by frame with :func:`ase.io.iread`. When a file has no
  image flags, positions are unwrapped by the minimum-image convention between
  consecutive frames; a displacement of more than ``max_jump_fraction`` of a cell
  vector between two frames makes unwrapping ambiguous and raises
  :class:`~viglas.errors.TrajectoryError`.

Time axis: the file's own times when it has them (H5MD, extxyz ``time`` key), else
``timestep_fs * stride`` between stored frames (``stride`` = MD steps per frame).
Times must be increasing and uniform (relative tolerance 1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viglas.errors import AnalysisError, TrajectoryError

__all__ = ["TrajectoryData", "read_trajectory", "unwrap_minimum_image", "detect_format",
           "MSDTable", "read_msd_table", "is_msd_table"]

_FORMATS = ("h5md", "traj", "extxyz", "xdatcar", "lammps-dump")


@dataclass
class TrajectoryData:
    """Unwrapped positions of one species (or all atoms) over time.

    positions: (T, N, 3) Å, drift removed; time_fs: (T,); dt_fs: frame spacing;
    symbols: of the selected atoms; counts: atoms per element in the whole system;
    volume_A3: mean cell volume; cell: (3, 3) first cell (Å); n_atoms_total;
    masses: (N,) amu of the selected atoms; drift: how drift was removed;
    source: path; fmt: format read.
    """

    positions: np.ndarray
    time_fs: np.ndarray
    dt_fs: float
    symbols: list[str]
    counts: dict[str, int]
    volume_A3: float
    cell: np.ndarray
    n_atoms_total: int
    masses: np.ndarray
    drift: str
    source: str = ""
    fmt: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]


def detect_format(path: str | Path) -> str:
    """Format name from the file name (h5md, traj, extxyz, xdatcar, lammps-dump)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".h5", ".h5md", ".hdf5")):
        return "h5md"
    if name.endswith(".traj"):
        return "traj"
    if name.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if "xdatcar" in name:
        return "xdatcar"
    if name.endswith((".dump", ".lammpstrj")) or "dump" in name:
        return "lammps-dump"
    raise TrajectoryError("cannot tell the trajectory format from the file name",
                          field="fmt", value=str(path), allowed=", ".join(_FORMATS))


def _check_times(time_fs: np.ndarray) -> float:
    t = np.asarray(time_fs, dtype=float)
    if len(t) < 2:
        raise AnalysisError("too few frames", field="n_frames", value=len(t), allowed=">= 2")
    dt = np.diff(t)
    if np.any(dt <= 0):
        k = int(np.argmax(dt <= 0))
        raise TrajectoryError("frame times are not increasing", field="time_fs",
                              value=f"t[{k}]={t[k]:g}, t[{k + 1}]={t[k + 1]:g}",
                              allowed="strictly increasing times",
                              hint="concatenated restarts? drop the duplicated frames")
    mean = (t[-1] - t[0]) / (len(t) - 1)
    if np.max(np.abs(dt - mean)) > 1e-6 * abs(mean) + 1e-9:
        k = int(np.argmax(np.abs(dt - mean)))
        raise TrajectoryError("frame times are not uniformly spaced", field="time_fs",
                              value=f"spacing {dt[k]:g} fs at frame {k} vs mean {mean:g} fs",
                              allowed="uniform spacing (MSD by FFT needs it)")
    return float(mean)


def unwrap_minimum_image(frac_prev: np.ndarray, frac_now: np.ndarray, cell: np.ndarray,
                         max_jump_fraction: float = 0.4) -> np.ndarray:
    """Cartesian displacement (Å) between frames by the minimum-image convention.

    ``frac_*`` are fractional coordinates (N, 3). Raises TrajectoryError when an atom
    moved more than ``max_jump_fraction`` of a cell vector (ambiguous unwrapping).
    """
    df = frac_now - frac_prev
    df -= np.round(df)
    big = np.abs(df) > max_jump_fraction
    if np.any(big):
        a, k = np.argwhere(big)[0]
        raise TrajectoryError(
            "an atom moved too far between two frames to unwrap it", field="positions",
            value=f"atom {a}: {df[a, k]:+.2f} of cell vector {k}",
            allowed=f"< {max_jump_fraction} of the cell per frame (jumps above half the box "
                    "cannot be unwrapped)",
            hint="save frames more often or give a file with image flags/unwrapped positions")
    return df @ cell


def _select(symbols: list[str], species: str | list[str] | None) -> np.ndarray:
    if species is None:
        return np.arange(len(symbols))
    wanted = [species] if isinstance(species, str) else list(species)
    idx = np.array([i for i, s in enumerate(symbols) if s in wanted], dtype=int)
    if len(idx) == 0:
        raise AnalysisError("species not present in the trajectory", field="species",
                            value=species, allowed=", ".join(sorted(set(symbols))))
    return idx


def _reference(symbols: list[str], sel: np.ndarray, drift: str) -> np.ndarray | None:
    if drift == "none":
        return None
    if drift == "system":
        return np.arange(len(symbols))
    if drift == "framework":
        mask = np.ones(len(symbols), bool)
        sel_syms = {symbols[i] for i in sel}
        mask[[i for i, s in enumerate(symbols) if s in sel_syms]] = False
        ref = np.where(mask)[0]
        return ref if len(ref) else np.arange(len(symbols))
    raise AnalysisError("unknown drift removal", field="drift", value=drift,
                        allowed="framework, system, none")


def read_trajectory(path: str | Path, fmt: str | None = None, timestep_fs: float | None = None,
                    stride: int = 1, species: str | list[str] | None = None, *,
                    drift: str = "framework", com_weights: str = "mass", every: int = 1,
                    start_fs: float = 0.0, chunk: int = 4096, max_jump_fraction: float = 0.4,
                    min_frames: int = 4, specorder: list[str] | None = None) -> TrajectoryData:
    """Read a trajectory and return unwrapped, drift-corrected positions of ``species``.

    Parameters
    ----------
    path : trajectory file.
    fmt : h5md, traj, extxyz, xdatcar, lammps-dump; None = from the file name.
    timestep_fs : MD time step in fs (for files without times; required then).
    stride : MD steps between stored frames (files without times).
    species : element symbol(s) to keep; None = all atoms.
    drift : remove the centre-of-mass motion of the ``"framework"`` (all other
        elements; default), the whole ``"system"``, or ``"none"``.
    com_weights : ``"mass"`` (default) or ``"equal"`` weights for that centre.
    every : keep every n-th stored frame.
    start_fs : drop frames before this time (equilibration), fs from the first frame.
    max_jump_fraction : largest per-frame move (fraction of a cell vector) accepted
        when unwrapping by minimum image.
    min_frames : fewer frames raise AnalysisError.
    specorder : LAMMPS dumps without an element column: element of type 1, 2, ...

    Raises
    ------
    TrajectoryError : unreadable file, unsorted or non-uniform times, jumps too large.
    AnalysisError : species absent, too few frames.
    """
    path = Path(path)
    if not path.exists():
        raise TrajectoryError("trajectory file not found", field="path", value=str(path))
    fmt = (fmt or detect_format(path)).lower()
    if fmt not in _FORMATS:
        raise TrajectoryError("unknown trajectory format", field="fmt", value=fmt,
                              allowed=", ".join(_FORMATS))
    if every < 1 or stride < 1:
        raise AnalysisError("every and stride must be >= 1", field="every/stride",
                            value=(every, stride))
    if fmt == "h5md":
        data = _read_h5md(path, species, drift, com_weights, every, chunk)
    else:
        data = _read_ase(path, fmt, timestep_fs, stride, species, drift, com_weights, every,
                         max_jump_fraction, specorder)
    if start_fs > 0:
        keep = data.time_fs - data.time_fs[0] >= start_fs - 1e-9
        data.positions = data.positions[keep]
        data.time_fs = data.time_fs[keep]
    if data.n_frames < min_frames:
        raise AnalysisError("too few frames", field="n_frames", value=data.n_frames,
                            allowed=f">= {min_frames} after start_fs={start_fs:g} fs")
    data.source = str(path)
    data.fmt = fmt
    return data


def _com(pos: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted centre (T, 3) of positions (T, n, 3)."""
    return np.matmul(w / w.sum(), pos)


def _read_h5md(path, species, drift, com_weights, every, chunk) -> TrajectoryData:
    from viglas.trajectory import H5MDTrajectory

    tr = H5MDTrajectory(path)  # metadata, times, species, masses; its file is read below
    try:
        return _read_h5md_open(tr, path, species, drift, com_weights, every, chunk)
    finally:
        tr.close()


def _read_h5md_open(tr, path, species, drift, com_weights, every, chunk) -> TrajectoryData:
    from viglas.trajectory import ChunkedFrames, read_errors

    syms = tr.symbols
    n_frames = tr.n_frames
    time_all = tr.time_fs
    masses = tr.masses if tr.masses is not None else _masses(syms)
    meta = dict(tr.metadata)
    sel = _select(syms, species)
    ref = _reference(syms, sel, drift)
    frames = np.arange(0, n_frames, every)
    time = time_all[frames]
    dt = _check_times(time)
    w = None
    if ref is not None:
        w = masses[ref] if com_weights == "mass" else np.ones(len(ref))
    # atoms actually needed: the species and the drift reference group
    need = sel if ref is None else np.union1d(sel, ref)
    contiguous = len(need) == len(syms)
    lsel = np.searchsorted(need, sel)
    if len(lsel) and np.array_equal(lsel, np.arange(lsel[0], lsel[0] + len(lsel))):
        lsel = slice(int(lsel[0]), int(lsel[0]) + len(lsel))  # a view, not a copy
    wfull = None
    if ref is not None:
        wfull = np.zeros(len(need))
        wfull[np.searchsorted(need, ref)] = w / w.sum()
    out = np.empty((len(frames), len(sel), 3))
    com0 = np.full(3, np.nan)
    kern = _unwrap_kernel()
    sel_i = np.ascontiguousarray(sel, dtype=np.int64)
    ref_i = np.zeros(0, dtype=np.int64) if ref is None else np.ascontiguousarray(ref, np.int64)
    w_n = np.zeros(0) if ref is None else np.ascontiguousarray(w / w.sum(), dtype=np.float64)
    k = 0
    # layout documented in viglas.trajectory: unwrapped = position + image @ cell
    with read_errors(path):  # a failed checksum: named error
        p = tr._f["particles/all"]
        dpos, dimg, dbox = p["position/value"], p["image/value"], p["box/edges/value"]
        rpos, rimg = ChunkedFrames(dpos, path), ChunkedFrames(dimg, path)
        if kern is not None:
            # all atoms, stored chunk by stored chunk (checksums verified, decoded in
            # cache-sized pieces); one compiled pass unwraps the species and removes the
            # drift of the reference centre of mass
            cells_all = np.ascontiguousarray(dbox[()], dtype=np.float64)
            if rpos.fast and rimg.fast and rpos.chunk_frames == rimg.chunk_frames:
                pieces = zip(rpos.chunks(0, n_frames), rimg.chunks(0, n_frames))
            else:
                pieces = (((s, e, rpos.read(s, e)), (s, e, rimg.read(s, e)))
                          for s in range(0, n_frames, chunk)
                          for e in [min(n_frames, s + chunk)])
            for (a, b, bpos), (_, _, bimg) in pieces:
                rows = np.arange(a, b)
                rows = rows[(rows % every) == 0] - a
                if len(rows) == 0:
                    continue
                if bpos.dtype != np.float64:
                    bpos = bpos.astype(np.float64)
                if bimg.dtype.kind != "i":
                    bimg = bimg.astype(np.int64)
                kern(bpos, bimg, cells_all[a:b], rows, sel_i, ref_i, w_n, com0, out, k)
                k += len(rows)
        for s in range(0, n_frames, chunk) if kern is None else ():  # numpy fallback
            e = min(n_frames, s + chunk)
            idx = np.arange(s, e)
            idx = idx[(idx % every) == 0] - s
            if len(idx) == 0:
                continue
            if contiguous:
                pos = np.empty((e - s,) + dpos.shape[1:], dtype=np.float64)
                dpos.read_direct(pos, np.s_[s:e])
                img = np.empty((e - s,) + dimg.shape[1:], dtype=dimg.dtype)
                dimg.read_direct(img, np.s_[s:e])
            else:
                pos = dpos[s:e][:, need]
                img = dimg[s:e][:, need]
            cells = dbox[s:e]
            if every > 1:
                pos, img, cells = pos[idx], img[idx], cells[idx]
            # unwrap only what is used: the species and the reference centre of mass
            # (a new array: the reference group may include the species)
            ims = img[:, lsel].astype(np.float64)
            ps = pos[:, lsel] + np.matmul(ims, cells)
            if ref is None:
                out[k:k + len(idx)] = ps
            else:
                com = np.matmul(wfull, pos) + np.einsum(
                    "fi,fij->fj", np.matmul(wfull, img.astype(np.float64)), cells)
                if np.isnan(com0[0]):
                    com0 = com[0].copy()
                out[k:k + len(idx)] = ps - (com - com0)[:, None, :]
            k += len(idx)
        # the cells were read for the compiled pass already (same values when stored
        # as float64): not a second read of the dataset
        cells = cells_all if kern is not None and dbox.dtype == np.float64 else dbox[()]
    vol = float(np.mean(np.abs(np.linalg.det(cells))))
    counts = {s_: syms.count(s_) for s_ in sorted(set(syms))}
    return TrajectoryData(positions=out, time_fs=time, dt_fs=dt, symbols=[syms[i] for i in sel],
                          counts=counts, volume_A3=vol, cell=np.array(cells[0]),
                          n_atoms_total=len(syms), masses=np.asarray(masses)[sel],
                          drift=drift, meta=meta)


def _unwrap_kernel():
    """The compiled unwrap + drift pass of the H5MD reader (None without numba)."""
    from viglas.trajectory import lazy_kernel

    global _UNWRAP
    if _UNWRAP is None:
        _UNWRAP = lazy_kernel(_build_unwrap)
    return _UNWRAP()


_UNWRAP = None


def _build_unwrap(numba):
    @numba.njit(cache=True, nogil=True)
    def unwrap(pos, img, cells, rows, sel, ref, w, com0, out, k0):
        """out[k0 + a, q] = pos[f, sel[q]] + img[f, sel[q]] @ cells[f] - (com(f) - com0)
        for the kept frames ``f = rows[a]`` of a block, ``com`` the ``w``-weighted centre
        of the unwrapped ``ref`` atoms; ``com0`` (nan until set) is that of the first
        kept frame of the trajectory."""
        for a in range(rows.shape[0]):
            f = rows[a]
            c00, c01, c02 = cells[f, 0, 0], cells[f, 0, 1], cells[f, 0, 2]
            c10, c11, c12 = cells[f, 1, 0], cells[f, 1, 1], cells[f, 1, 2]
            c20, c21, c22 = cells[f, 2, 0], cells[f, 2, 1], cells[f, 2, 2]
            dx = 0.0
            dy = 0.0
            dz = 0.0
            if ref.shape[0] > 0:
                cx = 0.0
                cy = 0.0
                cz = 0.0
                for r in range(ref.shape[0]):
                    j = ref[r]
                    i0, i1, i2 = float(img[f, j, 0]), float(img[f, j, 1]), float(img[f, j, 2])
                    cx += w[r] * (pos[f, j, 0] + (i0 * c00 + i1 * c10 + i2 * c20))
                    cy += w[r] * (pos[f, j, 1] + (i0 * c01 + i1 * c11 + i2 * c21))
                    cz += w[r] * (pos[f, j, 2] + (i0 * c02 + i1 * c12 + i2 * c22))
                if np.isnan(com0[0]):
                    com0[0] = cx
                    com0[1] = cy
                    com0[2] = cz
                dx = cx - com0[0]
                dy = cy - com0[1]
                dz = cz - com0[2]
            for q in range(sel.shape[0]):
                j = sel[q]
                i0, i1, i2 = float(img[f, j, 0]), float(img[f, j, 1]), float(img[f, j, 2])
                out[k0 + a, q, 0] = pos[f, j, 0] + (i0 * c00 + i1 * c10 + i2 * c20) - dx
                out[k0 + a, q, 1] = pos[f, j, 1] + (i0 * c01 + i1 * c11 + i2 * c21) - dy
                out[k0 + a, q, 2] = pos[f, j, 2] + (i0 * c02 + i1 * c12 + i2 * c22) - dz

    return unwrap


def _masses(symbols: list[str]) -> np.ndarray:
    from ase.data import atomic_masses, atomic_numbers

    return np.array([atomic_masses[atomic_numbers[s]] for s in symbols])


_ASE_FMT = {"traj": "traj", "extxyz": "extxyz", "xdatcar": "vasp-xdatcar",
            "lammps-dump": "lammps-dump-text"}


def _read_ase(path, fmt, timestep_fs, stride, species, drift, com_weights, every,
              max_jump_fraction, specorder) -> TrajectoryData:
    import ase.io

    kw = {}
    if fmt == "lammps-dump" and specorder:
        kw["specorder"] = list(specorder)
    try:
        it = ase.io.iread(str(path), index=slice(0, None, every), format=_ASE_FMT[fmt], **kw)
        first = next(it)
    except StopIteration:
        raise TrajectoryError("trajectory has no frames", field="path", value=str(path)) from None
    except Exception as exc:  # ASE raises many kinds
        raise TrajectoryError(f"cannot read the file as {fmt} ({exc})", field="path",
                              value=str(path)) from exc
    syms = first.get_chemical_symbols()
    sel = _select(syms, species)
    ref = _reference(syms, sel, drift)
    masses = first.get_masses()
    w = None
    if ref is not None:
        w = masses[ref] if com_weights == "mass" else np.ones(len(ref))
    keep = sel if ref is None else np.union1d(sel, ref)
    local_sel = np.searchsorted(keep, sel)
    local_ref = np.searchsorted(keep, ref) if ref is not None else None
    pos_list = []
    times = []
    vols = []
    cell0 = np.array(first.cell.array)
    cur = first.positions[keep].copy()
    prev_frac = first.get_scaled_positions(wrap=False)[keep]
    com0 = _com(cur[None, :][:, local_ref], w)[0] if ref is not None else None

    def _time(a):
        for key in ("time_fs", "time"):
            if key in a.info:
                return float(a.info[key])
        return None

    def push(a, pos):
        if ref is not None:
            com = _com(pos[None, :][:, local_ref], w)[0]
            pos_list.append(pos[local_sel] - (com - com0))
        else:
            pos_list.append(pos[local_sel].copy())
        times.append(_time(a))
        vols.append(abs(a.get_volume()) if a.cell.rank == 3 else np.nan)

    push(first, cur)
    nat = len(first)
    for a in it:
        if len(a) != nat:
            raise TrajectoryError("atom count changes during the trajectory", field="n_atoms",
                                  value=len(a), allowed=f"{nat} in every frame")
        frac = a.get_scaled_positions(wrap=False)[keep]
        cell = np.array(a.cell.array)
        cur = cur + unwrap_minimum_image(prev_frac, frac, cell, max_jump_fraction)
        prev_frac = frac
        push(a, cur)
    if all(t is not None for t in times):
        time = np.array(times, dtype=float)
    else:
        if timestep_fs is None:
            raise TrajectoryError("this file carries no times; give the MD time step",
                                  field="timestep_fs", value=None,
                                  allowed="a number > 0 (fs); frames are timestep_fs*stride apart")
        if not timestep_fs > 0:
            raise TrajectoryError("time step must be positive", field="timestep_fs",
                                  value=timestep_fs)
        time = np.arange(len(pos_list)) * float(timestep_fs) * stride * every
    dt = _check_times(time) if len(time) >= 2 else 0.0
    counts = {s_: syms.count(s_) for s_ in sorted(set(syms))}
    return TrajectoryData(positions=np.array(pos_list), time_fs=time, dt_fs=dt,
                          symbols=[syms[i] for i in sel], counts=counts,
                          volume_A3=float(np.nanmean(vols)), cell=cell0, n_atoms_total=nat,
                          masses=masses[sel], drift=drift)


# --------------------------------------------------------------------------- MSD tables

_AXES = ("x", "y", "z")


@dataclass
class MSDTable:
    """An MSD table read from CSV: lag times (fs), MSD (Å²) and what else it gives.

    t_fs: (K,); msd_A2: (K,) total over the axes; msd_err_A2: (K,) or None (one sigma);
    n_ions: ions averaged or None; axes_A2: per-axis MSD ``{"x": (K,), ...}`` (may be
    empty); source: path.
    """

    t_fs: np.ndarray
    msd_A2: np.ndarray
    msd_err_A2: np.ndarray | None
    n_ions: int | None
    axes_A2: dict = field(default_factory=dict)
    source: str = ""


def is_msd_table(path: str | Path) -> bool:
    """True for ``.csv`` files (``viglas analyze`` reads them as MSD tables)."""
    return Path(path).suffix.lower() == ".csv"


def read_msd_table(path: str | Path) -> MSDTable:
    """Read an MSD table (CSV with a header row).

    Columns: ``t_ps`` (lag time, ps) and ``msd_A2`` (mean MSD, Å²) are required
    (``msd_A2`` may be replaced by the per-axis columns ``msd_x_A2, msd_y_A2,
    msd_z_A2``, which are summed); optional ``msd_err_A2`` (one-sigma standard error of
    each point), ``n_ions`` (ions averaged; one value, repeated or on the first row),
    and the per-axis columns. Blank lines and rows starting with ``#`` are skipped.

    Raises
    ------
    AnalysisError : missing file or columns, non-numeric entries, inconsistent
        per-axis columns; the message names the column and the fix.
    """
    import csv

    path = Path(path)
    if not path.exists():
        raise AnalysisError("MSD table not found", field="table", value=str(path))
    with open(path, newline="") as fh:
        lines = [ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
    rows = list(csv.DictReader(lines))
    if not rows:
        raise AnalysisError("MSD table has no rows", field="table", value=str(path),
                            allowed="a header row (t_ps,msd_A2,...) and one row per lag")
    cols = [c.strip() for c in rows[0].keys() if c is not None]
    rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in rows]
    axes = [a for a in _AXES if f"msd_{a}_A2" in cols]
    if "t_ps" not in cols or ("msd_A2" not in cols and len(axes) < 2):
        raise AnalysisError("MSD table lacks required columns", field="table", value=cols,
                            allowed="t_ps and msd_A2 (or msd_x_A2, msd_y_A2, msd_z_A2); "
                            "optional msd_err_A2, n_ions",
                            hint="rename the columns; units are ps and Angstrom^2")

    def col(name: str, optional: bool = False) -> np.ndarray | None:
        vals = [r.get(name, "") for r in rows]
        if optional and all(v == "" for v in vals):
            return None
        try:
            return np.array([float(v) for v in vals])
        except ValueError:
            bad = next(v for v in vals if not _is_float(v))
            raise AnalysisError("non-numeric entry in the MSD table", field=name,
                                value=bad, allowed="numbers in every row") from None

    t_ps = col("t_ps")
    axes_A2 = {a: col(f"msd_{a}_A2") for a in axes}
    if "msd_A2" in cols:
        msd = col("msd_A2")
        if len(axes) == 3:
            tot = sum(axes_A2.values())
            if not np.allclose(tot, msd, rtol=1e-3, atol=1e-9):
                raise AnalysisError("msd_A2 is not the sum of msd_x_A2, msd_y_A2, msd_z_A2",
                                    field="msd_A2", value=f"first mismatch at t_ps="
                                    f"{t_ps[np.argmax(~np.isclose(tot, msd, rtol=1e-3))]:g}",
                                    hint="give the total MSD (all axes) in msd_A2")
    else:
        msd = sum(axes_A2.values())
    err = col("msd_err_A2", optional=True) if "msd_err_A2" in cols else None
    n_ions = None
    if "n_ions" in cols:
        vals = {r["n_ions"] for r in rows if r.get("n_ions", "") != ""}
        if len(vals) > 1:
            raise AnalysisError("n_ions differs between rows", field="n_ions",
                                value=sorted(vals)[:4], allowed="one value")
        if vals:
            v = vals.pop()
            if not _is_float(v) or float(v) < 1 or float(v) != int(float(v)):
                raise AnalysisError("n_ions must be a positive integer", field="n_ions", value=v)
            n_ions = int(float(v))
    return MSDTable(t_fs=t_ps * 1000.0, msd_A2=msd, msd_err_A2=err, n_ions=n_ions,
                    axes_A2=axes_A2, source=str(path))


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False
