"""PyBaMM integration of the continuum export (needs the ``continuum`` extra).

Symbolic evaluation equals the exported sigma(298.15 K); a DFN with the Chen2020 set
and our electrolyte functions solves a 10-minute 1C discharge on a coarse mesh.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import warnings

import numpy as np
import pytest

pybamm = pytest.importorskip("pybamm")

from viglas.analysis.export import ExtrapolationWarning, build_export, export_parameters  # noqa: E402
from viglas.analysis.pybamm_params import (check_temperature_range,  # noqa: E402
                                           make_electrolyte_conductivity,
                                           make_electrolyte_diffusivity,
                                           update_parameter_values)
from viglas.errors import ExportError  # noqa: E402

KB = 8.617333262e-5
T_REF = 298.15
COV2 = [[0.04, 0.003], [0.003, 0.00025]]
MESH = {"x_n": 5, "x_s": 5, "x_p": 5, "r_n": 5, "r_p": 5}


def _arr(q, unit, lnp, ea, tmin, tmax):
    return {"quantity": q, "unit": unit, "ln_prefactor": lnp, "prefactor": math.exp(lnp),
            "ea_eV": ea, "ea_err_eV": math.sqrt(COV2[1][1]), "cov": copy.deepcopy(COV2),
            "t_min_K": tmin, "t_max_K": tmax, "n_points": 5, "chi2_red": 1.0, "aic": 0.0,
            "bic": 0.0}


def make_results(t_min=250.0, t_max=900.0):
    """One glass with sigma(298 K) ~ 1 mS/cm (0.1 S/m) and D(298 K) ~ 1e-8 cm2/s."""
    fits = {"sigma_arrhenius": _arr("sigma", "mS/cm", 13.6, 0.35, t_min, t_max),
            "d_arrhenius": _arr("D", "cm2/s", -5.6, 0.33, t_min, t_max),
            "sigma_vft": None, "d_vft": None, "preferred_model": "arrhenius"}
    comp = {"formula": "LiAlCl2.5O0.75", "label": "LiAlCl2.5O0.75", "mobile_species": "Li",
            "number_density_per_cm3": 1.2e22, "fits": fits, "ea_eV": 0.35, "ea_err_eV": 0.016,
            "tg_K": None, "tg_err_K": None, "haven_ratio": None}
    return {"schema": "viglas-results/1", "provenance": {}, "compositions": [comp],
            "percolation": None}


def _quiet_export(res):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        return build_export(res)


def test_symbolic_functions_evaluate_to_exported_values():
    exp = _quiet_export(make_results())
    a = exp["compositions"][0]["at_t_ref"]
    cond = make_electrolyte_conductivity(exp)
    diff = make_electrolyte_diffusivity(exp)
    c_e, t = pybamm.Scalar(1000.0), pybamm.Scalar(T_REF)
    s_sym = cond(c_e, t)
    assert isinstance(s_sym, pybamm.Symbol)
    assert np.asarray(s_sym.evaluate()).item() == pytest.approx(a["sigma_S_m"], rel=1e-9)
    assert np.asarray(diff(c_e, t).evaluate()).item() == pytest.approx(a["d_m2_s"], rel=1e-9)
    # sensitivity band through the symbolic delta method
    hi = make_electrolyte_conductivity(exp, n_sigma=1.0)(c_e, t)
    assert np.asarray(hi.evaluate()).item() == pytest.approx(0.1 * a["sigma_high_mS_cm"],
                                                             rel=1e-9)
    # a variable temperature is an expression of T (cannot be range-checked up front)
    T = pybamm.StateVector(slice(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expr = cond(c_e, T)
    y = np.array([[350.0]])
    expected = 0.1 * math.exp(13.6 - 0.35 / (KB * 350.0))
    assert np.asarray(expr.evaluate(y=y)).item() == pytest.approx(expected, rel=1e-12)


def test_constant_symbolic_temperature_outside_range_warns():
    exp = _quiet_export(make_results(t_min=500.0, t_max=900.0))
    cond = make_electrolyte_conductivity(exp)
    with pytest.warns(ExtrapolationWarning, match="298.15 K is outside the fitted range"):
        cond(pybamm.Scalar(1000.0), pybamm.PrimaryBroadcast(pybamm.Scalar(T_REF), "separator"))
    with pytest.warns(ExtrapolationWarning):
        assert check_temperature_range(np.array([300.0, 310.0]), exp)


def test_update_parameter_values_sets_single_ion_mapping():
    pv = pybamm.ParameterValues("Chen2020")
    with pytest.warns(ExtrapolationWarning, match="ambient temperature and initial temperature"):
        update_parameter_values(pv, make_results(t_min=500.0, t_max=900.0))
    assert pv["Cation transference number"] == 1.0
    assert pv["Thermodynamic factor"] == 1.0
    assert pv["Initial concentration in electrolyte [mol.m-3]"] == 1000.0   # untouched
    pv2 = pybamm.ParameterValues("Chen2020")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        update_parameter_values(pv2, make_results(), set_concentration=True)
    c = pv2["Initial concentration in electrolyte [mol.m-3]"]
    assert c == pytest.approx(1.2e22 * 1e6 / 6.02214076e23)
    with pytest.raises(ExportError, match="ParameterValues"):
        update_parameter_values({"a": 1}, make_results())


def _solve_dfn(pv):
    sim = pybamm.Simulation(pybamm.lithium_ion.DFN(), parameter_values=pv, var_pts=MESH)
    return sim.solve([0, 600])                  # 10 min at the set's 5 A (1C)


def test_dfn_discharge_with_viglas_electrolyte():
    res = make_results()
    sols = {}
    for n_sigma in (-2.0, 2.0):
        pv = pybamm.ParameterValues("Chen2020")
        with warnings.catch_warnings():
            warnings.simplefilter("error", ExtrapolationWarning)   # 298.15 K is in range
            update_parameter_values(pv, res, n_sigma=n_sigma)
            sols[n_sigma] = _solve_dfn(pv)
    for sol in sols.values():
        v = sol["Voltage [V]"].entries
        assert sol.t[-1] == pytest.approx(600.0)
        assert np.all(np.isfinite(v)) and 3.0 < v[-1] < v[0] < 4.3
        c = sol["Electrolyte concentration [mol.m-3]"].entries
        # t+ = 1: no salt is produced or consumed, c_e stays uniform
        assert np.max(np.abs(c - 1000.0)) < 1e-6 * 1000.0
        assert check_temperature_range(sol, res) is False     # isothermal 298.15 K, in range
    with pytest.warns(ExtrapolationWarning, match="outside the fitted range 500-900 K"):
        assert check_temperature_range(sols[2.0], make_results(t_min=500.0, t_max=900.0))
    # higher conductivity -> smaller ohmic drop -> higher voltage under load
    assert sols[2.0]["Voltage [V]"].entries[-1] > sols[-2.0]["Voltage [V]"].entries[-1]


def test_generated_module_parameters_in_pybamm(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        exp = export_parameters(make_results(), "pybamm", tmp_path / "laco_params.py")
    spec = importlib.util.spec_from_file_location("laco_params", tmp_path / "laco_params.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pv = pybamm.ParameterValues("Chen2020")
    pv.update(mod.get_parameter_values())
    sym = pv.process_symbol(pybamm.FunctionParameter(
        "Electrolyte conductivity [S.m-1]",
        {"Electrolyte concentration [mol.m-3]": pybamm.Scalar(1000.0),
         "Temperature [K]": pybamm.Scalar(T_REF)}))
    assert np.asarray(sym.evaluate()).item() == pytest.approx(
        exp["compositions"][0]["at_t_ref"]["sigma_S_m"], rel=1e-9)
