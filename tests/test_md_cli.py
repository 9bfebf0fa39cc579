"""`viglas md` and `viglas melt-quench` from the command line."""

from __future__ import annotations

import numpy as np

from viglas.cli import main
from viglas.trajectory import H5MDTrajectory

from test_md import glass84  # noqa: F401  (fixture)


def test_md_command_runs_and_rerun_resumes(glass84, tmp_path, capsys):  # noqa: F811
    _, start = glass84
    out = tmp_path / "run" / "t.h5"
    argv = ["md", str(start), "--calculator", "ionic", "--parameters", "trial", "--ensemble",
            "nvt", "--temperature", "700", "--timestep-fs", "1", "--steps", "40",
            "--save-every", "10", "-o", str(out), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "frames       5" in text and "[resumed]" not in text
    assert main(argv) == 0  # the same command again: finds the finished checkpoint
    assert "[resumed]" in capsys.readouterr().out
    argv_more = list(argv)
    argv_more[argv_more.index("--steps") + 1] = "60"
    assert main(argv_more) == 0  # extends the finished run
    with H5MDTrajectory(out) as t:
        np.testing.assert_array_equal(t.steps, np.arange(0, 61, 10))
    assert (tmp_path / "run" / "t.log.csv").exists()


def test_md_command_errors_are_one_line(glass84, tmp_path, capsys):  # noqa: F811
    _, start = glass84
    rc = main(["md", str(start), "--calculator", "emt", "--steps", "10", "-o",
               str(tmp_path / "x.h5"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and "Cl" in err and len(err.strip().splitlines()) == 1


def test_melt_quench_command(glass84, tmp_path, capsys):  # noqa: F811
    _, start = glass84
    out = tmp_path / "glass.extxyz"
    rc = main(["melt-quench", str(start), "-p", "trial", "--t-melt", "1200", "--t-final",
               "600", "--hold-ps", "0.02", "--cool-rate", "20000", "--heat-rate", "20000",
               "--save-every", "20", "-o", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert out.exists() and (tmp_path / "glass_mq.h5").exists()
    assert "V(T), E(T)" in capsys.readouterr().out
