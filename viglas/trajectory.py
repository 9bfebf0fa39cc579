"""Trajectories on disk in H5MD (https://www.nongnu.org/h5md/), read back in chunks.

Layout written by :class:`H5MDWriter` (H5MD 1.1, readable by MDAnalysis)::

    /h5md                       version=[1, 1]; author, creator groups
    /particles/all/box          dimension=3, boundary=[periodic]*3
    /particles/all/box/edges    step, time [fs], value (n, 3, 3) [Angstrom]
    /particles/all/position     step, time [fs], value (n, N, 3) wrapped [Angstrom]
    /particles/all/image        step, time [fs], value (n, N, 3) int32 image flags
    /particles/all/velocity     (optional) value (n, N, 3) [Angstrom fs-1]
    /particles/all/species      (N,) int32 atomic numbers (time independent)
    /particles/all/mass         (N,) float64 [amu]
    /observables/<name>         step, time [fs], value (n,)   (temperature, ...)
    /parameters/viglas          attrs: timestep_fs, metadata_json

Unwrapped positions are ``position + image @ cell`` (row-vector cell). Positions are
chunked along time and compressed (``lzf`` by default: fast, read by every h5py-based
tool such as MDAnalysis; ``gzip`` for C HDF5 tools); nothing holds a whole trajectory
in memory. Every dataset carries HDF5 Fletcher-32 checksums (a standard HDF5 filter,
read by any HDF5 tool): data damaged after writing raise
:class:`viglas.errors.TrajectoryChecksumError` instead of being read as numbers.
Files written without checksums (older viglas) are read as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from viglas.errors import TrajectoryChecksumError, TrajectoryError
# lazy_kernel (compile a numba kernel on first use) lives in viglas.jit; it stays
# importable from here, where the trajectory readers of viglas.analysis found it first.
from viglas.jit import lazy_kernel  # noqa: F401

_TIME_UNIT = "fs"
_LENGTH_UNIT = "Angstrom"
_OBS_UNITS = {"temperature": "K", "potential_energy": "eV", "kinetic_energy": "eV",
              "total_energy": "eV", "pressure": "GPa", "volume": "Angstrom^3",
              "density": "g cm-3"}


def _h5py():
    import h5py

    return h5py


def read_error(path: str | Path, exc: OSError) -> TrajectoryError:
    """The viglas error for an ``OSError`` h5py raised while reading ``path``: a failed
    Fletcher-32 checksum becomes :class:`TrajectoryChecksumError`."""
    text = str(exc)
    low = text.lower()
    # HDF5 reports a failed Fletcher-32 check as "filter returned failure" (the checksum
    # filter runs first on read): on a checksummed file that is the checksum
    if "fletcher32" in low or "checksum" in low or ("filter" in low and _has_checksums(path)):
        return TrajectoryChecksumError(
            "trajectory data fail their checksum: the file was damaged after it was written",
            field="trajectory", value=str(path),
            hint="restore the file from a copy, or delete it (and its checkpoint) and rerun "
                 "the MD that wrote it")
    return TrajectoryError(f"cannot read the trajectory data ({text})".replace("\n", " "),
                           field="trajectory", value=str(path),
                           hint="the file may be damaged or truncated")


def _has_checksums(path: str | Path) -> bool:
    try:
        with _h5py().File(path, "r") as f:
            return bool(f["particles/all/position/value"].fletcher32)
    except (OSError, KeyError):
        return False


@contextmanager
def read_errors(path: str | Path):
    """Turn h5py's ``OSError`` inside the block into a named :class:`TrajectoryError`."""
    try:
        yield
    except OSError as exc:
        raise read_error(path, exc) from exc


# ------------------------------------------------------------- fast chunk reading
# Reading a long trajectory through h5py's filter pipeline costs more than the analysis
# (LZF-compressed image flags decompress at ~0.3 GB/s there). ``ChunkedFrames`` reads
# each stored chunk with ``read_direct_chunk``, verifies its Fletcher-32 checksum exactly
# as HDF5 does (H5_checksum_fletcher32; the stored value or its 1.6.2-era byte-swapped
# form), undoes LZF (numba) or deflate (zlib) and writes straight into the output
# array. Any layout or filter it does not know falls back to h5py, which verifies too.
_FILTER_DEFLATE, _FILTER_FLETCHER32, _FILTER_LZF = 1, 3, 32000


