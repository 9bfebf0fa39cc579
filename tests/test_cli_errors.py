"""The installed `viglas` entry point ends every failure with a message, never a
traceback (issue 14, items 5 and 6): usage errors of the click flavour the installed
typer raises (typer >= 0.26 bundles its own click), and read-only output locations in
run / md / melt-quench / export / analyze (one line naming the location, before any
computing where the command can know the output up front)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
VIGLAS = shutil.which("viglas") or str(Path(sys.executable).with_name("viglas"))


def _viglas(*args: str, cwd: Path | None = None, timeout: float = 300):
    return subprocess.run([VIGLAS, *args], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=timeout)


def test_installed_typer_and_click_versions_are_the_ones_handled():
    """cli.main knows the exception classes of the installed click flavours."""
    import typer

    from viglas.cli import _cli_exception_classes

    errors, exits, aborts = _cli_exception_classes()
    assert typer.Exit in exits and typer.Abort in aborts
    try:
        from typer._click.exceptions import ClickException as Bundled
    except ImportError:  # older typer: plain click
        from click.exceptions import ClickException as Bundled
    assert Bundled in errors


@pytest.mark.parametrize("args, expected", [
    (["frobnicate"], "No such command 'frobnicate'"),
    (["md", "glass.cif", "--temprature", "300"], "No such option: --temprature"),
    (["build", "LiAlCl4", "-o", "x.cif"], "Missing option '--atoms'"),
    (["md"], "Missing argument 'STRUCTURE'"),
    (["run", "configs/quick.yaml", "--jobs", "zero"], "Invalid value for '--jobs'"),
])
def test_usage_errors_print_usage_not_a_traceback(tmp_path, args, expected):
    proc = _viglas(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) <= 6


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot write into, even as root (sysfs refuses new files)."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no read-only location for root")
        return Path("/sys/kernel")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    return ro


def _one_error_line(proc, *words: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_read_only_outputs_give_one_line(tmp_path):
    ro = _unwritable(tmp_path)
    from ase.build import bulk
    from ase.io import write

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "c", "composition": "LiAlCl2.5O0.75",
                                   "structure": {"n_atoms": 42}}))
    _one_error_line(_viglas("run", str(cfg), "--workdir", str(ro / "w"), "--quiet"),
                    "workdir", str(ro / "w"))
    # md and melt-quench refuse before any MD step
    struct = tmp_path / "s.extxyz"
    write(struct, bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2))
    _one_error_line(_viglas("md", str(struct), "-c", "emt", "--steps", "10",
                            "-o", str(ro / "traj.h5"), "--no-progress"), "--output")
    _one_error_line(_viglas("melt-quench", str(struct), "-c", "emt", "--t-melt", "900",
                            "-o", str(ro / "glass.extxyz"), "--no-progress"), "output")
    res = tmp_path / "results.json"
    res.write_text("{}")
    _one_error_line(_viglas("export", str(res), "-f", "json", "-o", str(ro / "x.json")),
                    "--out")
    # analyze: a file-system error while writing is one line too
    from test_trajectory_checksums import _write

    traj = tmp_path / "t.h5"
    _write(traj)
    _one_error_line(_viglas("analyze", str(traj), "--species", "Li", "--temperature", "600",
                            "-o", str(ro / "out")), str(ro / "out"))


def test_oversized_cells_are_refused_up_front(tmp_path, monkeypatch):
    """Issue 14 item 8: n_atoms: 100000000 fails --check and `viglas build` at once
    with one line (no MemoryError after minutes); a cell larger than this machine's
    memory is refused by build and run before anything is computed."""
    import time

    from viglas.config import parse_config
    from viglas.errors import StructureError
    from viglas.structures import builder, check_memory, estimate_memory_bytes

    t0 = time.time()
    _one_error_line(_viglas("build", "LiAlCl4", "--atoms", "100000000",
                            "-o", str(tmp_path / "x.cif")), "n_atoms", "100000000")
    assert not (tmp_path / "x.cif").exists()
    cfg = tmp_path / "big.yaml"
    cfg.write_text(yaml.safe_dump({"name": "big", "composition": "LiAlCl4",
                                   "structure": {"n_atoms": 100000000}}))
    _one_error_line(_viglas("run", str(cfg), "--check"), "structure.n_atoms", "GB")
    assert time.time() - t0 < 120
    # machine memory: 200 000 atoms need ~2 GB; pretend 1 GB is free
    assert 1.5e9 < estimate_memory_bytes(200_000) < 3e9
    with pytest.raises(StructureError, match="GB of memory"):
        check_memory(200_000, available=10 ** 9)
    monkeypatch.setattr(builder, "available_memory_bytes", lambda: 10 ** 9)
    with pytest.raises(StructureError, match="this machine has 1.0 GB"):
        builder.build_glass("LiAlCl4", 200_000)
    from viglas.workflows.run import run_local

    conf = parse_config({"name": "b", "composition": "LiAlCl4",
                         "structure": {"n_atoms": 200_000}})
    with pytest.raises(StructureError, match="structure.n_atoms"):
        run_local(conf, tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()


def test_small_cli_frictions_of_item_10(tmp_path):
    """An empty structure file, a negative --t-melt: one line naming the input/option."""
    (tmp_path / "empty.extxyz").write_text("")
    _one_error_line(_viglas("md", str(tmp_path / "empty.extxyz"), "--steps", "10",
                            "-o", str(tmp_path / "t.h5")), "input", "empty.extxyz")
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "s.extxyz", bulk("Cu", "fcc", a=3.6, cubic=True))
    _one_error_line(_viglas("melt-quench", str(tmp_path / "s.extxyz"), "-c", "emt",
                            "--t-melt", "-5", "-o", str(tmp_path / "g.extxyz")), "--t-melt", "-5")


def _interrupted_md(tmp_path, preexec_fn=None):
    """Start `viglas md` (EMT, 4000 steps), send SIGINT once its first checkpoint exists;
    return (args, returncode, stderr)."""
    import signal
    import time

    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "s.extxyz", bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2))
    args = [VIGLAS, "md", str(tmp_path / "s.extxyz"), "-c", "emt", "--temperature", "300",
            "--steps", "4000", "--save-every", "10", "--checkpoint-every", "100",
            "-o", str(tmp_path / "traj.h5")]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=preexec_fn)
    ckpt = tmp_path / "traj.ckpt.npz"
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists() and proc.poll() is None:
        time.sleep(0.1)
    assert ckpt.exists(), proc.communicate()[1]
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return args, proc.returncode, err


def test_ctrl_c_prints_the_interrupted_line_and_the_rerun_says_it_resumed(tmp_path):
    """Ctrl-C (SIGINT) during `viglas md`: exit 130 with "interrupted: rerun ..." and no
    traceback; the rerun says it resumed from the checkpoint and finishes."""
    args, rc, err = _interrupted_md(tmp_path)
    assert rc == 130, err
    assert "interrupted: rerun the same command" in err and "Traceback" not in err
    again = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming at step" in again.stderr and "[resumed]" in again.stdout


def test_melt_quench_defaults_are_safe_and_long_runs_say_how_long(tmp_path, capsys,
                                                                   monkeypatch):
    """Item 9: the melt-quench default pressure is the presets' 0 GPa (the default
    potential, dft-delta, holds every preset melt together there; chgnet-ionic needed
    0.5 GPa); the command states its length up front; MD
    writing to a pipe or log prints plain progress lines with the time left."""
    import inspect

    from viglas.commands import md as md_cmd
    from viglas.config import MeltQuenchConfig
    from viglas.md import observers as md_mod

    assert inspect.signature(md_cmd.melt_quench).parameters["pressure"].default.default == 0.0
    assert MeltQuenchConfig().pressure_GPa == 0.0
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "s.extxyz", bulk("Cu", "fcc", a=3.6, cubic=True))
    proc = _viglas("melt-quench", str(tmp_path / "s.extxyz"), "-c", "emt", "--t-melt", "600",
                   "--hold-ps", "0.05", "--cool-rate", "3000", "-o", str(tmp_path / "g.extxyz"))
    assert proc.returncode == 0, proc.stderr
    assert "plan" in proc.stderr and "steps of 1 fs" in proc.stderr and "min" in proc.stderr
    assert "NPT at 0 GPa" in proc.stderr
    monkeypatch.setattr(md_mod.Progress, "PLAIN_EVERY_S", 0.0)
    bar = md_mod.Progress(True, 1000, 0, "MD nvt")  # stderr is captured: not a terminal
    bar.update(500)
    bar.close()
    err = capsys.readouterr().err
    assert "MD nvt: 1000 steps" in err and "step 500 of 1000 (50 %" in err and "left" in err


def test_ctrl_c_works_when_the_parent_ignores_sigint(tmp_path):
    """A script's background job (or a test runner) may start viglas with SIGINT
    ignored, which exec inherits; Ctrl-C must still stop the MD at a resumable point."""
    import signal

    _, rc, err = _interrupted_md(
        tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert rc == 130, err
    assert "interrupted: rerun the same command" in err
