"""MD runner: ensembles, schedules, H5MD output, guards, checkpoint/resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from viglas.md import walltime
from viglas.errors import CheckpointError, ConfigError, MDError
from viglas.potentials import IonicPotential
from viglas.trajectory import H5MDTrajectory
from viglas.md import melt_quench, run_md
from viglas.md import Schedule

from test_potential import LACO_LIKE, random_cell


@pytest.fixture(scope="module")
def glass84(tmp_path_factory):
    """84-atom LACO-like cell, relaxed with the trial potential (a sane MD start)."""
    from ase.optimize import FIRE

    a = random_cell(LACO_LIKE, 2.2, seed=1, dmin=2.0)
    a.calc = IonicPotential("trial")
    FIRE(a, logfile=None).run(fmax=0.5, steps=200)
    a.calc = None
    path = tmp_path_factory.mktemp("start") / "start.extxyz"
    a.write(path)
    return a, path


def _calc():
    return IonicPotential("trial")


def test_langevin_nvt_files_and_mdanalysis(glass84, tmp_path):
    atoms, _ = glass84
    r = run_md(atoms, _calc(), ensemble="nvt", thermostat="langevin", temperature_K=800,
               steps=100, save_every=10, checkpoint_every=50, workdir=tmp_path,
               progress=False, store_velocities=True)
    assert r.steps_done == 100 and r.n_frames == 11 and not r.resumed
    assert np.all(atoms.get_momenta() == 0)  # input not modified
    with H5MDTrajectory(r.trajectory) as t:
        np.testing.assert_array_equal(t.steps, np.arange(0, 101, 10))
        np.testing.assert_allclose(t.time_fs, np.arange(0, 101, 10) * 1.0)
        assert t.has_velocities
        np.testing.assert_allclose(t.positions(-1)[0], r.atoms.positions, atol=1e-10)
        temps = t.observable("temperature")[1]
        wrapped = t.positions(4, 5, unwrapped=False)[0]
    log = np.genfromtxt(r.log, delimiter=",", names=True)
    np.testing.assert_allclose(log["temperature_K"], temps)
    assert log["target_temperature_K"][-1] == 800
    assert not Path(r.workdir, "traj.parts").exists()
    assert json.loads(Path(r.workdir, "traj.result.json").read_text())["n_frames"] == 11
    # centre of mass is fixed under Langevin (FixCom)
    com0 = atoms.get_center_of_mass()
    assert np.allclose(r.atoms.get_center_of_mass(), com0, atol=1e-8)
    import MDAnalysis as mda

    u = mda.Universe.empty(len(atoms), trajectory=False)
    u.load_new(r.trajectory, format="H5MD")
    assert u.trajectory.n_frames == 11
    u.trajectory[4]
    np.testing.assert_allclose(u.atoms.positions, wrapped, atol=1e-4)
    assert u.trajectory.time == pytest.approx(0.040)  # MDAnalysis reports ps


#: (ensemble, thermostat, pressure_GPa) of every integrator run_md offers with a bath.
ENSEMBLES = [("nvt", "langevin", None), ("nvt", "bussi", None), ("nvt", "nose-hoover", None),
             ("npt", "nose-hoover", 0.5), ("npt", "langevin", 0.5)]


def _assert_same_run(res, ref) -> None:
    """Two MD results are the same run, bit for bit: final state, frames and log."""
    np.testing.assert_array_equal(res.atoms.positions, ref.atoms.positions)
    np.testing.assert_array_equal(res.atoms.get_momenta(), ref.atoms.get_momenta())
    np.testing.assert_array_equal(np.asarray(res.atoms.cell), np.asarray(ref.atoms.cell))
    with H5MDTrajectory(ref.trajectory) as a, H5MDTrajectory(res.trajectory) as b:
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.positions(), b.positions())
    assert Path(ref.log).read_text() == Path(res.log).read_text()


@pytest.mark.parametrize("ensemble,thermostat,pressure", ENSEMBLES)
def test_resume_reproduces_uninterrupted_run(glass84, tmp_path, ensemble, thermostat,
                                             pressure):
    """Stop after 40 steps, restart with 80: identical to one 80-step run, bit for bit."""
    atoms, _ = glass84
    kw = dict(ensemble=ensemble, thermostat=thermostat, temperature_K=900,
              pressure_GPa=pressure, save_every=10, checkpoint_every=20, seed=7,
              progress=False)
    ref = run_md(atoms, _calc(), steps=80, workdir=tmp_path / "ref", **kw)
    run_md(atoms, _calc(), steps=40, workdir=tmp_path / "cut", **kw)
    res = run_md(atoms, _calc(), steps=80, workdir=tmp_path / "cut", **kw)
    assert res.resumed
    _assert_same_run(res, ref)
    if ensemble == "npt":
        assert not np.allclose(np.asarray(ref.atoms.cell), np.asarray(atoms.cell))


@pytest.mark.parametrize("ensemble,thermostat,pressure", ENSEMBLES)
def test_trajectory_does_not_depend_on_checkpoint_interval(glass84, tmp_path, ensemble,
                                                           thermostat, pressure):
    """The integrator is rebuilt from its saved state at every checkpoint: that must
    not change the dynamics (checkpoints every 7 steps vs. one at the end)."""
    atoms, _ = glass84
    kw = dict(ensemble=ensemble, thermostat=thermostat, temperature_K=900,
              pressure_GPa=pressure, save_every=10, seed=7, progress=False, steps=60)
    a = run_md(atoms, _calc(), workdir=tmp_path / "a", checkpoint_every=7, **kw)
    b = run_md(atoms, _calc(), workdir=tmp_path / "b", checkpoint_every=60, **kw)
    _assert_same_run(a, b)


def _stop_after(n_calls: int) -> IonicPotential:
    """The trial potential, asking for a wall-time stop at its n-th force call (as the
    SIGALRM handler of a wall-time segment would, at an arbitrary moment). Same class
    and parameters as :func:`_calc`, so the run signature is the same."""
    calc = _calc()
    inner, left = calc.calculate, [n_calls]

    def calculate(*args, **kwargs):
        inner(*args, **kwargs)
        left[0] -= 1
        if left[0] == 0:
            walltime.request_stop()

    calc.calculate = calculate
    return calc


@pytest.mark.parametrize("ensemble,thermostat,pressure", ENSEMBLES)
def test_walltime_stop_mid_segment_then_resume_is_bit_identical(glass84, tmp_path, ensemble,
                                                                thermostat, pressure):
    """A stop request between checkpoints: run_md checkpoints at that very step, raises
    WallTimeUp, and the resumed run ends exactly where an uninterrupted run ends."""
    atoms, _ = glass84
    kw = dict(ensemble=ensemble, thermostat=thermostat, temperature_K=900,
              pressure_GPa=pressure, save_every=10, checkpoint_every=20, seed=7,
              progress=False, steps=80)
    ref = run_md(atoms, _calc(), workdir=tmp_path / "ref", **kw)
    try:
        with pytest.raises(walltime.WallTimeUp, match=r"step (\d+) of 80") as exc:
            run_md(atoms, _stop_after(37), workdir=tmp_path / "cut", **kw)
    finally:
        walltime.clear()
    stopped_at = int(exc.value.args[0].split("step ")[1].split()[0])
    assert 30 < stopped_at < 40  # not a checkpoint (every 20) nor a frame (every 10) step
    ck = np.load(tmp_path / "cut" / "traj.ckpt.npz")
    assert json.loads(str(ck["meta_json"]))["step"] == stopped_at
    res = run_md(atoms, _calc(), workdir=tmp_path / "cut", **kw)
    assert res.resumed
    _assert_same_run(res, ref)


def test_nve_energy_drift_and_momentum(glass84, tmp_path, capsys):
    atoms, _ = glass84
    r = run_md(atoms, _calc(), ensemble="nve", temperature_K=600, timestep_fs=1.0, steps=300,
               save_every=10, workdir=tmp_path, progress=False)
    with capsys.disabled():
        print(f"\nrun_md NVE 84 atoms ~{r.mean_temperature_K:.0f} K, dt 1 fs, 300 steps: "
              f"drift {r.energy_drift_eV_atom_ps * 1e3:.3f} meV/atom/ps")
    assert abs(r.energy_drift_eV_atom_ps) < 2e-3
    assert np.abs(r.atoms.get_momenta().sum(axis=0)).max() < 1e-9


def test_temperature_schedule_is_followed(glass84, tmp_path):
    atoms, _ = glass84
    sched = Schedule.constant(300).then_ramp(1500, 200).then_hold(200)
    r = run_md(atoms, _calc(), ensemble="nvt", thermostat="bussi", temperature_K=sched,
               steps=400, save_every=10, workdir=tmp_path, progress=False,
               metadata={"purpose": "test"})
    log = np.genfromtxt(r.log, delimiter=",", names=True)
    np.testing.assert_allclose(log["target_temperature_K"], [sched(t) for t in log["time_fs"]])
    hold = log["time_fs"] >= 300
    assert 1100 < log["temperature_K"][hold].mean() < 1900
    assert log["temperature_K"][1:5].mean() < 900


def test_guards_stop_with_named_errors_and_keep_checkpoint(glass84, tmp_path):
    atoms, _ = glass84
    kw = dict(ensemble="nvt", temperature_K=1000, save_every=10, checkpoint_every=20,
              progress=False)
    with pytest.raises(MDError) as exc:
        run_md(atoms, _calc(), steps=60, workdir=tmp_path / "d", min_distance_A=5.0, **kw)
    assert exc.value.field == "min_distance_A"
    # runaway temperature: a guard ceiling below the target; first checkpoint survives
    from ase import units

    hot = atoms.copy()
    hot.set_momenta(np.zeros((len(hot), 3)))
    sched = Schedule.constant(300).then_hold(30).then_ramp(20000, 10)
    with pytest.raises(MDError) as exc:
        run_md(hot, _calc(), ensemble="nvt", thermostat="bussi", temperature_K=sched,
               steps=100, save_every=10, checkpoint_every=20, workdir=tmp_path / "t",
               max_temperature_K=3000, tdamp_fs=5.0, progress=False)
    assert exc.value.field == "temperature_K"
    ckpt = tmp_path / "t" / "traj.ckpt.npz"
    assert ckpt.exists() and "traj.ckpt.npz" in exc.value.one_line()
    with np.load(ckpt) as z:
        assert json.loads(str(z["meta_json"]))["step"] >= 20
    del units
    # NaN forces
    from ase.calculators.calculator import Calculator

    class NaNCalc(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": float("nan"), "forces": np.zeros((len(atoms), 3))}

    with pytest.raises(MDError) as exc:
        run_md(atoms, NaNCalc(), steps=10, workdir=tmp_path / "n", **kw)
    assert exc.value.field == "energy"


def test_bad_inputs_and_foreign_checkpoint(glass84, tmp_path):
    atoms, _ = glass84
    with pytest.raises(ConfigError):
        run_md(atoms, _calc(), ensemble="nvx", steps=10, workdir=tmp_path)
    with pytest.raises(ConfigError):
        run_md(atoms, _calc(), ensemble="npt", steps=10, workdir=tmp_path)
    with pytest.raises(ConfigError):
        run_md(atoms, _calc(), steps=10, save_every=4, checkpoint_every=0, workdir=tmp_path)
    with pytest.raises(ConfigError):
        run_md(atoms, _calc(), ensemble="npt", thermostat="bussi", pressure_GPa=0.0,
               steps=10, workdir=tmp_path)
    with pytest.raises(ConfigError):
        run_md(atoms, _calc(), steps=10, timestep_fs=50.0, workdir=tmp_path)
    from viglas.errors import CalculatorError

    with pytest.raises(CalculatorError):  # EMT has no Li/Cl: fails before any step
        run_md(atoms, "emt", steps=10, workdir=tmp_path / "emt")
    r = run_md(atoms, _calc(), steps=20, save_every=10, checkpoint_every=15,  # -> 20
               workdir=tmp_path / "x", progress=False)
    assert r.n_frames == 3
    with pytest.raises(CheckpointError):  # same files, other settings
        run_md(atoms, _calc(), steps=20, save_every=10, seed=99, workdir=tmp_path / "x",
               progress=False)


def test_melt_quench_returns_glass_and_cooling_curve(glass84, tmp_path):
    atoms, _ = glass84
    mq = melt_quench(atoms, _calc(), t_melt_K=1500, t_final_K=500, hold_ps=0.05,
                     cool_rate_K_ps=10000, heat_rate_K_ps=20000, pressure_GPa=0.0,
                     timestep_fs=1.0, workdir=tmp_path, seed=3, save_every=20,
                     progress=False)
    assert len(mq.temperature_K) >= 10
    assert mq.target_temperature_K[0] == pytest.approx(1500, abs=1)
    assert mq.target_temperature_K[-1] == pytest.approx(500, abs=1)
    assert np.all(np.diff(mq.target_temperature_K) <= 1e-9)
    assert len(mq.volume_A3) == len(mq.potential_energy_eV) == len(mq.temperature_K)
    assert mq.final_density_g_cm3 > 0.5
    assert mq.atoms.calc is None and len(mq.atoms) == len(atoms)


_SCRIPT = textwrap.dedent("""
    import sys
    from ase.io import read
    from viglas.potentials import IonicPotential
    from viglas.md import run_md
    atoms = read(sys.argv[1])
    run_md(atoms, IonicPotential("trial"), ensemble="nvt", thermostat="langevin",
           temperature_K=900, steps=int(sys.argv[3]), save_every=5, checkpoint_every=20,
           seed=11, workdir=sys.argv[2], progress=False)