@lazy_kernel
def _fletcher32_kernel(numba):
    @numba.njit(cache=True, nogil=True)
    def fletcher32(data):
        """HDF5's H5_checksum_fletcher32 of a uint8 array: big-endian 16-bit words,
        sums folded every 360 words. Within a block the sums are taken in closed form,
        ``sum1 += sum w``, ``sum2 += tl*sum1 + sum (tl-j) w_j``, in uint32 (which cannot
        overflow in 360 words: that is why HDF5 folds there), so they vectorise."""
        n = data.shape[0]
        nw = n // 2
        words = data[:2 * nw].view(np.uint16)  # little-endian host: bytes swapped below
        sum1 = np.int64(0)
        sum2 = np.int64(0)
        i = 0
        while nw > 0:
            tl = 360 if nw > 360 else nw
            nw -= tl
            s = np.uint32(0)
            sw = np.uint32(0)
            tl32 = np.uint32(tl)
            for j in range(tl):
                v = np.uint32(words[i + j])
                w = ((v & np.uint32(0xFF)) << np.uint32(8)) | (v >> np.uint32(8))
                s += w
                sw += (tl32 - np.uint32(j)) * w
            i += tl
            sum2 += tl * sum1 + np.int64(sw)
            sum1 += np.int64(s)
            sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
            sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
        if n % 2:
            sum1 += np.int64(data[n - 1]) << 8
            sum2 += sum1
            sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
            sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
        return ((sum2 << 16) | sum1) & 0xFFFFFFFF

    return fletcher32


@lazy_kernel
def _lzf_kernel(numba):
    @numba.njit(cache=True, nogil=True)
    def lzf_decompress(src, dst):
        """liblzf's lzf_decompress (the h5py LZF filter's format, no header); returns
        the bytes written, or -1 for a malformed stream or a too small ``dst``."""
        ip = 0
        op = 0
        n_in = src.shape[0]
        n_out = dst.shape[0]
        while ip < n_in:
            ctrl = np.int64(src[ip])
            ip += 1
            if ctrl < 32:  # literal run of ctrl + 1 bytes
                ctrl += 1
                if op + ctrl > n_out or ip + ctrl > n_in:
                    return -1
                for k in range(ctrl):
                    dst[op + k] = src[ip + k]
                op += ctrl
                ip += ctrl
            else:  # back reference
                ln = ctrl >> 5
                dist = ((ctrl & 0x1F) << 8) + 1
                if ln == 7:
                    if ip >= n_in:
                        return -1
                    ln += np.int64(src[ip])
                    ip += 1
                if ip >= n_in:
                    return -1
                dist += np.int64(src[ip])
                ip += 1
                ln += 2
                ref = op - dist
                if op + ln > n_out or ref < 0:
                    return -1
                if dist == 1:  # a run of one byte
                    dst[op:op + ln] = dst[ref]
                elif dist >= 8:  # 8 bytes at a time: source and destination >= 8 apart
                    k = 0
                    while k + 8 <= ln:
                        b0, b1 = dst[ref + k], dst[ref + k + 1]
                        b2, b3 = dst[ref + k + 2], dst[ref + k + 3]
                        b4, b5 = dst[ref + k + 4], dst[ref + k + 5]
                        b6, b7 = dst[ref + k + 6], dst[ref + k + 7]
                        dst[op + k], dst[op + k + 1] = b0, b1
                        dst[op + k + 2], dst[op + k + 3] = b2, b3
                        dst[op + k + 4], dst[op + k + 5] = b4, b5
                        dst[op + k + 6], dst[op + k + 7] = b6, b7
                        k += 8
                    while k < ln:
                        dst[op + k] = dst[ref + k]
                        k += 1
                else:  # overlapping: byte by byte, the pattern repeats
                    for k in range(ln):
                        dst[op + k] = dst[ref + k]
                op += ln
        return op

    return lzf_decompress


