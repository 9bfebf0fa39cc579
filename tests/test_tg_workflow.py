"""Tg at several cooling rates through the flow (issue 16 item 4)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from viglas.analysis.tg_rate import LAB_RATE_K_PS
from viglas.config import parse_config
from viglas.errors import ConfigError
from viglas.workflows.flows import build_flow
from viglas.workflows.makers import _tg_rates_impl

TINY = {"name": "tg", "composition": "LiAlCl2.5O0.75", "seed": 5, "structure": {"n_atoms": 42},
        "melt_quench": {"t_melt_K": 1000, "hold_ps": 0.5, "t_final_K": 300,
                        "cool_rate_K_ps": 700, "timestep_fs": 2, "tg_min_cooling_ps": 0.5,
                        "tg_cooling_rates_K_ps": [350, 175]},
        "production": {"temperatures_K": [800], "replicas": 1, "duration_ps": 1,
                       "timestep_fs": 2, "save_every_fs": 20, "equilibration_ps": 0.2}}


def _q(rate, tg, err, msg=None):
    return SimpleNamespace(cool_rate_K_ps=rate, tg_K=tg, tg_err_K=err, tg_message=msg)


def test_rates_are_validated():
    bad = json.loads(json.dumps(TINY))
    bad["melt_quench"]["tg_cooling_rates_K_ps"] = [700]
    with pytest.raises(ConfigError, match="tg_cooling_rates_K_ps"):
        parse_config(bad)


def test_flow_has_one_quench_per_extra_rate_and_old_ids_stay():
    flow = build_flow(parse_config(TINY))
    tq = [j for j, _ in flow.iterflow() if j.metadata.get("viglas_stage") == "tg_quench"]
    assert sorted(j.metadata["cool_rate_K_ps"] for j in tq) == [175.0, 350.0]
    plain = json.loads(json.dumps(TINY))
    del plain["melt_quench"]["tg_cooling_rates_K_ps"]
    ids = {j.uuid for j, _ in build_flow(parse_config(plain)).iterflow()}
    plain["melt_quench"]["tg_cooling_rates_K_ps"] = []
    assert ids == {j.uuid for j, _ in build_flow(parse_config(plain)).iterflow()}


def test_summary_extrapolates_tg_to_the_lab_rate():
    # Tg(q) from the Arrhenius-type law with Tg(lab) = 250 K
    lnq_lab, lnq1 = np.log(LAB_RATE_K_PS), np.log(100.0)
    b = (1 / 250 - 1 / 450) / (lnq1 - lnq_lab)
    a = 1 / 450 + b * lnq1

    def tg(q):
        return 1 / (a - b * np.log(q))

    msgs: list[str] = []
    rows, lab, lab_err, fit = _tg_rates_impl(_q(100.0, tg(100.0), 2.0),
                                             [_q(30.0, tg(30.0), 2.0), _q(10.0, tg(10.0), 2.0)],
                                             msgs)
    assert [r["cool_rate_K_ps"] for r in rows] == [100.0, 30.0, 10.0]
    assert lab == pytest.approx(250.0, rel=1e-6) and lab_err > 2.0
    assert fit["law"] == "arrhenius" and any("10 K/min" in m for m in msgs)
    # one rate without a Tg: said so, no extrapolation from a single point
    msgs = []
    rows, lab, _, _ = _tg_rates_impl(_q(100.0, 400.0, 2.0), [_q(30.0, None, None, "no kink")],
                                     msgs)
    assert lab is None and any("need >= 2" in m for m in msgs)


def test_tiny_flow_reports_tg_rates(tmp_path):
    from viglas.workflows.run import run_local

    run_local(parse_config(TINY), tmp_path / "w", progress=False, workers=1)
    comp = json.loads((tmp_path / "w" / "results.json").read_text())["compositions"][0]
    assert sorted(r["cool_rate_K_ps"] for r in comp["tg_rates"]) == [175.0, 350.0, 700.0]
    # either an extrapolated Tg with its band, or a message saying why not
    assert (comp["tg_lab_K"] is not None and comp["tg_lab_err_K"] > 0) or any(
        "Tg" in m for m in comp["messages"])


def test_sigma_303K_source_rules():
    from viglas import analysis as an
    from viglas.workflows.documents import TemperaturePoint
    from viglas.analysis.summary import sigma_303K

    ts = [300.0, 400.0, 500.0, 600.0]
    d = [1e-8 * np.exp(-0.3 / 8.617e-5 * (1 / t - 1 / 300.0)) for t in ts]
    pts = [TemperaturePoint(t_K=t, n_replicas=2, d_cm2_s=x, d_err_cm2_s=0.05 * x,
                            sigma_mS_cm=1e8 * x / t, sigma_err_mS_cm=5e6 * x / t)
           for t, x in zip(ts, d)]
    fit = an.fit_arrhenius(np.array(ts), np.array(d), 0.05 * np.array(d), quantity="D")
    got = sigma_303K(pts, {"d_arrhenius": fit}, "arrhenius")
    assert got["sigma_303K_source"] == "simulated"  # the 300 K run is within 5 K
    assert got["sigma_303K_mS_cm"] == pytest.approx(pts[0].sigma_mS_cm)
    got = sigma_303K(pts[1:], {"d_arrhenius": fit}, "arrhenius")
    assert got["sigma_303K_source"] == "extrapolated" and got["sigma_303K_model"] == "arrhenius"
    # NE on the fitted D: sigma/D scales as 1/T between the points
    assert got["sigma_303K_mS_cm"] == pytest.approx(1e8 * fit.predict(303.15)[0] / 303.15,
                                                    rel=1e-6)
    wide = [TemperaturePoint(t_K=t, n_replicas=1, d_cm2_s=x, d_err_cm2_s=0.05 * x,
                             sigma_mS_cm=1e8 * x / t, sigma_err_mS_cm=5e6 * x / t)
            for t, x in zip([250.0, 500.0], [d[0] / 10, d[2]])]
    got = sigma_303K(wide, {"d_arrhenius": fit}, "arrhenius")
    assert got["sigma_303K_source"] == "interpolated"
