"""``viglas build``: files, printed summary, one-line errors with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from viglas.cli import main


def test_build_laco_cif_reads_back_exact_formula(tmp_path, capsys):
    from pymatgen.core import Structure

    out = tmp_path / "laco.cif"
    rc = main(["build", "LiAlCl2.5O0.75", "--atoms", "200", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "LiAlCl2.5O0.75" in text and "210" in text
    assert "g/cm^3" in text and "min distance" in text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        struct = Structure.from_file(out)
    assert struct.composition.formula == "Li40 Al40 Cl100 O30"
    assert struct.composition.reduced_formula == "Li4Al4Cl10O3"
    assert struct.density == pytest.approx(2.067, abs=0.005)


@pytest.mark.parametrize("name", ["g.extxyz", "POSCAR"])
def test_build_packing_other_formats(tmp_path, capsys, name):
    from viglas.structures import read_structure

    out = tmp_path / name
    rc = main(["build", "NaGaCl3O0.5", "--atoms", "44", "--method", "packing",
               "--density", "2.3", "--seed", "3", "-o", str(out)])
    assert rc == 0
    assert "2.3000 g/cm^3" in capsys.readouterr().out
    atoms = read_structure(out)
    assert atoms.get_chemical_formula() == "Cl24Ga8Na8O4"


@pytest.mark.parametrize("args, fragment", [
    (["LiAlCl3", "--atoms", "50"], "composition: not charge balanced: charge sum = +1"),
    (["LiAlCl4Xe", "--atoms", "50"], "composition: unknown element 'Xe'"),
    (["LiAlCl4", "--atoms", "50", "--density", "0"], "density:"),
    (["LiAlCl4", "--atoms", "50", "--density", "-2"], "density:"),
    (["LiAlCl4", "--atoms", "3"], "n_atoms: too few atoms for one formula unit"),
    (["LiAlCl4", "--atoms", "50", "--method", "random"], "method: unknown build method"),
])
def test_build_errors_are_one_line(tmp_path, capsys, args, fragment):
    out = tmp_path / "x.cif"
    rc = main(["build", *args, "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and fragment in err
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("target", ["missing_dir/x.cif", "x.pdb"])
def test_build_unwritable_output(tmp_path, capsys, target):
    rc = main(["build", "LiAlCl4", "--atoms", "24", "-o", str(tmp_path / target)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: output:") and "\n" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_build_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    rc = main(["build", "LiAlCl4", "--atoms", "24", "-o", str(ro / "x.cif")])
    assert rc == 2 and "not writable" in capsys.readouterr().err


def test_build_error_in_subprocess(tmp_path):
    """The installed entry point prints one line and exits 2 (no traceback)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from viglas.cli import main; sys.exit(main())",
         "build", "LiAlCl3", "--atoms", "50", "-o", str(tmp_path / "x.cif")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: composition:")
    assert "charge sum" in lines[0] and "Traceback" not in proc.stderr