def fletcher32(data) -> int:
    """HDF5's Fletcher-32 checksum of a bytes-like object (as the filter stores it)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    kern = _fletcher32_kernel()
    if kern is not None:
        return int(kern(arr))
    w = arr[: len(arr) // 2 * 2].reshape(-1, 2).astype(np.int64)  # pragma: no cover
    words = (w[:, 0] << 8) | w[:, 1]  # pragma: no cover
    sum1 = sum2 = 0  # pragma: no cover
    for k in range(0, len(words), 360):  # pragma: no cover
        for x in words[k:k + 360].tolist():
            sum1 += x
            sum2 += sum1
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    if len(arr) % 2:  # pragma: no cover
        sum1 += int(arr[-1]) << 8
        sum2 += sum1
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)  # pragma: no cover
    sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)  # pragma: no cover
    return ((sum2 << 16) | sum1) & 0xFFFFFFFF  # pragma: no cover


def _checksum_error(path, where: str) -> TrajectoryChecksumError:
    err = read_error(path, OSError(f"Fletcher32 checksum failed ({where})"))
    assert isinstance(err, TrajectoryChecksumError)
    return err


class ChunkedFrames:
    """Read frames ``start:stop`` of a time-chunked H5MD dataset fast, checksums verified.

    ``dset`` is an h5py dataset chunked along time only (chunk ``(C, *shape[1:])``, as
    :class:`H5MDWriter` writes). Stored chunks are read raw; a Fletcher-32 checksum is
    verified (a mismatch raises :class:`~viglas.errors.TrajectoryChecksumError`), LZF or
    deflate is undone, and the bytes go straight into the output. Datasets with other
    layouts or filters, and any chunk the fast path cannot decode, are read by h5py
    (which verifies the checksums itself). ``fast`` says which path is used.
    """

    def __init__(self, dset, path: str | Path = ""):
        self.dset = dset
        self.path = str(path)
        self.shape = tuple(dset.shape)
        self.dtype = dset.dtype
        chunks = dset.chunks
        self.chunk_frames = int(chunks[0]) if chunks else 0
        self.fast = False
        self._filters: list[int] = []
        if not chunks or tuple(chunks[1:]) != self.shape[1:] or not self.shape:
            return
        import sys

        if sys.byteorder != "little" or self.dtype.kind not in "fiu" or \
                self.dtype.byteorder == ">":
            return
        if not hasattr(dset.id, "read_direct_chunk"):  # pragma: no cover - old h5py
            return
        try:
            plist = dset.id.get_create_plist()
            codes = [int(plist.get_filter(i)[0]) for i in range(plist.get_nfilters())]
        except Exception:  # pragma: no cover - exotic plist
            return
        known = {_FILTER_DEFLATE, _FILTER_LZF, _FILTER_FLETCHER32}
        if any(c not in known for c in codes) or len(codes) > 2:
            return
        if _FILTER_FLETCHER32 in codes and codes[-1] != _FILTER_FLETCHER32:
            return
        if sum(c in (_FILTER_DEFLATE, _FILTER_LZF) for c in codes) > 1:
            return
        if (_FILTER_LZF in codes or _FILTER_FLETCHER32 in codes) and (
                _lzf_kernel() is None or _fletcher32_kernel() is None):
            return  # pragma: no cover - numba missing
        self._filters = codes
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.fast = True

    def read(self, start: int = 0, stop: int | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        """Frames ``start:stop`` as an array of the dataset's dtype (written into the
        leading frames of ``out`` when given: a C-contiguous array of that dtype with
        room for them, reused between calls to save allocations)."""
        n = self.shape[0]
        stop = n if stop is None else min(int(stop), n)
        start = max(0, int(start))
        k = max(stop - start, 0)
        if (out is None or out.dtype != self.dtype or out.shape[1:] != self.shape[1:]
                or out.shape[0] < k or not out.flags.c_contiguous):
            out = np.empty((k,) + self.shape[1:], dtype=self.dtype)
        else:
            out = out[:k]
        if stop <= start:
            return out
        if not self.fast:
            self.dset.read_direct(out, np.s_[start:stop])
            return out
        c = self.chunk_frames
        flat = out.reshape(-1).view(np.uint8)
        rb = self._row_bytes
        tmp = None
        for c0 in range((start // c) * c, stop, c):
            a, b = max(c0, start), min(c0 + c, stop)
            whole = a == c0 and b == c0 + c
            if whole:
                target = flat[(a - start) * rb:(b - start) * rb]
            else:
                if tmp is None:
                    tmp = np.empty(c * rb, dtype=np.uint8)
                target = tmp
            if not self._decode(c0, target):
                out[a - start:b - start] = self.dset[a:b]  # h5py verifies and raises
                continue
            if not whole:
                flat[(a - start) * rb:(b - start) * rb] = tmp[(a - c0) * rb:(b - c0) * rb]
        return out

    def chunks(self, start: int = 0, stop: int | None = None
               ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(a, b, frames a:b)`` stored chunk by stored chunk (fast path), each
        array a read-only view valid until the next step; without the fast path, one
        block read by h5py. Small pieces that stay in the CPU cache while used."""
        n = self.shape[0]
        stop = n if stop is None else min(int(stop), n)
        start = max(0, int(start))
        if stop <= start:
            return
        if not self.fast:
            yield start, stop, self.read(start, stop)
            return
        c = self.chunk_frames
        rb = self._row_bytes
        tmp = np.empty(c * rb, dtype=np.uint8)
        for c0 in range((start // c) * c, stop, c):
            a, b = max(c0, start), min(c0 + c, stop)
            view = self._decode(c0, tmp, zero_copy=True)
            if view is None:
                yield a, b, self.read(a, b)  # h5py verifies and raises
                continue
            arr = view[(a - c0) * rb:(b - c0) * rb].view(self.dtype).reshape(
                (b - a,) + self.shape[1:])
            yield a, b, arr

    def _decode(self, c0: int, target: np.ndarray, zero_copy: bool = False):
        """Decode the stored chunk starting at frame ``c0`` into ``target`` (uint8 of
        one whole chunk): True, or False when the fast path cannot (h5py then reads it).
        With ``zero_copy`` the decoded bytes are returned (``target`` or a view of the
        stored bytes), or None."""
        try:
            mask, raw = self.dset.id.read_direct_chunk((c0,) + (0,) * (len(self.shape) - 1))
        except Exception:
            return None if zero_copy else False
        data = np.frombuffer(raw, dtype=np.uint8)
        active = [code for i, code in enumerate(self._filters) if not (mask >> i) & 1]
        if active and active[-1] == _FILTER_FLETCHER32:
            if len(data) < 4:
                return None if zero_copy else False
            stored = int.from_bytes(bytes(data[-4:]), "little")
            data = data[:-4]
            got = int(_fletcher32_kernel()(data))
            c = got.to_bytes(4, "little")
            swapped = int.from_bytes(bytes([c[1], c[0], c[3], c[2]]), "little")
            if stored != got and stored != swapped:
                raise _checksum_error(self.path, f"{self.dset.name}, chunk at frame {c0}")
            active = active[:-1]
        elif _FILTER_FLETCHER32 in active:  # pragma: no cover - excluded in __init__
            return None if zero_copy else False
        fail = None if zero_copy else False
        done = target if zero_copy else True
        if not active:
            if len(data) != len(target):
                return fail
            if zero_copy:
                return data
            target[:] = data
            return True
        if active == [_FILTER_LZF]:
            return done if int(_lzf_kernel()(data, target)) == len(target) else fail
        if active == [_FILTER_DEFLATE]:
            import zlib

            try:
                buf = zlib.decompress(data)
            except zlib.error:
                return fail
            if len(buf) != len(target):
                return fail
            if zero_copy:
                return np.frombuffer(buf, dtype=np.uint8)
            target[:] = np.frombuffer(buf, dtype=np.uint8)
            return True
        return fail  # pragma: no cover


class H5MDWriter:
    """Append frames to an H5MD file; reopen with ``mode="a"`` to continue a run.

    Parameters
    ----------
    path : output file.
    numbers, masses : atomic numbers and masses (amu) of the N atoms.
    timestep_fs : MD time step in fs (stored as metadata).
    mode : ``"w"`` creates (overwrites), ``"a"`` appends to an existing file made by
        this writer (atom count and species must match).
    velocities : also store velocities (Å/fs).
    chunk_frames : frames per HDF5 chunk along time.
    compression : ``"lzf"`` (default), ``"gzip"`` or None.
    metadata : JSON-serialisable dict stored in ``/parameters/viglas``.
    checksums : store HDF5 Fletcher-32 checksums with every dataset (default; a damaged
        file then raises :class:`~viglas.errors.TrajectoryChecksumError` when read).
    """

    def __init__(self, path: str | Path, numbers: np.ndarray, masses: np.ndarray, *,
                 timestep_fs: float, mode: str = "w", velocities: bool = False,
                 chunk_frames: int = 64, compression: str | None = "lzf",
                 observables: tuple[str, ...] = (), metadata: Mapping[str, Any] | None = None,
                 checksums: bool = True):
        h5py = _h5py()
        self._fletcher32 = bool(checksums)
        self.path = Path(path)
        numbers = np.asarray(numbers, dtype=np.int32)
        self.n_atoms = len(numbers)
        self._chunk = max(1, int(chunk_frames))
        self._compression = compression
        if mode == "a" and self.path.exists():
            self._f = h5py.File(self.path, "a")
            try:
                old = self._f["particles/all/species"][()]
            except KeyError as exc:
                self._f.close()
                raise TrajectoryError("file exists but is not a viglas H5MD trajectory",
                                      field="path", value=str(self.path)) from exc
            if len(old) != self.n_atoms or not np.array_equal(old, numbers):
                self._f.close()
                raise TrajectoryError("existing trajectory has other atoms than this run",
                                      field="path", value=str(self.path),
                                      hint="use a new output path or delete the old file")
            self._velocities = "velocity" in self._f["particles/all"]
            self._fletcher32 = bool(self._f["particles/all/position/value"].fletcher32)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = f = h5py.File(self.path, "w")
        h5 = f.create_group("h5md")
        h5.attrs["version"] = np.array([1, 1], dtype=np.int32)
        h5.create_group("author").attrs["name"] = "viglas"
        from viglas import __version__

        cr = h5.create_group("creator")
        cr.attrs["name"] = "viglas"
        cr.attrs["version"] = __version__
        grp = f.create_group("particles/all")
        box = grp.create_group("box")
        box.attrs["dimension"] = np.int32(3)
        box.attrs["boundary"] = np.array([b"periodic"] * 3, dtype="S8")
        self._series(box, "edges", (3, 3), np.float64, _LENGTH_UNIT)
        self._series(grp, "position", (self.n_atoms, 3), np.float64, _LENGTH_UNIT)
        self._series(grp, "image", (self.n_atoms, 3), np.int32, None)
        self._velocities = bool(velocities)
        if velocities:
            self._series(grp, "velocity", (self.n_atoms, 3), np.float64, "Angstrom fs-1")
        grp.create_dataset("species", data=numbers, fletcher32=self._fletcher32)
        grp.create_dataset("mass", data=np.asarray(masses, dtype=np.float64),
                           fletcher32=self._fletcher32).attrs["unit"] = "amu"
        obs = f.create_group("observables")
        for name in observables:
            self._series(obs, name, (), np.float64, _OBS_UNITS.get(name))
        par = f.create_group("parameters/viglas")
        par.attrs["timestep_fs"] = float(timestep_fs)
        par.attrs["metadata_json"] = json.dumps(dict(metadata or {}), default=str)
        f.flush()

    def _series(self, parent, name: str, shape: tuple[int, ...], dtype, unit: str | None) -> None:
        g = parent.create_group(name)
        ck = self._fletcher32
        g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64,
                         chunks=(max(self._chunk, 256),), fletcher32=ck)
        t = g.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64,
                             chunks=(max(self._chunk, 256),), fletcher32=ck)
        t.attrs["unit"] = _TIME_UNIT
        comp = self._compression if shape else None
        v = g.create_dataset("value", shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                             chunks=(self._chunk if shape else 256, *shape),
                             compression=comp, fletcher32=ck)
        if unit:
            v.attrs["unit"] = unit

    @property
    def n_frames(self) -> int:
        """Number of frames written so far."""
        return int(self._f["particles/all/position/step"].shape[0])

    @staticmethod
    def _append(g, steps: np.ndarray, times_fs: np.ndarray, values: np.ndarray) -> None:
        n, k = g["step"].shape[0], len(steps)
        for key, data in (("step", steps), ("time", times_fs), ("value", values)):
            g[key].resize(n + k, axis=0)
            g[key][n:] = data

    def series_names(self) -> list[str]:
        """Group paths of every time series in the file (``particles/all/position``, ...)."""
        out: list[str] = []

        def visit(name, obj):
            if hasattr(obj, "keys") and "step" in obj and "value" in obj:
                out.append(name)
        self._f.visititems(visit)
        return out

    def append_series(self, steps, times_fs, series: Mapping[str, np.ndarray]) -> None:
        """Append a block of frames given as stored (group path -> values, positions
        already wrapped with their image flags), e.g. copied from another viglas H5MD
        file. Every series of this file must be given."""
        names = self.series_names()
        missing = sorted(set(names) - set(series))
        if missing:
            raise TrajectoryError("frame block lacks series of this trajectory",
                                  field="series", value=missing, allowed=", ".join(names))
        steps = np.asarray(steps, dtype=np.int64)
        times = np.asarray(times_fs, dtype=np.float64)
        for name in names:
            self._append(self._f[name], steps, times, series[name])

    def append(self, step: int, time_fs: float, positions: np.ndarray, cell: np.ndarray,
               velocities: np.ndarray | None = None,
               observables: Mapping[str, float] | None = None) -> None:
        """Write one frame. ``positions`` are unwrapped (continuous) Cartesian Å.

        For many frames prefer :meth:`append_frames`: each HDF5 append costs a resize
        and a chunk rewrite (tens of ms with compression)."""
        self.append_frames([step], [time_fs], np.asarray(positions)[None],
                           np.asarray(cell)[None],
                           None if velocities is None else np.asarray(velocities)[None],
                           None if observables is None else
                           {k: [v] for k, v in observables.items()})

    def append_frames(self, steps, times_fs, positions: np.ndarray, cells: np.ndarray,
                      velocities: np.ndarray | None = None,
                      observables: Mapping[str, np.ndarray] | None = None) -> None:
        """Write a block of frames at once.

        ``positions`` (n, N, 3) unwrapped Cartesian Å; ``cells`` (n, 3, 3) or one (3, 3)
        cell for all frames; ``velocities`` (n, N, 3) Å/fs; ``observables`` maps a name
        to n values. Stored as wrapped positions + image flags.
        """
        steps = np.asarray(steps, dtype=np.int64)
        times = np.asarray(times_fs, dtype=np.float64)
        pos = np.asarray(positions, dtype=np.float64)
        n = len(steps)
        if pos.shape != (n, self.n_atoms, 3) or len(times) != n:
            raise TrajectoryError("frame block has the wrong shape", field="positions",
                                  value=f"{pos.shape}, {n} steps, {len(times)} times",
                                  allowed=f"({n}, {self.n_atoms}, 3) with one time per step")
        cells = np.broadcast_to(np.asarray(cells, dtype=np.float64), (n, 3, 3))
        frac = np.einsum("faj,fji->fai", pos, np.linalg.inv(cells))
        image = np.floor(frac)
        wrapped = np.einsum("fai,fij->faj", frac - image, cells)
        p = self._f["particles/all"]
        self._append(p["box/edges"], steps, times, cells)
        self._append(p["position"], steps, times, wrapped)
        self._append(p["image"], steps, times, image.astype(np.int32))
        if self._velocities:
            if velocities is None:
                raise TrajectoryError("this trajectory stores velocities; pass them",
                                      field="velocities", value=None)
            self._append(p["velocity"], steps, times, velocities)
        if observables:
            obs = self._f["observables"]
            fresh = self.n_frames == n  # series may only be declared with the first frames
            for name, vals in observables.items():
                if name not in obs:
                    if not fresh:
                        continue
                    self._series(obs, name, (), np.float64, _OBS_UNITS.get(name))
                self._append(obs[name], steps, times, np.asarray(vals, dtype=np.float64))

    def truncate(self, n_frames: int) -> None:
        """Drop every frame after the first ``n_frames`` (used when resuming)."""
        def visit(_name, obj):
            if hasattr(obj, "keys") and "step" in obj and "value" in obj:
                for key in ("step", "time", "value"):
                    if obj[key].shape[0] > n_frames:
                        obj[key].resize(n_frames, axis=0)
        self._f.visititems(visit)
        self._f.flush()

    def flush(self) -> None:
        """Flush buffers to disk."""
        self._f.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if self._f:
            self._f.close()
            self._f = None

    def __enter__(self) -> "H5MDWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class H5MDTrajectory:
    """Read a viglas H5MD trajectory frame-range by frame-range.

    Attributes: ``n_frames``, ``n_atoms``, ``numbers``, ``symbols``, ``masses`` (amu),
    ``time_fs`` (n,), ``steps`` (n,), ``timestep_fs``, ``metadata`` (dict).
    """

    def __init__(self, path: str | Path):
        h5py = _h5py()
        self.path = Path(path)
        if not self.path.exists():
            raise TrajectoryError("trajectory file not found", field="path", value=str(path))
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise TrajectoryError(f"not a readable viglas H5MD file ({exc})", field="path",
                                  value=str(path)) from exc
        try:
            with read_errors(self.path):
                p = self._f["particles/all"]
                self.numbers = p["species"][()].astype(int)
                self.masses = p["mass"][()] if "mass" in p else None
                self.time_fs = p["position/time"][()]
                self.steps = p["position/step"][()]
        except KeyError as exc:
            raise TrajectoryError(f"not a readable viglas H5MD file ({exc})", field="path",
                                  value=str(path)) from exc
        par = self._f.get("parameters/viglas")
        self.timestep_fs = float(par.attrs["timestep_fs"]) if par is not None else None
        self.metadata = json.loads(par.attrs["metadata_json"]) if par is not None else {}
        self.n_frames = len(self.time_fs)
        self.n_atoms = len(self.numbers)
        self.has_velocities = "velocity" in p

    @property
    def symbols(self) -> list[str]:
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.numbers]

    def cells(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cell matrices (rows = lattice vectors, Å) of frames ``start:stop``."""
        with read_errors(self.path):
            return self._f["particles/all/box/edges/value"][start:stop]

    def positions(self, start: int = 0, stop: int | None = None,
                  indices: np.ndarray | None = None, unwrapped: bool = True) -> np.ndarray:
        """Positions (n, k, 3) in Å of frames ``start:stop`` and atoms ``indices``."""
        p = self._f["particles/all"]
        sel = slice(None) if indices is None else np.asarray(indices)
        with read_errors(self.path):
            pos = p["position/value"][start:stop][:, sel]
            if not unwrapped:
                return pos
            img = p["image/value"][start:stop][:, sel].astype(np.float64)
        cells = self.cells(start, stop)
        return pos + np.einsum("fai,fij->faj", img, cells)

    def velocities(self, start: int = 0, stop: int | None = None,
                   indices: np.ndarray | None = None) -> np.ndarray:
        """Velocities (n, k, 3) in Å/fs."""
        if not self.has_velocities:
            raise TrajectoryError("trajectory has no velocities", field="velocities",
                                  value=str(self.path))
        sel = slice(None) if indices is None else np.asarray(indices)
        with read_errors(self.path):
            return self._f["particles/all/velocity/value"][start:stop][:, sel]

    def iter_chunks(self, chunk: int = 2000, indices: np.ndarray | None = None,
                    unwrapped: bool = True) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(frame_slice, positions)`` blocks of at most ``chunk`` frames."""
        for s in range(0, self.n_frames, chunk):
            e = min(self.n_frames, s + chunk)
            yield slice(s, e), self.positions(s, e, indices, unwrapped)

    def observable(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(time_fs, value)`` of an observable series such as ``"temperature"``."""
        obs = self._f.get("observables")
        if obs is None or name not in obs:
            have = sorted(obs.keys()) if obs is not None else []
            raise TrajectoryError("no such observable", field="observable", value=name,
                                  allowed=", ".join(have) or "none stored")
        with read_errors(self.path):
            return obs[name]["time"][()], obs[name]["value"][()]

    def atoms(self, frame: int = -1):
        """The frame as an :class:`ase.Atoms` (wrapped positions)."""
        from ase import Atoms

        frame = frame % self.n_frames
        return Atoms(numbers=self.numbers, positions=self.positions(frame, frame + 1,
                     unwrapped=False)[0], cell=self.cells(frame, frame + 1)[0], pbc=True)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "H5MDTrajectory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
