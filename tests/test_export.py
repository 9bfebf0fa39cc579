"""Continuum export: schema, exact round trips, delta-method bands, errors, CLI.

PyBaMM itself is exercised in test_export_pybamm.py; here the float path of the
electrolyte functions (and of the generated module) runs without PyBaMM.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import math
import warnings

import numpy as np
import pytest

from viglas.analysis.export import (DEFAULT_GRID_T_K, ExtrapolationWarning, build_export,
                                    export_parameters, load_export, load_schema, validate_export)
from viglas.analysis.pybamm_params import (make_electrolyte_conductivity,
                                           make_electrolyte_diffusivity)
from viglas.errors import ExportError

KB = 8.617333262e-5
T_REF = 298.15
COV2 = [[0.04, 0.003], [0.003, 0.00025]]
COV3 = [[0.09, 2.0, -1.5], [2.0, 900.0, -400.0], [-1.5, -400.0, 300.0]]


def _arr(q: str, unit: str, lnp: float, ea: float, tmin: float, tmax: float, cov=COV2) -> dict:
    return {"quantity": q, "unit": unit, "ln_prefactor": lnp, "prefactor": math.exp(lnp),
            "ea_eV": ea, "ea_err_eV": math.sqrt(cov[1][1]), "cov": copy.deepcopy(cov),
            "t_min_K": tmin, "t_max_K": tmax, "n_points": 5, "chi2_red": 1.1, "aic": 3.2,
            "bic": 2.9, "weighted": True, "model": "arrhenius"}


def _vft(q: str, unit: str, ln_a: float, b: float, t0: float, tmin: float, tmax: float) -> dict:
    return {"quantity": q, "unit": unit, "ln_a": ln_a, "b_K": b, "t0_K": t0,
            "cov": copy.deepcopy(COV3), "t_min_K": tmin, "t_max_K": tmax, "n_points": 6,
            "chi2_red": 0.9, "aic": 1.0, "bic": 0.5, "model": "vft"}


def _comp(formula: str, alkali: str, fits: dict, **extra) -> dict:
    c = {"formula": formula, "label": formula, "x": 0.75, "oxygen_fraction": 0.2308,
         "alkali": {alkali: 1.0}, "former": {"Al": 1.0}, "mobile_species": alkali,
         "n_atoms": 68, "density_g_cm3": 2.05, "number_density_per_cm3": 1.2e22,
         "calculator": {"name": "ionic", "params": {}}, "runs": [],
         "temperatures": [{"t_K": 600.0, "d_cm2_s": 1e-6, "d_err_cm2_s": 1e-7,
                           "sigma_mS_cm": 50.0, "sigma_err_mS_cm": 5.0, "haven_ratio": None}],
         "fits": fits, "ea_eV": 0.35, "ea_err_eV": 0.0158, "tg_K": 420.0, "tg_err_K": 15.0,
         "haven_ratio": 0.6}
    c.update(extra)
    return c


def make_results(t_min: float = 500.0, t_max: float = 900.0, two: bool = True) -> dict:
    """A results.json dict per the contract; sigma(298 K) ~ 1 mS/cm."""
    laco = _comp("LiAlCl2.5O0.75", "Li", {
        "sigma_arrhenius": _arr("sigma", "mS/cm", 13.6, 0.35, t_min, t_max),
        "d_arrhenius": _arr("D", "cm2/s", -5.6, 0.33, t_min, t_max),
        "sigma_vft": _vft("sigma", "mS/cm", 8.0, 900.0, 150.0, t_min, t_max),
        "d_vft": _vft("D", "cm2/s", -11.0, 850.0, 150.0, t_min, t_max),
        "preferred_model": "arrhenius"})
    comps = [laco]
    if two:
        comps.append(_comp("NaAlCl2.5O0.75", "Na", {
            "sigma_arrhenius": _arr("sigma", "mS/cm", 12.0, 0.40, t_min, t_max),
            "d_arrhenius": _arr("D", "cm2/s", -6.0, 0.38, t_min, t_max),
            "sigma_vft": _vft("sigma", "mS/cm", 7.0, 1000.0, 160.0, t_min, t_max),
            "d_vft": _vft("D", "cm2/s", -12.0, 950.0, 160.0, t_min, t_max),
            "preferred_model": "vft"}, haven_ratio=None, tg_K=None, tg_err_K=None))
    return {"schema": "viglas-results/1",
            "provenance": {"versions": {"viglas": "0.1.0", "odd.key": "1"}, "config_hash": "abc",
                           "created_utc": "2026-11-26T05:00:00+00:00",
                           "odd [key] \"q\"": [], "empty": {}, "nested": [[1, 2.5], {"a": None}]},
            "config": {"name": "test"},
            "compositions": comps,
            "percolation": {"p_c": 0.18, "p_c_err": 0.02, "t": 1.9, "t_err": 0.3,
                            "sigma0": 40.0, "sigma0_err": 5.0, "p_c_ci68": [0.16, 0.2],
                            "p_c_ci95": [0.14, 0.22], "t_ci68": [1.6, 2.2], "t_ci95": [1.3, 2.5],
                            "n_above": 4, "n_below": 1, "chi2_red": 1.2, "n_bootstrap": 200,
                            "n_bootstrap_ok": 198, "seed": 0, "p_below": [0.1]},
            "ranking": []}


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        return fn(*a, **k)


def _sigma_ref(lnp, ea, t):
    return math.exp(lnp - ea / (KB * t))


# --------------------------------------------------------------------------- schema, values
def test_schema_is_valid_draft_2020_12_and_documents_units():
    import jsonschema

    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    comp = schema["$defs"]["composition"]["properties"]
    assert "assumption" in comp["transference_number"]["description"].lower()
    assert comp["transference_number"]["const"] == 1.0
    for key in ("ea_eV", "tg_K", "mobile_ion_concentration_mol_m3"):
        assert comp[key]["description"]
    assert "covariance" in schema["$defs"]["arrhenius"]["properties"]["cov"]["description"]


def test_export_values_and_delta_method_band():
    exp = _quiet(build_export, make_results())
    laco, naco = exp["compositions"]
    a = laco["at_t_ref"]
    sig = _sigma_ref(13.6, 0.35, T_REF)
    assert a["sigma_mS_cm"] == pytest.approx(sig, rel=1e-13)
    assert a["sigma_S_m"] == pytest.approx(sig * 0.1, rel=1e-13)
    assert a["d_cm2_s"] == pytest.approx(_sigma_ref(-5.6, 0.33, T_REF), rel=1e-13)
    assert a["d_m2_s"] == pytest.approx(a["d_cm2_s"] * 1e-4, rel=1e-13)
    # delta method on ln sigma: var = c00 - 2 c01/(kT) + c11/(kT)^2
    kt = KB * T_REF
    sd = math.sqrt(COV2[0][0] - 2 * COV2[0][1] / kt + COV2[1][1] / kt**2)
    assert a["sigma_err_mS_cm"] == pytest.approx(sig * sd, rel=1e-12)
    assert a["sigma_low_mS_cm"] == pytest.approx(sig * math.exp(-sd), rel=1e-12)
    assert a["sigma_high_mS_cm"] == pytest.approx(sig * math.exp(sd), rel=1e-12)
    assert a["sigma_low_mS_cm"] < a["sigma_mS_cm"] < a["sigma_high_mS_cm"]
    assert a["sigma_model"] == "arrhenius" and a["sigma_in_fitted_range"] is False
    # VFT preferred for the second composition; gradient checked by finite differences
    b = naco["at_t_ref"]
    p = np.array([7.0, 1000.0, 160.0])

    def ln_vft(q):
        return q[0] - q[1] / (T_REF - q[2])

    g = np.array([(ln_vft(p + h) - ln_vft(p - h)) / (2 * h[i])
                  for i, h in enumerate(np.eye(3) * [1e-6, 1e-3, 1e-4])])
    sd_v = math.sqrt(g @ np.array(COV3) @ g)
    val = math.exp(ln_vft(p))
    assert b["sigma_model"] == "vft"
    assert b["sigma_mS_cm"] == pytest.approx(val, rel=1e-13)
    assert b["sigma_err_mS_cm"] == pytest.approx(val * sd_v, rel=1e-6)
    assert laco["transference_number"] == 1.0
    assert laco["mobile_ion_concentration_mol_m3"] == pytest.approx(1.2e22 * 1e6 / 6.02214076e23)
    assert exp["percolation"]["p_c"] == 0.18 and exp["percolation"]["t"] == 1.9
    assert laco["haven_ratio"] == 0.6 and naco["haven_ratio"] is None
    assert laco["tg_K"] == 420.0 and laco["ea_eV"] == 0.35


def test_fit_in_other_unit_is_converted_to_the_same_numbers():
    res = make_results(two=False)
    res2 = copy.deepcopy(res)
    f = res2["compositions"][0]["fits"]
    f["sigma_arrhenius"]["unit"] = "S/m"                       # 1 S/m = 10 mS/cm
    f["sigma_arrhenius"]["ln_prefactor"] -= math.log(10.0)
    f["d_arrhenius"]["unit"] = "m2/s"
    f["d_arrhenius"]["ln_prefactor"] -= math.log(1e4)
    a = _quiet(build_export, res)["compositions"][0]["at_t_ref"]
    b = _quiet(build_export, res2)["compositions"][0]
    assert b["conductivity"]["arrhenius"]["converted_from_unit"] == "S/m"
    assert b["at_t_ref"]["sigma_mS_cm"] == pytest.approx(a["sigma_mS_cm"], rel=1e-12)
    assert b["at_t_ref"]["d_cm2_s"] == pytest.approx(a["d_cm2_s"], rel=1e-12)


def test_grid_table_matches_reference_values_and_flags_range():
    exp = _quiet(build_export, make_results(t_min=280.0, t_max=340.0))
    c = exp["compositions"][0]
    grid = c["grid"]
    assert grid["t_K"] == list(DEFAULT_GRID_T_K)
    i = grid["t_K"].index(298.15)
    assert grid["sigma_mS_cm"][i] == c["at_t_ref"]["sigma_mS_cm"]
    assert grid["d_m2_s"][i] == c["at_t_ref"]["d_m2_s"]
    inside = [280.0 <= t <= 340.0 for t in grid["t_K"]]
    assert grid["sigma_in_fitted_range"] == inside and any(inside) and not all(inside)
    assert np.all(np.diff(grid["sigma_mS_cm"]) > 0)            # thermally activated


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt,name", [("json", "p.json"), ("yaml", "p.yaml"),
                                      ("csv", "folder"), ("csv", "p.csv"),
                                      ("pybamm", "laco_pybamm.py")])
def test_round_trip_is_exact_and_schema_valid(tmp_path, fmt, name):
    out = tmp_path / name
    comp = "LiAlCl2.5O0.75" if fmt == "pybamm" else None
    exp = _quiet(export_parameters, make_results(), fmt, out, composition=comp)
    back = load_export(out)
    validate_export(back)
    assert back == exp                                   # every number bit-identical
    lnp = back["compositions"][0]["conductivity"]["arrhenius"]["ln_prefactor"]
    assert lnp == 13.6 and type(lnp) is float
    assert back["provenance"]["source"]["provenance"]["odd [key] \"q\""] == []


def test_csv_grid_files_are_plain_tables(tmp_path):
    exp = _quiet(export_parameters, make_results(), "csv", tmp_path / "out")
    for c in exp["compositions"]:
        path = tmp_path / "out" / f"grid_{c['label']}.csv"
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        assert [float(r["t_K"]) for r in rows] == c["grid"]["t_K"]
        assert [float(r["sigma_S_m"]) for r in rows] == c["grid"]["sigma_S_m"]
        assert [int(r["d_in_fitted_range"]) for r in rows] == [int(v) for v in
                                                              c["grid"]["d_in_fitted_range"]]
        arr = np.loadtxt(path, delimiter=",", skiprows=1)
        assert arr.shape == (len(DEFAULT_GRID_T_K), 11)


def test_round_trip_of_real_analysis_fits(tmp_path):
    arrhenius = pytest.importorskip("viglas.analysis.arrhenius")
    t = np.array([500.0, 600.0, 700.0, 800.0, 900.0])
    rng = np.random.default_rng(7)
    sig = np.exp(13.6 - 0.35 / (KB * t)) * np.exp(rng.normal(0, 0.05, t.size))
    d = np.exp(-5.6 - 0.33 / (KB * t)) * np.exp(rng.normal(0, 0.05, t.size))
    fs = arrhenius.fit_arrhenius(t, sig, 0.05 * sig, quantity="sigma")
    fd = arrhenius.fit_arrhenius(t, d, 0.05 * d, quantity="D")
    fv = arrhenius.fit_vft(t, sig, 0.05 * sig, quantity="sigma")
    res = make_results(two=False)
    res["compositions"][0]["fits"] = {"sigma_arrhenius": fs.to_dict(), "d_arrhenius": fd.to_dict(),
                                      "sigma_vft": fv.to_dict(), "d_vft": None,
                                      "preferred_model": "arrhenius"}
    exp = _quiet(export_parameters, json.loads(json.dumps(res)), "yaml", tmp_path / "r.yaml")
    back = load_export(tmp_path / "r.yaml")
    block = back["compositions"][0]["conductivity"]
    again = arrhenius.ArrheniusFit.from_dict(block["arrhenius"])
    for key in ("ln_prefactor", "ea_eV", "cov", "t_min_K", "t_max_K", "n_points", "unit"):
        assert getattr(again, key) == getattr(fs, key)
    assert arrhenius.VFTFit.from_dict(block["vft"]).cov == fv.cov
    assert back["compositions"][0]["diffusivity"]["vft"] is None
    val, err = fs.predict(T_REF)
    a = exp["compositions"][0]["at_t_ref"]
    assert a["sigma_mS_cm"] == pytest.approx(val, rel=1e-12)     # same band as predict()
    assert a["sigma_err_mS_cm"] == pytest.approx(err, rel=1e-12)
    vv, ve = fv.predict(T_REF)
    from viglas.analysis.export import predict
    p = predict(block, T_REF, model="vft")
    assert float(p["value"]) == pytest.approx(vv, rel=1e-12)
    assert float(p["err"]) == pytest.approx(ve, rel=1e-9)


# --------------------------------------------------------------------------- functions
def test_float_functions_equal_export_and_warn_outside_range():
    exp = _quiet(build_export, make_results(t_min=250.0, t_max=400.0))
    a = exp["compositions"][0]["at_t_ref"]
    cond = make_electrolyte_conductivity(exp, "LiAlCl2.5O0.75")
    diff = make_electrolyte_diffusivity(exp, "LiAlCl2.5O0.75")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # in range: no warning at all
        assert cond(1000.0, T_REF) == pytest.approx(a["sigma_S_m"], rel=1e-9)
        assert diff(1000.0, T_REF) == pytest.approx(a["d_m2_s"], rel=1e-9)
        assert cond(1.0, T_REF) == cond(5000.0, T_REF)       # c_e independent
        t = np.array([260.0, 300.0, 390.0])
        assert np.all(np.diff(cond(1000.0, t)) > 0)
    with pytest.warns(ExtrapolationWarning, match="outside the fitted range 250-400 K"):
        cond(1000.0, 450.0)
    hi = make_electrolyte_conductivity(exp, "LiAlCl2.5O0.75", n_sigma=1.0)(1000.0, T_REF)
    lo = make_electrolyte_conductivity(exp, "LiAlCl2.5O0.75", n_sigma=-1.0)(1000.0, T_REF)
    assert hi == pytest.approx(0.1 * a["sigma_high_mS_cm"], rel=1e-12)
    assert lo == pytest.approx(0.1 * a["sigma_low_mS_cm"], rel=1e-12)
    vft = make_electrolyte_conductivity(exp, "LiAlCl2.5O0.75", model="vft")
    with pytest.raises(ExportError, match="t0_K"), pytest.warns(ExtrapolationWarning):
        vft(1000.0, 140.0)


def test_generated_pybamm_module_works_without_viglas_numbers_drift(tmp_path):
    exp = _quiet(export_parameters, make_results(), "pybamm", tmp_path / "naco.py",
                 composition="NaAlCl2.5O0.75")
    spec = importlib.util.spec_from_file_location("naco_params", tmp_path / "naco.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a = exp["compositions"][0]["at_t_ref"]
    with pytest.warns(ExtrapolationWarning):
        assert mod.electrolyte_conductivity(1000.0, T_REF) == pytest.approx(a["sigma_S_m"],
                                                                           rel=1e-9)
    with pytest.warns(ExtrapolationWarning):
        assert mod.electrolyte_diffusivity(1000.0, T_REF) == pytest.approx(a["d_m2_s"], rel=1e-9)
    pv = mod.get_parameter_values()
    assert pv["Cation transference number"] == 1.0
    assert mod.electrolyte_conductivity.model == "vft"


# --------------------------------------------------------------------------- warnings, errors
def test_extrapolation_to_298K_warns_and_is_flagged():
    with pytest.warns(ExtrapolationWarning, match="298.15 K is an extrapolation"):
        exp = build_export(make_results())
    assert exp["compositions"][0]["at_t_ref"]["sigma_in_fitted_range"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inside = build_export(make_results(t_min=250.0, t_max=900.0))
    assert inside["compositions"][0]["at_t_ref"]["sigma_in_fitted_range"] is True


def test_a_fit_that_contradicts_a_measured_bound_is_warned_about():
    """A temperature that is only a bound (no diffusive regime) is exported with its
    d_estimate, and a fit above an upper estimate measured inside the fitted range gets
    the same kind of warning as an extrapolation."""
    res = make_results(t_min=250.0, t_max=900.0, two=False)
    comp = res["compositions"][0]
    comp["temperatures"].insert(0, {"t_K": 300.0, "d_cm2_s": 1e-9, "d_err_cm2_s": 1e-9,
                                    "sigma_mS_cm": 0.1, "sigma_err_mS_cm": 0.1,
                                    "d_estimate": "upper"})
    comp["fits"]["bounds"] = [{"t_K": 300.0, "d_estimate": "upper", "d_cm2_s": 1e-9,
                               "fit_d_cm2_s": 4e-9, "fit_d_err_cm2_s": 1e-9,
                               "contradicts": True}]
    with pytest.warns(ExtrapolationWarning, match="above the upper estimate measured at "
                      "300 K .* values at and below 300 K are too high"):
        exp = build_export(res)
    assert [m["d_estimate"] for m in exp["compositions"][0]["measured"]] == ["upper", "value"]
    validate_export(exp)


def test_vft_with_t0_above_the_reference_temperature_is_said_not_raised():
    res = make_results(two=False)
    fits = res["compositions"][0]["fits"]
    fits["sigma_vft"] = _vft("sigma", "mS/cm", 8.0, 900.0, 350.0, 500.0, 900.0)
    fits["d_vft"] = _vft("D", "cm2/s", -11.0, 850.0, 350.0, 500.0, 900.0)
    fits["preferred_model"] = "vft"
    with pytest.warns(ExtrapolationWarning, match="T0 = 350 K, at or above 298.15 K"):
        exp = build_export(res)
    ref = exp["compositions"][0]["at_t_ref"]
    assert ref["sigma_mS_cm"] is None and ref["sigma_model"] == "vft"
    assert exp["compositions"][0]["conductivity"]["arrhenius"] is not None


def test_results_without_fits_raise_named_error():
    res = make_results(two=False)
    res["compositions"][0]["fits"] = {"d_arrhenius": None, "sigma_arrhenius": None,
                                      "d_vft": None, "sigma_vft": None, "preferred_model": None}
    with pytest.raises(ExportError) as err:
        build_export(res)
    assert err.value.field == "compositions[0].fits.sigma_arrhenius"
    res["compositions"][0]["fits"] = None
    with pytest.raises(ExportError, match="no fits"):
        build_export(res)


def test_unfinished_composition_of_a_sweep_is_skipped_and_listed():
    from viglas.analysis.export import IncompleteResultsWarning

    res = make_results()
    res["compositions"][1]["fits"] = {"d_arrhenius": None, "sigma_arrhenius": None,
                                      "d_vft": None, "sigma_vft": None, "preferred_model": None}
    with pytest.warns(IncompleteResultsWarning, match="NaAlCl2.5O0.75"):
        exp = _quiet(build_export, res)
    assert [c["formula"] for c in exp["compositions"]] == ["LiAlCl2.5O0.75"]
    assert exp["skipped"][0]["formula"] == "NaAlCl2.5O0.75"
    assert "no conductivity fit" in exp["skipped"][0]["reason"]
    with pytest.raises(ExportError):                     # asked for by name: an error
        _quiet(build_export, res, composition="NaAlCl2.5O0.75")
    res["compositions"][0]["fits"] = {}
    with pytest.raises(ExportError, match="no composition in the results has fits"):
        _quiet(build_export, res)


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r.update(schema="something/9"), "schema"),
    (lambda r: r.update(compositions=[]), "compositions"),
    (lambda r: r["compositions"][0]["fits"]["sigma_arrhenius"].update(cov=[[1.0]]),
     "compositions[0].fits.sigma_arrhenius.cov"),
    (lambda r: r["compositions"][0]["fits"]["sigma_arrhenius"].update(ea_eV=float("nan")),
     "compositions[0].fits.sigma_arrhenius.ea_eV"),
    (lambda r: r["compositions"][0]["fits"]["d_arrhenius"].update(unit="furlong2/s"),
     "compositions[0].fits.d_arrhenius.unit"),
    (lambda r: r["compositions"][0]["fits"].update(preferred_model="power"),
     "compositions[0].fits.preferred_model"),
])
def test_bad_results_name_the_field(mutate, field):
    res = make_results()
    mutate(res)
    with pytest.raises(ExportError) as err:
        _quiet(build_export, res)
    assert err.value.field == field


def test_bad_format_composition_and_files(tmp_path):
    res = make_results()
    with pytest.raises(ExportError, match="unknown export format") as err:
        export_parameters(res, "xlsx", tmp_path / "x.xlsx")
    assert err.value.field == "format"
    with pytest.raises(ExportError, match="one composition"):
        _quiet(export_parameters, res, "pybamm", tmp_path / "m.py")
    with pytest.raises(ExportError) as err:
        _quiet(build_export, res, composition="LiGaCl4")
    assert "NaAlCl2.5O0.75" in str(err.value)
    with pytest.raises(ExportError):
        make_electrolyte_conductivity(_quiet(build_export, res))   # two comps, none named
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ExportError, match="key,value"):
        load_export(tmp_path / "junk.csv")
    with pytest.raises(ExportError, match="not found"):
        load_export(tmp_path / "missing.json")
    (tmp_path / "r.json").write_text(json.dumps(res))
    with pytest.raises(ExportError, match="not a viglas continuum export"):
        load_export(tmp_path / "r.json")
    exp = _quiet(export_parameters, res, "json", tmp_path / "e.json")
    exp["compositions"][0]["transference_number"] = 0.5
    with pytest.raises(ExportError, match="does not match"):
        validate_export(exp)


# --------------------------------------------------------------------------- CLI
def test_cli_export_formats_and_errors(tmp_path, capsys):
    from viglas.cli import main

    src = tmp_path / "results.json"
    src.write_text(json.dumps(make_results()))
    assert main(["export", str(src), "-f", "yaml", "-o", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr()
    assert "sigma(298.15 K)" in out.out and "extrapolat" in out.err
    assert load_export(tmp_path / "c.yaml")["compositions"][1]["formula"] == "NaAlCl2.5O0.75"
    assert main(["export", str(src), "-f", "csv", "-o", str(tmp_path / "csv"),
                 "--grid", "290:310:10"]) == 0
    assert load_export(tmp_path / "csv")["compositions"][0]["grid"]["t_K"] == [290.0, 300.0,
                                                                              310.0]
    assert main(["export", str(src), "-f", "pybamm", "-c", "LiAlCl2.5O0.75",
                 "-o", str(tmp_path / "m.py")]) == 0
    assert main(["export", str(src), "-f", "xml"]) == 2
    assert main(["export", str(src), "--strict", "-o", str(tmp_path / "s.json")]) == 2
    assert not (tmp_path / "s.json").exists()
    err = capsys.readouterr().err
    assert "--format" in err and "--strict" in err


def test_unfinished_run_is_marked_in_every_format_and_strict_refuses_it(tmp_path, capsys):
    """Issue 14 item 7: an export of an unfinished run (failed MD, a summary without
    every run) says complete: false with the reasons, in every format; --strict
    refuses it. A finished run is complete: true."""
    from viglas.analysis.export import IncompleteResultsWarning
    from viglas.cli import main

    done = make_results(t_min=250.0, t_max=900.0)  # 298 K inside: no extrapolation warning
    done["status"] = {"complete": True, "jobs_finished": 19, "jobs_total": 19, "failed": []}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_export(done)["complete"] is True
    res = copy.deepcopy(done)
    res["status"] = {"complete": False, "jobs_finished": 17, "jobs_total": 19,
                     "failed": [{"uuid": "abc", "error": "MDError: boiled"}]}
    res["compositions"][0]["complete"] = False
    with pytest.warns(IncompleteResultsWarning, match="incomplete"):
        exp = build_export(res)
    assert exp["complete"] is False
    assert [c["complete"] for c in exp["compositions"]] == [False, True]
    assert any("1 job(s) failed" in r for r in exp["incomplete_reasons"])
    assert any("LiAlCl2.5O0.75" in r for r in exp["incomplete_reasons"])
    for fmt, name in (("json", "e.json"), ("yaml", "e.yaml"), ("csv", "csv"), ("pybamm", "m.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_parameters(res, fmt, tmp_path / name,
                              composition="LiAlCl2.5O0.75" if fmt == "pybamm" else None)
        back = load_export(tmp_path / name)
        assert back["complete"] is False and back["compositions"][0]["complete"] is False, fmt
    src = tmp_path / "results.json"
    src.write_text(json.dumps(res))
    capsys.readouterr()
    assert main(["export", str(src), "-o", str(tmp_path / "x.json")]) == 0
    assert "INCOMPLETE" in capsys.readouterr().err
    assert main(["export", str(src), "--strict", "-o", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert "--strict" in err and "incomplete" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.json").exists()
