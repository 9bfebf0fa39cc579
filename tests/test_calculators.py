"""Calculator registry: names, lazy imports with pip hints, element checks up front."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from ase.build import bulk

from viglas.calculators import (CalculatorSpec, check_elements, get_calculator,
                                supported_elements)
from viglas.errors import CalculatorError, MissingDependencyError


def test_ionic_from_dict_and_model():
    calc = get_calculator({"name": "ionic", "params": {"parameters": "trial", "skin": 0.5}})
    a = bulk("LiCl", "rocksalt", a=5.14, cubic=True)
    a.calc = calc
    assert np.isfinite(a.get_potential_energy())
    assert calc.skin == 0.5
    spec = CalculatorSpec(name="ionic", params={"parameters": "trial"})
    check_elements(spec, a)  # Li, Cl known
    with pytest.raises(CalculatorError) as exc:
        check_elements(spec, ["Li", "Cu"])
    assert "Cu" in exc.value.one_line()


def test_emt_rejects_li_na_cl_up_front_with_its_element_list():
    with pytest.raises(CalculatorError) as exc:
        check_elements({"name": "emt"}, ["Li", "Al", "Cl", "O"])
    msg = exc.value.one_line()
    assert "Cl" in msg and "Li" in msg
    for el in ("Ag", "Al", "Au", "C", "Cu", "H", "N", "Ni", "O", "Pd", "Pt"):
        assert el in msg
    check_elements("emt", ["Al", "O"])
    assert supported_elements("emt") >= {"Cu", "Pt"}
    a = bulk("Cu", "fcc", a=3.6)
    a.calc = get_calculator("emt")
    assert np.isfinite(a.get_potential_energy())


def test_unknown_name_and_params_are_named():
    with pytest.raises(CalculatorError) as exc:
        get_calculator({"name": "lj-magic"})
    assert "chgnet" in exc.value.one_line() and exc.value.field == "calculator.name"
    with pytest.raises(CalculatorError) as exc:
        get_calculator({"name": "ionic", "params": {"cutof": 3}})
    assert exc.value.field == "calculator.params"
    with pytest.raises(CalculatorError):
        get_calculator({"name": "chgnet", "params": {"device": "gpu0"}})


def test_factory_path():
    calc = get_calculator("ase.calculators.emt:EMT", allow_import=True)
    assert type(calc).__name__ == "EMT"
    with pytest.raises(MissingDependencyError):
        get_calculator("no_such_package_xyz.mod:make", allow_import=True)
    with pytest.raises(CalculatorError):
        get_calculator("ase.calculators.emt:NoSuchThing", allow_import=True)


def test_factory_path_needs_an_explicit_opt_in(monkeypatch, tmp_path):
    """A config naming 'module:function' would run arbitrary code (issue 14, item 3):
    without --allow-import / VIGLAS_ALLOW_IMPORT nothing is imported or called."""
    monkeypatch.delenv("VIGLAS_ALLOW_IMPORT", raising=False)
    marker = tmp_path / "ran"
    with pytest.raises(CalculatorError) as exc:
        get_calculator({"name": "os:system", "params": {"command": f"touch {marker}"}})
    assert "--allow-import" in exc.value.one_line() and "os:system" in exc.value.one_line()
    assert not marker.exists()
    monkeypatch.setenv("VIGLAS_ALLOW_IMPORT", "1")
    assert type(get_calculator("ase.calculators.emt:EMT")).__name__ == "EMT"


def test_registered_entry_point_needs_no_opt_in(monkeypatch):
    """A factory registered by an installed package (entry-point group
    viglas.calculators) is used by its plain name, also in configs."""
    from importlib.metadata import EntryPoint

    from viglas import calculators
    from viglas.config import parse_config

    monkeypatch.delenv("VIGLAS_ALLOW_IMPORT", raising=False)
    ep = EntryPoint(name="myemt", value="ase.calculators.emt:EMT", group="viglas.calculators")
    monkeypatch.setattr(calculators, "registered_calculators", lambda: {"myemt": ep})
    assert type(get_calculator("myemt")).__name__ == "EMT"
    cfg = parse_config({"name": "x", "composition": "LiAlCl4", "calculator": {"name": "myemt"}})
    assert cfg.calculator.name == "myemt"


def test_missing_ml_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sevenn", None)  # import of sevenn now fails
    with pytest.raises(MissingDependencyError) as exc:
        get_calculator({"name": "sevennet", "params": {"device": "cpu"}})
    assert "viglas[ml]" in exc.value.one_line()


@pytest.mark.parametrize("name", ["mace-mp", "mattersim", "orb"])
def test_downloading_models_need_a_local_file(name, tmp_path):
    with pytest.raises(CalculatorError) as exc:
        get_calculator({"name": name, "params": {"device": "cpu"}})
    assert "model_file" in exc.value.one_line() and "download" in exc.value.one_line()
    with pytest.raises(CalculatorError) as exc:
        get_calculator({"name": name, "params": {"model_file": str(tmp_path / "x.model")}})
    assert "not found" in exc.value.one_line()


@pytest.mark.slow
def test_chgnet_builds_offline_on_cpu():
    pytest.importorskip("chgnet")
    import torch

    torch.set_num_threads(1)
    calc = get_calculator({"name": "chgnet", "params": {"device": "cpu", "threads": 1}})
    a = bulk("LiCl", "rocksalt", a=5.14, cubic=True)
    a.calc = calc
    assert np.isfinite(a.get_forces()).all()
