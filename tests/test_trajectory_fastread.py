"""The fast H5MD read path (issue 15 item 4): stored chunks read raw, Fletcher-32
verified as HDF5 does, LZF/deflate undone, unwrapped in one compiled pass. It must give
the same arrays as h5py's own pipeline, refuse damaged data with the named error, and
the compiled MSD passes must equal the numpy ones."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from viglas.errors import TrajectoryChecksumError
from viglas.trajectory import ChunkedFrames, H5MDWriter, fletcher32


def _write(path, *, n_frames=300, compression="lzf", checksums=True, chunk_frames=64,
           npt=False, seed=3):
    rng = np.random.default_rng(seed)
    numbers = np.array([3] * 12 + [13] * 6 + [17] * 18)
    masses = np.where(numbers == 3, 6.94, np.where(numbers == 13, 26.98, 35.45))
    steps = np.arange(n_frames) * 5
    walk = np.cumsum(rng.normal(scale=0.3, size=(n_frames, len(numbers), 3)), axis=0)
    walk[:, 12:] *= 0.05
    pos = rng.uniform(0, 10, size=(1, len(numbers), 3)) + walk + 0.3  # drift of all
    cells = np.eye(3) * 10.0
    if npt:
        cells = np.eye(3)[None] * (10.0 + 0.2 * np.sin(np.arange(n_frames) / 7.0))[:, None, None]
        cells[:, 0, 1] = 0.4
    with H5MDWriter(path, numbers, masses, timestep_fs=1.0, compression=compression,
                    checksums=checksums, chunk_frames=chunk_frames) as w:
        for a in range(0, n_frames, 97):  # several appends, as MD writes them
            b = min(n_frames, a + 97)
            w.append_frames(steps[a:b], steps[a:b] * 1.0, pos[a:b],
                            cells[a:b] if npt else cells)
    return pos


@pytest.mark.parametrize("compression", ["lzf", "gzip", None])
@pytest.mark.parametrize("checksums", [True, False])
def test_chunk_reader_equals_h5py(tmp_path, compression, checksums):
    path = tmp_path / "t.h5"
    _write(path, compression=compression, checksums=checksums, chunk_frames=7)
    with h5py.File(path, "r") as f:
        for name in ("position/value", "image/value", "box/edges/value"):
            ds = f["particles/all/" + name]
            r = ChunkedFrames(ds, path)
            assert r.fast
            ref = ds[()]
            assert np.array_equal(r.read(), ref)
            assert np.array_equal(r.read(5, 123), ref[5:123])
            buf = np.empty((200,) + ref.shape[1:], dtype=ref.dtype)
            assert np.array_equal(r.read(14, 77, out=buf), ref[14:77])
            got = np.concatenate([a.copy() for _, _, a in r.chunks(3, 250)])
            assert np.array_equal(got, ref[3:250])


def test_fletcher32_matches_hdf5_stored_checksums(tmp_path):
    path = tmp_path / "t.h5"
    _write(path)
    with h5py.File(path, "r") as f:
        for name in ("position/value", "image/value"):
            ds = f["particles/all/" + name]
            for c in range(ds.id.get_num_chunks()):
                off = ds.id.get_chunk_info(c).chunk_offset
                _, raw = ds.id.read_direct_chunk(off)
                assert fletcher32(raw[:-4]) == int.from_bytes(raw[-4:], "little")
    # odd length and short inputs follow HDF5's rule for the last byte
    assert fletcher32(b"\x01") == ((0x0100 << 16) | 0x0100)
    assert fletcher32(b"") == 0


def test_damaged_chunk_raises_on_the_fast_path(tmp_path):
    from viglas.analysis import read_trajectory

    path = tmp_path / "t.h5"
    _write(path, n_frames=600)
    read_trajectory(path, species="Li")
    with h5py.File(path, "r") as f:
        ds = f["particles/all/image/value"]  # LZF-compressed: decoded by the fast path
        info = ds.id.get_chunk_info(ds.id.get_num_chunks() // 2)
        offset, size = info.byte_offset, info.size
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        fh.write(os.urandom(16))
    with h5py.File(path, "r") as f:
        r = ChunkedFrames(f["particles/all/image/value"], path)
        assert r.fast
        with pytest.raises(TrajectoryChecksumError, match="checksum"):
            r.read()
    with pytest.raises(TrajectoryChecksumError, match="checksum"):
        read_trajectory(path, species="Li")


@pytest.mark.parametrize("npt", [False, True])
@pytest.mark.parametrize("kw", [dict(species="Li"), dict(species="Li", every=3),
                                dict(species="Li", drift="system", com_weights="equal"),
                                dict(species=["Li", "Cl"], drift="none"),
                                dict(species="Al", drift="framework")])
def test_fast_reader_equals_numpy_reader(tmp_path, monkeypatch, npt, kw):
    import viglas.analysis.io as io

    path = tmp_path / "t.h5"
    _write(path, npt=npt, chunk_frames=16)
    fast = io.read_trajectory(path, **kw)
    monkeypatch.setattr(io, "_unwrap_kernel", lambda: None)
    slow = io.read_trajectory(path, **kw)
    assert fast.positions.shape == slow.positions.shape
    assert np.allclose(fast.positions, slow.positions, rtol=0, atol=1e-10)
    assert np.array_equal(fast.time_fs, slow.time_fs)


def test_system_drift_removes_the_centre_of_all_atoms(tmp_path):
    """Regression: with drift="system" the species belongs to the reference group; the
    centre must use each atom's unwrapped position once (the numpy path added the image
    shift of the species twice)."""
    import viglas.analysis.io as io

    path = tmp_path / "t.h5"
    _write(path)
    allpos = io.read_trajectory(path, species=None, drift="none").positions
    com = allpos.mean(axis=1)
    want = allpos[:, :12] - (com - com[0])[:, None, :]
    for kern in (True, False):
        if not kern:
            io_kernel = io._unwrap_kernel
            io._unwrap_kernel = lambda: None
        try:
            got = io.read_trajectory(path, species="Li", drift="system",
                                     com_weights="equal").positions
        finally:
            if not kern:
                io._unwrap_kernel = io_kernel
        assert np.allclose(got, want, atol=1e-10)


def test_compiled_msd_passes_equal_numpy():
    from viglas.analysis import msd as m

    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(513, 37, 3)), axis=0) + 50.0
    lags = m.sample_lags(len(x), 60)
    mean_a, pp_a = m._msd_blocks(x, lags, block=16)
    mean_b, pp_b = m._msd_blocks_numpy(x, lags, block=16)
    assert np.allclose(mean_a, mean_b, rtol=1e-10, atol=1e-10)
    assert np.allclose(pp_a, pp_b, rtol=1e-10, atol=1e-10)
    kern = m._nonoverlap_kernel()
    got = m._nonoverlap_stats(x, lags, max_samples=40)
    m._KERNELS[0] = m._KERNELS[0][:3] + (None,) + m._KERNELS[0][4:]
    try:
        ref = m._nonoverlap_stats(x, lags, max_samples=40)
    finally:
        m._KERNELS[0] = m._KERNELS[0][:3] + (kern,) + m._KERNELS[0][4:]
    for a, b in zip(got, ref):
        assert np.allclose(a, b, rtol=1e-12)
    with pytest.raises(Exception, match="NaN"):
        y = x.copy()
        y[100, 3, 1] = np.nan
        m.msd_fft(y, 1.0)
