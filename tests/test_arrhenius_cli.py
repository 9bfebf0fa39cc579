"""`viglas arrhenius` on a sweep's temperatures.csv: one composition at a time."""

from __future__ import annotations

import json
import subprocess

TABLE = ("formula,t_K,d_cm2_s,d_err_cm2_s\nA,500,1e-6,1e-7\nA,600,2e-6,1e-7\nA,700,4e-6,2e-7\n"
         "B,500,1e-7,1e-8\nB,600,4e-7,2e-8\nB,700,1.2e-6,6e-8\n")


def _run(tmp_path, *args):
    return subprocess.run(["viglas", "arrhenius", str(tmp_path / "t.csv"), "-o",
                           str(tmp_path / "o"), "--no-plot", *args],
                          capture_output=True, text=True)


def test_several_compositions_need_a_formula(tmp_path):
    (tmp_path / "t.csv").write_text(TABLE)
    r = _run(tmp_path)
    assert r.returncode == 2 and "--formula" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr
    r = _run(tmp_path, "--formula", "C")
    assert r.returncode == 2 and "A, B" in r.stderr + r.stdout
    r = _run(tmp_path, "--formula", "B")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "o" / "arrhenius.json").read_text())
    ea_b = out.get("ea_eV") or out.get("d_arrhenius", {}).get("ea_eV")
    r = _run(tmp_path, "--formula", "A")
    out_a = json.loads((tmp_path / "o" / "arrhenius.json").read_text())
    ea_a = out_a.get("ea_eV") or out_a.get("d_arrhenius", {}).get("ea_eV")
    assert ea_a is not None and ea_b is not None and abs(ea_a - ea_b) > 0.05
    assert out["d_cm2_s"] == [1e-7, 4e-7, 1.2e-6] and out_a["d_cm2_s"] == [1e-6, 2e-6, 4e-6]


def test_bounds_in_a_runs_table_are_left_out_and_named(tmp_path):
    """A run's temperatures.csv marks points without a diffusive regime (d_estimate):
    they are not fitted, and stderr names them."""
    (tmp_path / "t.csv").write_text(
        "formula,t_K,d_estimate,d_cm2_s,d_err_cm2_s\nA,400,upper,5e-7,5e-7\n"
        "A,500,value,1e-6,1e-7\nA,600,value,2e-6,1e-7\nA,700,value,4e-6,2e-7\n")
    r = _run(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "400 K (upper estimate)" in r.stderr
    out = json.loads((tmp_path / "o" / "arrhenius.json").read_text())
    assert out["t_K"] == [500.0, 600.0, 700.0]
    # one diffusive temperature left: a clear error, no traceback
    (tmp_path / "t.csv").write_text(
        "formula,t_K,d_estimate,d_cm2_s,d_err_cm2_s\nA,400,upper,5e-7,5e-7\n"
        "A,500,upper,1e-6,1e-6\nA,600,value,2e-6,1e-7\n")
    r = _run(tmp_path)
    assert r.returncode == 2 and "1 temperature(s) with a diffusive regime" in r.stderr
    assert "other 2 are only bounds" in r.stderr and "Traceback" not in r.stderr