""")


def _ckpt_step(path: Path) -> int:
    try:
        with np.load(path) as z:
            return int(json.loads(str(z["meta_json"]))["step"])
    except Exception:  # noqa: BLE001 - being replaced right now
        return -1


def test_kill9_at_random_moments_then_resume(glass84, tmp_path):
    """kill -9 twice mid-run (real subprocesses); the resumed trajectory has every frame
    exactly once and equals an uninterrupted run."""
    from ase.io import read

    _, start = glass84
    atoms = read(start)  # exactly what the subprocess reads
    steps = 300
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    work = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    rng = np.random.default_rng(0)
    kills = 0
    for target in (40, 160):
        proc = subprocess.Popen([sys.executable, str(script), str(start), str(work), str(steps)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None \
                and _ckpt_step(work / "traj.ckpt.npz") < target:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0, 0.3)))  # somewhere inside a segment or a write
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
    assert kills >= 1, "the run finished before it could be killed"
    res = run_md(atoms, IonicPotential("trial"), ensemble="nvt", thermostat="langevin",
                 temperature_K=900, steps=steps, save_every=5, checkpoint_every=20, seed=11,
                 workdir=work, progress=False)
    assert res.resumed
    ref = run_md(atoms, IonicPotential("trial"), ensemble="nvt", thermostat="langevin",
                 temperature_K=900, steps=steps, save_every=5, checkpoint_every=20, seed=11,
                 workdir=tmp_path / "ref", progress=False)
    with H5MDTrajectory(res.trajectory) as a, H5MDTrajectory(ref.trajectory) as b:
        np.testing.assert_array_equal(a.steps, np.arange(0, steps + 1, 5))
        np.testing.assert_array_equal(a.positions(), b.positions())
    log = np.genfromtxt(res.log, delimiter=",", names=True)
    np.testing.assert_array_equal(log["step"], np.arange(0, steps + 1, 5))
    assert Path(res.log).read_text() == Path(ref.log).read_text()


def test_melt_quench_stops_with_named_error_when_the_melt_boils(tmp_path):
    """A nearly uncharged, repulsive-only 'melt' at 3000 K and 0 GPa expands without
    bound: melt_quench must say so (field t_melt_K) instead of returning a gas."""
    from viglas.errors import MDError
    from viglas.potentials import load_parameters
    from viglas.potentials.parameters import parameters_from_dict

    d = load_parameters("trial").model_dump()
    d["charge_scale"] = 0.02
    d["pairs"] = {k: {"A": 0.0, "rho": 0.3, "C": 0.0, "B": 50.0} for k in d["pairs"]}
    gas = IonicPotential(parameters_from_dict(d))
    atoms = random_cell(LACO_LIKE, 2.2, seed=1, dmin=2.0)
    with pytest.raises(MDError) as exc:
        melt_quench(atoms, gas, t_melt_K=3000, t_final_K=2000, hold_ps=0.3,
                    cool_rate_K_ps=10000, heat_rate_K_ps=1e5, timestep_fs=1.0,
                    workdir=tmp_path, seed=1, save_every=20, progress=False, pdamp_fs=50)
    assert exc.value.field == "t_melt_K" and "boiled" in str(exc.value)
    assert (tmp_path / "melt_quench.h5").exists()  # computed data kept
