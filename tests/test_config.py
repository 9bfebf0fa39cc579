"""Config validation: good presets load, bad configs give one-line errors naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from viglas.config import Config, load_config, parse_config
from viglas.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
BASE = {"composition": "LiAlCl2.5O0.75"}


def _err(data) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    return exc.value


def test_minimal_config_defaults():
    cfg = parse_config(BASE)
    assert cfg.kind == "composition"
    assert [c.formula for c in cfg.compositions()] == ["LiAlCl2.5O0.75"]
    assert cfg.production.steps == int(cfg.production.duration_ps * 1000 / cfg.production.timestep_fs)


def test_values_with_units_are_converted():
    cfg = parse_config({**BASE, "production": {"timestep_fs": "0.002 ps", "duration_ps": "5000 fs",
                                               "temperatures_K": ["800 K", 600]},
                        "melt_quench": {"pressure_GPa": "1 bar"}})
    assert cfg.production.timestep_fs == pytest.approx(2.0)
    assert cfg.production.duration_ps == pytest.approx(5.0)
    assert cfg.production.temperatures_K == [600.0, 800.0]  # sorted
    assert cfg.melt_quench.pressure_GPa == pytest.approx(1e-4)


@pytest.mark.parametrize("data, key, words", [
    ({}, "composition", "needs a composition"),
    ({"kind": "oxygen_sweep"}, "sweep", "sweep section"),
    ({**BASE, "production": {"temperatures_K": [-100, 600]}}, "production.temperatures_K", "not > 0"),
    ({**BASE, "production": {"timestep_fs": 0}}, "production.timestep_fs", "must be > 0"),
    ({**BASE, "production": {"timestep_fs": -0.5}}, "production.timestep_fs", "must be > 0"),
    ({**BASE, "calculator": {"name": "nosuchcalc"}}, "calculator.name", "unknown calculator"),
    ({**BASE, "production": {"timestep_ps": 0.001}}, "production.timestep_ps", "timestep_fs"),
    ({**BASE, "production": {"timestep_fs": "300 K"}}, "production.timestep_fs", "wrong unit"),
    ({**BASE, "melt_quench": {"t_melt_K": 500, "t_final_K": 600}}, "melt_quench", "below t_melt_K"),
    ({"composition": "LiXyCl4"}, "composition", ""),
    ({"kind": "oxygen_sweep", "sweep": {"x": [0.5, 2.5]}}, "sweep.x", "0 <= x < 2"),
    ({**BASE, "surprise": 1}, "surprise", "unknown key"),
])
def test_bad_configs_name_the_key(data, key, words):
    err = _err(data)
    line = err.one_line()
    assert "\n" not in line
    assert err.field == key, line
    assert line.startswith(key + ":")
    assert words in line


def test_sweep_and_screening_compositions():
    sweep = parse_config({"kind": "oxygen_sweep", "sweep": {"alkali": "Li", "former": "Al",
                                                            "x": [0.25, 0.5, 0.75, 1.0]}})
    p = [c.oxygen_fraction for c in sweep.compositions()]
    assert len(p) == 4 and p == sorted(p)
    scr = parse_config({"kind": "screening", "screening": {"alkali": ["Li", "Na"],
                                                           "former": ["Al", "Ga", {"Al": 0.5, "In": 0.5}],
                                                           "x": [0.75]}})
    formulas = [c.formula for c in scr.compositions()]
    assert len(formulas) == 6 and "NaGaCl2.5O0.75" in formulas


def test_malformed_yaml_reports_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("composition: LiAlCl2.5O0.75\nproduction:\n  temperatures_K: [600, 700\n  replicas: 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    line = exc.value.one_line()
    assert "malformed YAML at line" in line and str(bad) in line and "\n" not in line


@pytest.mark.parametrize("name", ["quick", "laco", "naco", "sweep-oxygen", "screen-formers"])
def test_presets_load(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert isinstance(cfg, Config)
    assert cfg.compositions()
    # every preset runs the default potential, the DFT-grounded dft-delta, at 0 GPa
    from viglas.potentials.delta import SHIPPED_DELTA, is_delta_file

    assert cfg.calculator.name == "ionic"
    assert SHIPPED_DELTA[cfg.calculator.params["parameters"]] == SHIPPED_DELTA["dft-delta"]
    assert is_delta_file(cfg.calculator.params["parameters"])
    assert cfg.melt_quench.pressure_GPa == 0.0
    if name == "sweep-oxygen":
        assert cfg.kind == "oxygen_sweep" and len(cfg.compositions()) >= 4
    if name == "screen-formers":
        formers = {tuple(sorted(c.former)) for c in cfg.compositions()}
        assert cfg.kind == "screening" and len(formers) >= 3


def test_cli_main_prints_one_line_error(tmp_path, capsys):
    from viglas.cli import main

    cfg = tmp_path / "neg.yaml"
    cfg.write_text("composition: LiAlCl2.5O0.75\nproduction:\n  temperatures_K: [600, -5]\n")
    rc = main(["run", str(cfg), "--workdir", str(tmp_path / "w"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and "production.temperatures_K" in err
    assert not (tmp_path / "w").exists()  # nothing ran


@pytest.mark.parametrize("text, key", [
    ("name: x\n", "composition"),
    ("composition: LiAlCl2.5O0.75\nproduction: {timestep_fs: 0}\n", "production.timestep_fs"),
    ("composition: LiAlCl2.5O0.75\ncalculator: {name: gpt}\n", "calculator.name"),
    ("composition: [LiAlCl2.5O0.75\n", "malformed YAML at line"),
])
def test_cli_subprocess_bad_configs(tmp_path, text, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "viglas.cli", "run", str(cfg), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert key in lines[0] and "Traceback" not in proc.stderr


def test_default_potential_is_dft_delta_and_plain_default_is_refused():
    """No parameters, or 'default', build the ionic+delta set fitted to PBE-D3; the
    plain-set loader refuses 'default' by name and points to chgnet-ionic."""
    from viglas.calculators import get_calculator
    from viglas.potentials import load_parameters
    from viglas.potentials.delta import DeltaIonicPotential, load_delta_file
    from viglas.potentials.ionic import IonicPotential

    shipped = load_delta_file("dft-delta")["delta"]["coef_eV"]
    for params in ({}, {"parameters": "default"}, {"parameters": "dft-delta"}):
        calc = get_calculator({"name": "ionic", "params": params})
        assert isinstance(calc, DeltaIonicPotential)
        assert list(calc.model.coef) == shipped
    assert isinstance(get_calculator({"name": "ionic", "params": {"parameters": "chgnet-ionic"}}),
                      IonicPotential)
    assert load_parameters(None) == load_parameters("chgnet-ionic")
    with pytest.raises(ConfigError) as exc:
        load_parameters("default")
    assert exc.value.field == "parameters" and "chgnet-ionic" in exc.value.one_line()
    assert Config.model_fields["melt_quench"].default_factory().pressure_GPa == 0.0
