"""``viglas fit-potential`` end to end, with the ionic potential itself as the reference."""

from __future__ import annotations

import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from viglas.cli import main
from viglas.potentials.fit import initial_parameters
from viglas.potentials.parameters import load_parameters, save_parameters


@pytest.mark.slow
def test_fit_potential_cli_recovers_ionic_reference(tmp_path):
    """Sampling + labelling + fit + validation through the CLI (about 30 s of CPU)."""
    truth = initial_parameters(["Li", "Al", "Cl", "O"], charge_scale=0.75)
    save_parameters(truth, tmp_path / "truth.yaml")
    out = tmp_path / "out" / "params.yaml"
    spec = json.dumps({"parameters": str(tmp_path / "truth.yaml")})
    rc = main(["fit-potential", "--reference", "ionic", "--reference-params", spec,
               "-c", "LiAlCl2.5O0.75", "--n-atoms", "21", "--rounds", "1",
               "--iter-steps", "60", "--validation-steps", "100", "-o", str(out),
               "--cache-dir", str(tmp_path / "cache")])
    assert rc in (0, None)
    fitted = load_parameters(out)
    assert fitted.charge_scale == pytest.approx(0.75, abs=1e-3)
    for key in ("Al-Cl", "Al-O", "Cl-Li"):
        assert fitted.pairs[key].rho == pytest.approx(truth.pairs[key].rho, rel=1e-2)
    rep = json.loads(out.with_name("params_report.json").read_text())
    held = rep["held_out"]["compositions"]["LiAlCl2.5O0.75"]
    assert held["force_r2"] > 0.999
    assert rep["provenance"]["reference_spec"]["name"] == "ionic"
    assert (out.parent / "parity_held_out.png").exists()
    # a rerun reads every label from the cache: nothing new is labelled
    n_cached = len(list((tmp_path / "cache").rglob("*.extxyz")))
    rc = main(["fit-potential", "--reference", "ionic", "--reference-params", spec,
               "-c", "LiAlCl2.5O0.75", "--n-atoms", "21", "--rounds", "0",
               "--validation-steps", "100", "-o", str(tmp_path / "again.yaml"),
               "--cache-dir", str(tmp_path / "cache")])
    assert rc in (0, None)
    assert len(list((tmp_path / "cache").rglob("*.extxyz"))) == n_cached
    again = load_parameters(tmp_path / "again.yaml")
    assert again.provenance["best_round"] == 0
    assert again.provenance["n_valid_frames"] == fitted.provenance["n_valid_frames"]


def test_fit_potential_rejects_unknown_element(tmp_path):
    rc = main(["fit-potential", "-c", "LiFeCl4", "-o", str(tmp_path / "p.yaml"),
               "--cache-dir", str(tmp_path / "c")])
    assert rc == 2


@pytest.mark.parametrize("weights", ["LiAlCl4=abc", "LiFeCl2=2", "LiAlCl4=-1"])
def test_fit_potential_rejects_bad_composition_weights(tmp_path, weights, capsys):
    rc = main(["fit-potential", "-c", "LiAlCl4", "--composition-weights", weights,
               "-o", str(tmp_path / "p.yaml"), "--cache-dir", str(tmp_path / "c")])
    assert rc == 2
    assert "composition_weights" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # refused before any sampling


def test_fit_potential_missing_initial_file(tmp_path, capsys):
    rc = main(["fit-potential", "-c", "LiAlCl4", "--initial", str(tmp_path / "nope.yaml"),
               "-o", str(tmp_path / "p.yaml"), "--cache-dir", str(tmp_path / "c")])
    assert rc == 2
    assert "parameters" in capsys.readouterr().err


@pytest.mark.slow
def test_fit_potential_cli_recovers_three_body_strength(tmp_path):
    """--three-body: the angle strength of a reference that has one is fitted back."""
    from viglas.potentials.fit import initial_three_body

    truth = initial_parameters(["Li", "Al", "Cl", "O"], charge_scale=0.75)
    tb = {m: t.model_copy(update={"k": 3.0}) for m, t in
          initial_three_body(["Li", "Al", "Cl", "O"]).items()}
    truth = truth.model_copy(update={"three_body": tb})
    save_parameters(truth, tmp_path / "truth.yaml")
    out = tmp_path / "params.yaml"
    spec = json.dumps({"parameters": str(tmp_path / "truth.yaml")})
    rc = main(["fit-potential", "--reference", "ionic", "--reference-params", spec,
               "-c", "LiAlCl2.5O0.75", "--n-atoms", "21", "--rounds", "0",
               "--validation-steps", "100", "--three-body", "-o", str(out),
               "--cache-dir", str(tmp_path / "cache")])
    assert rc in (0, None)
    fitted = load_parameters(out)
    assert fitted.three_body["Al"].k == pytest.approx(3.0, rel=1e-2)
    assert "three_body.Al.k" in fitted.provenance["free_parameters"]
    assert "three-body" in fitted.description


def test_check_potential_writes_its_section_and_keeps_the_rest(tmp_path, capsys):
    """A short NVT check lands under --section; other report keys stay as they were."""
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"held_out": {"x": 1}, "stability": {"old": True}}))
    params = tmp_path / "p.yaml"
    save_parameters(initial_parameters(["Li", "Al", "Cl", "O"]), params)
    rc = main(["check-potential", str(params), "-c", "LiAlCl2.5O0.75", "--report", str(report),
               "--nvt-ps", "0.1", "--no-melt-quench", "--n-atoms", "21",
               "--workdir", str(tmp_path / "runs"), "--section", "stability_short"])
    assert rc in (0, None)
    data = json.loads(report.read_text())
    assert data["held_out"] == {"x": 1} and data["stability"] == {"old": True}
    nvt = data["stability_short"]["LiAlCl2.5O0.75"]["nvt"]
    assert nvt["steps_done"] == 50 and nvt["finite"] is True
    assert "under 'stability_short'" in capsys.readouterr().out
    rc = main(["check-potential", str(params), "--report", str(report), "--section", " "])
    assert rc == 2
    assert "--section" in capsys.readouterr().err
