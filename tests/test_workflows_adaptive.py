"""Adaptive production runs through the real flow: the cap is reported, the target is
reached, old job ids are kept while the feature is off (issue 16 item 1)."""

from __future__ import annotations

import json

import pytest

from viglas.config import parse_config
from viglas.errors import ConfigError
from viglas.workflows.flows import build_flow

# the flow's adaptive machinery, run with the fast plain ionic set (chgnet-ionic, at the
# 0.5 GPa it needs): a 42-atom glass that diffuses within 2 ps at 800 K. The default
# dft-delta glass does not, so its run would end without an estimate, another path.
BASE = {"name": "adaptive", "composition": "LiAlCl2.5O0.75", "seed": 3,
        "calculator": {"name": "ionic", "params": {"parameters": "chgnet-ionic"}},
        "structure": {"n_atoms": 42},
        "melt_quench": {"t_melt_K": 1000, "hold_ps": 0.5, "t_final_K": 800,
                        "cool_rate_K_ps": 1000, "timestep_fs": 2, "pressure_GPa": 0.5},
        "production": {"temperatures_K": [800], "replicas": 1, "duration_ps": 2,
                       "timestep_fs": 2, "save_every_fs": 20, "equilibration_ps": 0.5}}


def _with(**prod):
    d = json.loads(json.dumps(BASE))
    d["production"].update(prod)
    return d


def _md_uuids(flow):
    return {j.uuid for j, _ in flow.iterflow() if j.metadata.get("viglas_stage") == "production"}


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="max_duration_ps"):
        parse_config(_with(target_d_rel_err=0.15))
    with pytest.raises(ConfigError, match="target_d_rel_err"):
        parse_config(_with(target_d_rel_err=1.5, max_duration_ps=10))
    with pytest.raises(ConfigError, match="max_duration_ps"):
        parse_config(_with(target_d_rel_err=0.1, max_duration_ps=1))
    assert parse_config(_with(target_d_rel_err=0.1, max_duration_ps=10)).production.max_steps \
        == 5000


def test_job_ids_unchanged_while_off_and_changed_when_on():
    off = _md_uuids(build_flow(parse_config(BASE)))
    assert off == _md_uuids(build_flow(parse_config(_with(max_duration_ps=None))))
    on = _md_uuids(build_flow(parse_config(_with(target_d_rel_err=0.2, max_duration_ps=10))))
    assert on.isdisjoint(off)


def test_adaptive_run_stops_at_the_cap_and_says_so(tmp_path):
    from viglas.workflows.run import run_local

    cfg = parse_config(_with(target_d_rel_err=0.001, max_duration_ps=4))
    run_local(cfg, tmp_path / "w", progress=False, workers=1)
    res = json.loads((tmp_path / "w" / "results.json").read_text())
    comp = res["compositions"][0]
    run = comp["runs"][0]
    assert run["adaptive_stop_reason"] == "max_duration_reached"
    assert run["production_ps"] == pytest.approx(4.0)
    assert any("stopped at the cap" in m for m in comp["messages"])
    state = json.loads(next((tmp_path / "w").rglob("adaptive.json")).read_text())
    assert [h["steps"] for h in state["history"]][-1] == 2000
    assert len(state["history"]) >= 2  # it tried to extend before the cap
    # the Onsager transference number travels to the composition (issue 16 item 5)
    t = comp["transference_number"]
    assert t is not None and comp["transference_number_err"] > 0
    assert comp["transference_t_K"] == [800.0]
    assert comp["temperatures"][0]["transference_number"] == pytest.approx(t)
    # sigma at 303 K from the 800 K data: an extrapolation, and labelled so (item 3)
    assert comp["sigma_303K_source"] in ("extrapolated", None)


def test_per_temperature_caps():
    cfg = parse_config(_with(temperatures_K=[700, 800], target_d_rel_err=0.2,
                             max_duration_ps=10, max_duration_ps_by_T={700: 40}))
    assert cfg.production.max_steps_at(700) == 20000
    assert cfg.production.max_steps_at(800) == 5000
    flow = build_flow(cfg)
    caps = {j.metadata["t_K"]: j.function.__self__.max_steps for j, _ in flow.iterflow()
            if j.metadata.get("viglas_stage") == "production"}
    assert caps == {700.0: 20000, 800.0: 5000}
    with pytest.raises(ConfigError, match="max_duration_ps_by_T"):
        parse_config(_with(target_d_rel_err=0.2, max_duration_ps=10,
                           max_duration_ps_by_T={650: 40}))
