"""Core plumbing: error messages, units, H5MD round trip."""

import numpy as np
import pytest

from viglas.errors import CompositionError, ViglasError
from viglas.trajectory import H5MDTrajectory, H5MDWriter
from viglas.units import A2_FS_TO_CM2_S, density_g_cm3, volume_a3_for_density


def test_error_one_line_names_field_value_allowed():
    err = CompositionError("x out of range", field="x", value=2.5, allowed="0 <= x < 2")
    assert isinstance(err, ViglasError) and isinstance(err, ValueError)
    assert err.one_line() == "x: x out of range (got 2.5; allowed: 0 <= x < 2)"


def test_units_roundtrip():
    assert A2_FS_TO_CM2_S == pytest.approx(0.1)
    v = volume_a3_for_density(100.0, 2.0)
    assert density_g_cm3(100.0, v) == pytest.approx(2.0)


def test_one_duration_to_steps_rule():
    """viglas.units.md_steps: nearest for configured durations, up to cover a schedule,
    down (with slack for float noise) for a cap."""
    from viglas.units import md_steps

    assert md_steps(20 * 1000.0, 2.0) == 10000
    assert md_steps(2583.3, 1.0) == 2583 and md_steps(2583.3, 1.0, "up") == 2584
    assert md_steps(5166.67, 2.0, "up") == 2584 and md_steps(5166.67, 2.0, "down") == 2583
    assert md_steps((0.1 + 0.2) * 1000.0, 0.3, "down") == 1000  # 999.9999999999999 steps
    with pytest.raises(ValueError):
        md_steps(10.0, 1.0, "ceil")


def test_atomic_write_replaces_whole_files(tmp_path):
    from viglas.files import atomic_write_bytes, atomic_write_text

    f = tmp_path / "a.json"
    atomic_write_text(f, "old")
    atomic_write_bytes(f, lambda fh: fh.write(b"new"))
    assert f.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_h5md_roundtrip_unwrap_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    n, frames = 5, 12
    cell = np.diag([5.0, 6.0, 7.0])
    steps = rng.normal(scale=1.5, size=(frames, n, 3))
    traj = np.cumsum(steps, axis=0)  # wanders across many boundaries
    path = tmp_path / "t.h5"
    numbers = np.array([3, 3, 13, 17, 8])
    with H5MDWriter(path, numbers, np.ones(n), timestep_fs=2.0,
                    observables=("temperature",)) as w:
        for i in range(8):
            w.append(i * 10, i * 20.0, traj[i], cell, observables={"temperature": 300 + i})
    # resume: pretend the last 2 frames were written after the checkpoint
    with H5MDWriter(path, numbers, np.ones(n), timestep_fs=2.0, mode="a") as w:
        w.truncate(6)
        assert w.n_frames == 6
        for i in range(6, frames):
            w.append(i * 10, i * 20.0, traj[i], cell, observables={"temperature": 300 + i})
    with H5MDTrajectory(path) as t:
        assert t.n_frames == frames
        np.testing.assert_allclose(t.time_fs, 20.0 * np.arange(frames))
        np.testing.assert_allclose(t.positions(), traj, atol=1e-10)
        wrapped = t.positions(unwrapped=False)
        assert wrapped.min() >= 0 and (wrapped < np.diag(cell)).all()
        np.testing.assert_allclose(t.observable("temperature")[1], 300 + np.arange(frames))
        chunks = [p for _, p in t.iter_chunks(chunk=5, indices=[0, 2])]
        np.testing.assert_allclose(np.concatenate(chunks), traj[:, [0, 2]], atol=1e-10)
        assert t.symbols == ["Li", "Li", "Al", "Cl", "O"]


def test_h5md_block_append_equals_frame_by_frame(tmp_path):
    rng = np.random.default_rng(1)
    n, frames = 4, 9
    cells = np.array([np.diag([5.0, 6.0, 7.0]) * (1 + 0.01 * i) for i in range(frames)])
    traj = np.cumsum(rng.normal(scale=2.0, size=(frames, n, 3)), axis=0)
    temps = 300.0 + rng.normal(size=frames)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    numbers = np.array([3, 13, 17, 8])
    with H5MDWriter(a, numbers, np.ones(n), timestep_fs=1.0) as w:
        for i in range(frames):
            w.append(i, float(i), traj[i], cells[i], observables={"temperature": temps[i]})
    with H5MDWriter(b, numbers, np.ones(n), timestep_fs=1.0) as w:
        w.append_frames(range(5), np.arange(5.0), traj[:5], cells[:5],
                        observables={"temperature": temps[:5]})
        w.append_frames(range(5, frames), np.arange(5.0, frames), traj[5:], cells[5:],
                        observables={"temperature": temps[5:]})
        with pytest.raises(ViglasError):
            w.append_frames([0], [0.0], traj[:2], cells[0])
    with H5MDTrajectory(a) as ta, H5MDTrajectory(b) as tb:
        np.testing.assert_array_equal(ta.positions(), tb.positions())
        np.testing.assert_allclose(tb.positions(), traj, atol=1e-10)
        np.testing.assert_array_equal(ta.cells(), tb.cells())
        np.testing.assert_array_equal(ta.observable("temperature")[1],
                                      tb.observable("temperature")[1])


def test_h5md_append_series_copies_stored_frames_and_requires_every_series(tmp_path):
    rng = np.random.default_rng(2)
    traj = np.cumsum(rng.normal(scale=2.0, size=(6, 3, 3)), axis=0)
    cell = np.diag([4.0, 5.0, 6.0])
    src, dst = tmp_path / "src.h5", tmp_path / "dst.h5"
    with H5MDWriter(src, [3, 17, 8], np.ones(3), timestep_fs=1.0) as w:
        w.append_frames(range(6), np.arange(6.0), traj, cell)
    import h5py

    with H5MDWriter(dst, [3, 17, 8], np.ones(3), timestep_fs=1.0) as w, \
            h5py.File(src, "r") as f:
        names = w.series_names()
        assert set(names) == {"particles/all/box/edges", "particles/all/position",
                              "particles/all/image"}
        with pytest.raises(ViglasError):
            w.append_series([0], [0.0], {"particles/all/position": f[names[0]]["value"][:1]})
        w.append_series(f["particles/all/position/step"][:4], np.arange(4.0),
                        {g: f[g]["value"][:4] for g in names})
        w.append_frames(range(4, 6), np.arange(4.0, 6.0), traj[4:], cell)
    with H5MDTrajectory(dst) as t:
        np.testing.assert_allclose(t.positions(), traj, atol=1e-10)
