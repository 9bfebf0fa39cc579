"""Damaged trajectories are refused, not analysed (issue 14, item 4): H5MD datasets
carry HDF5 Fletcher-32 checksums; a failed checksum is a named viglas error, also
through `viglas analyze` (one line, no traceback). Files without checksums (older
viglas) still read."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from viglas.errors import TrajectoryChecksumError
from viglas.trajectory import H5MDTrajectory, H5MDWriter

N_LI, N_CL, N_FRAMES = 20, 40, 400


def _write(path, checksums=True):
    rng = np.random.default_rng(5)
    numbers = np.array([3] * N_LI + [17] * N_CL)
    masses = np.where(numbers == 3, 6.94, 35.45)
    steps = np.arange(N_FRAMES) * 10
    walk = np.cumsum(rng.normal(scale=0.05, size=(N_FRAMES, len(numbers), 3)), axis=0)
    walk[:, N_LI:] *= 0.1
    pos = rng.uniform(0, 12, size=(1, len(numbers), 3)) + walk
    with H5MDWriter(path, numbers, masses, timestep_fs=2.0, checksums=checksums) as w:
        w.append_frames(steps, steps * 2.0, pos, np.eye(3) * 12.0)
    return pos


def _damage_middle_chunk(path) -> None:
    """Overwrite 4 kB inside a stored chunk of the positions in the middle of the run."""
    import h5py

    with h5py.File(path, "r") as f:
        ds = f["particles/all/position/value"]
        info = ds.id.get_chunk_info(ds.id.get_num_chunks() // 2)
        offset, size = info.byte_offset, info.size
    assert size > 4096
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2 - 2048)
        fh.write(os.urandom(4096))


def test_checksummed_trajectory_reads_back_exactly(tmp_path):
    path = tmp_path / "t.h5"
    pos = _write(path)
    with H5MDTrajectory(path) as tr:
        assert tr._f["particles/all/position/value"].fletcher32
        assert np.allclose(tr.positions(), pos, atol=1e-9)


def test_damaged_trajectory_raises_a_named_error(tmp_path):
    from viglas.analysis import analyze_trajectory

    path = tmp_path / "t.h5"
    _write(path)
    analyze_trajectory(str(path), species="Li", temperature_K=600)  # intact: fine
    _damage_middle_chunk(path)
    with pytest.raises(TrajectoryChecksumError, match="checksum"):
        analyze_trajectory(str(path), species="Li", temperature_K=600)
    with H5MDTrajectory(path) as tr, pytest.raises(TrajectoryChecksumError):
        tr.positions()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "viglas.cli", "analyze", str(path),
                           "--species", "Li", "--temperature", "600", "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "checksum" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_trajectory_without_checksums_still_reads(tmp_path):
    from viglas.analysis import analyze_trajectory

    path = tmp_path / "old.h5"
    pos = _write(path, checksums=False)
    with H5MDTrajectory(path) as tr:
        assert not tr._f["particles/all/position/value"].fletcher32
        assert np.allclose(tr.positions(), pos, atol=1e-9)
    res = analyze_trajectory(str(path), species="Li", temperature_K=600)
    assert res.d_cm2_s > 0
