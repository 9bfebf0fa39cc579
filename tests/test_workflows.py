"""Workflows: deterministic flows, serialisable jobs, replica averaging, summary physics.

Fast tests here; the end-to-end runs (real MD, interrupt + resume, sweep, screening)
are in tests/test_workflows_e2e.py (marked slow).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from viglas.config import parse_config
from viglas.units import KB_EV_K
from viglas.workflows.documents import (CompositionSummaryDoc, DiffusionDoc, MeltQuenchDoc,
                                        StructureDoc)
from viglas.workflows.flows import build_flow, derive_seed
from viglas.analysis.summary import combine_replicas
from viglas.workflows.makers import CompositionSummaryMaker, SeriesSummaryMaker

TINY = {"name": "tiny", "composition": "LiAlCl2.5O0.75", "structure": {"n_atoms": 42},
        "production": {"temperatures_K": [600, 800], "replicas": 2, "duration_ps": 1,
                       "save_every_fs": 10}}


def _uuids(flow):
    return [j.uuid for j, _ in flow.iterflow()]


def _stage_uuids(flow, stage):
    return {j.uuid for j, _ in flow.iterflow() if j.metadata.get("viglas_stage") == stage}


def test_flow_is_deterministic_and_sized():
    cfg = parse_config(TINY)
    f1, f2 = build_flow(cfg), build_flow(cfg)
    assert _uuids(f1) == _uuids(f2)
    # build + melt-quench + (md + diffusion) per T x replica + summary
    assert len(_uuids(f1)) == 2 + 2 * 2 * 2 + 1
    # progress only toggles bars: same uuids
    assert _uuids(build_flow(cfg, progress=True)) == _uuids(f1)


def test_changing_a_setting_reruns_only_what_depends_on_it():
    base = parse_config(TINY)
    changed = parse_config({**TINY, "production": {**TINY["production"], "duration_ps": 2}})
    fa, fb = build_flow(base), build_flow(changed)
    for stage in ("build", "melt_quench"):
        assert _stage_uuids(fa, stage) == _stage_uuids(fb, stage)
    for stage in ("production", "diffusion", "summary"):
        assert _stage_uuids(fa, stage).isdisjoint(_stage_uuids(fb, stage))
    reseeded = build_flow(parse_config({**TINY, "seed": 5}))
    assert _stage_uuids(fa, "build").isdisjoint(_stage_uuids(reseeded, "build"))


def test_seeds_differ_between_replicas_and_are_reproducible():
    s = {derive_seed(1, "production", "LiAlCl2.5O0.75", t, r) for t in (600, 800) for r in (0, 1)}
    assert len(s) == 4
    assert derive_seed(1, "x", 2) == derive_seed(1, "x", 2)


def test_flow_serialises_for_remote_execution():
    """jobflow-remote stores the flow as JSON: no closures, everything round-trips."""
    from jobflow import Flow

    cfg = parse_config({"kind": "screening", "screening": {"former": ["Al", "Ga", "In"]},
                        **{k: v for k, v in TINY.items() if k != "composition"}})
    flow = build_flow(cfg)
    text = json.dumps(flow.as_dict())
    back = Flow.from_dict(json.loads(text))
    assert _uuids(back) == _uuids(flow)
    job = next(j for j, _ in back.iterflow() if j.metadata.get("viglas_stage") == "production")
    assert job.maker.steps == cfg.production.steps and job.function_kwargs["t_K"] in (600.0, 800.0)
    assert len(_stage_uuids(flow, "series")) == 1


def test_combine_replicas():
    m, e = combine_replicas([1.0, 3.0], [0.1, 0.1])
    assert m == pytest.approx(2.0)
    assert e == pytest.approx(1.0)  # between-replica SEM = std(ddof=1)/sqrt(2) = 1.0 dominates
    m, e = combine_replicas([2.0, 2.0], [0.4, 0.3])
    assert e == pytest.approx(0.25)  # propagated fit error sqrt(0.16+0.09)/2
    m, e = combine_replicas([5.0], [0.5])
    assert (m, e) == (5.0, 0.5)


def _structure_doc(formula="LiAlCl2.5O0.75", x=0.75, p=0.2308):
    return StructureDoc(formula=formula, label=formula.replace(".", "p"), x=x, oxygen_fraction=p,
                        alkali={"Li": 1.0}, former={"Al": 1.0}, mobile_species=["Li"], n_atoms=42,
                        counts={"Li": 8}, density_g_cm3=2.2, volume_A3=600.0, method="substitution",
                        seed=0, structure_path="unused")


def test_composition_summary_recovers_arrhenius(tmp_path, monkeypatch):
    """Synthetic D(T) = D0 exp(-Ea/kT) with 3 % noise: Ea and D(300 K) come back within
    their error bars, and replicas are averaged per temperature."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    ea, d0 = 0.35, 2e-3
    runs = []
    for t in (500.0, 600.0, 700.0, 800.0):
        for r in range(2):
            d = d0 * np.exp(-ea / (KB_EV_K * t)) * (1 + 0.03 * rng.normal())
            runs.append(DiffusionDoc(formula="LiAlCl2.5O0.75", t_K=t, replica=r, seed=r,
                                     species="Li", trajectory=f"/x/{t}_{r}.h5", d_cm2_s=d,
                                     d_err_cm2_s=0.03 * d, sigma_mS_cm=d * 1e6 * 500.0 / t,
                                     sigma_err_mS_cm=0.03 * d * 1e6 * 500.0 / t,
                                     number_density_per_cm3=1e22))
    glass = MeltQuenchDoc(formula="LiAlCl2.5O0.75", structure_path="unused", seed=0, t_melt_K=1500,
                          t_final_K=500, cool_rate_K_ps=100, pressure_GPa=0.0, density_g_cm3=2.2,
                          volume_A3=600.0, tg_K=450.0, tg_err_K=20.0)
    maker = CompositionSummaryMaker(structure_metrics=False, plots=True)
    doc = CompositionSummaryMaker.make.original(maker, _structure_doc(), glass, runs + [None],
                                                calculator={"name": "ionic", "params": {}})
    assert isinstance(doc, CompositionSummaryDoc)
    assert len(doc.temperatures) == 4 and all(p.n_replicas == 2 for p in doc.temperatures)
    assert abs(doc.ea_eV - ea) < 3 * doc.ea_err_eV + 0.01
    d300 = d0 * np.exp(-ea / (KB_EV_K * 300.0))
    assert abs(doc.d_300K_cm2_s - d300) < 3 * doc.d_300K_err_cm2_s
    # sigma(300 K) is Nernst-Einstein (sigma ~ D/T, as the runs' sigma) on the extrapolated D
    assert doc.sigma_300K_mS_cm == pytest.approx(doc.d_300K_cm2_s * 1e6 * 500.0 / 300.0, rel=1e-6)
    assert doc.tg_K == 450.0
    assert any("1 of 9 MD runs" in m for m in doc.messages)
    assert os.path.isfile(doc.plots["d_arrhenius"])
    # no NaN anywhere: the document is strict JSON
    json.dumps(doc.model_dump(), allow_nan=False)


def test_runs_without_a_diffusive_regime_are_bounds_not_fit_points(tmp_path, monkeypatch):
    """A replica flagged "no diffusive regime" gives a bound on D, not a measurement,
    and the replica mean with it is a bound too: such a point is left out of every fit,
    kept in fits["bounds"] with the fit's prediction there, and a fit whose band lies
    above an upper estimate is said to overestimate D. Before this, such points entered
    the fits as data."""
    monkeypatch.chdir(tmp_path)
    ea, d0 = 0.35, 2e-3

    def run(t, r, factor=1.0, kind=None):
        d = d0 * np.exp(-ea / (KB_EV_K * t)) * factor
        tr = {"diffusion": {"d_estimate": kind, "diffusive": False}} if kind else {}
        return DiffusionDoc(formula="LiAlCl2.5O0.75", t_K=t, replica=r, seed=r, species="Li",
                            trajectory=f"/x/{t}_{r}.h5", d_cm2_s=d, d_err_cm2_s=0.02 * d,
                            sigma_mS_cm=d * 1e6 * 500.0 / t,
                            sigma_err_mS_cm=0.02 * d * 1e6 * 500.0 / t,
                            number_density_per_cm3=1e22, transport=tr)

    runs = [run(t, r) for t in (600.0, 700.0, 800.0) for r in range(2)]
    runs += [run(500.0, 0), run(500.0, 1, factor=8.0, kind="upper")]  # one bound at 500 K
    runs += [run(400.0, 0, 0.2, "upper"), run(400.0, 1, 0.3, "upper")]  # both bounds, low
    glass = MeltQuenchDoc(formula="LiAlCl2.5O0.75", structure_path="unused", seed=0,
                          t_melt_K=1500, t_final_K=500, cool_rate_K_ps=100, pressure_GPa=0.0,
                          density_g_cm3=2.2, volume_A3=600.0)
    maker = CompositionSummaryMaker(structure_metrics=False, plots=True)
    doc = CompositionSummaryMaker.make.original(maker, _structure_doc(), glass, runs,
                                                calculator={"name": "ionic", "params": {}})
    by_t = {p.t_K: p for p in doc.temperatures}
    # a value and an upper estimate: the mean (4.5x the true D) is an upper estimate
    assert by_t[500.0].d_estimate == "upper" and by_t[500.0].n_replicas == 2
    assert by_t[500.0].n_bound_replicas == 1
    assert by_t[500.0].d_cm2_s == pytest.approx(4.5 * d0 * np.exp(-ea / (KB_EV_K * 500.0)))
    assert by_t[400.0].d_estimate == "upper" and by_t[400.0].n_bound_replicas == 2
    assert by_t[600.0].d_estimate == "value" and by_t[600.0].n_bound_replicas == 0
    # the fit sees exact Arrhenius data only: Ea comes back exactly
    assert doc.ea_eV == pytest.approx(ea, rel=1e-6)
    assert doc.fits["d_arrhenius"]["n_points"] == 3
    assert doc.fits["d_arrhenius"]["t_min_K"] == 600.0
    b400, b500 = doc.fits["bounds"]
    assert b400["t_K"] == 400.0 and b400["d_estimate"] == "upper"
    assert b400["contradicts"] is True and b500["contradicts"] is False
    assert b400["fit_d_cm2_s"] == pytest.approx(d0 * np.exp(-ea / (KB_EV_K * 400.0)), rel=1e-6)
    assert (b500["n_replicas"], b500["n_bound_replicas"]) == (2, 1)
    assert any("400 K: no diffusive regime in 2 of 2 replicas, so the replica mean of D "
               "is an upper estimate" in m for m in doc.messages)
    assert any("500 K: no diffusive regime in 1 of 2" in m for m in doc.messages)
    assert any("overestimates D at 400 K" in m for m in doc.messages)
    assert not any("overestimates D at 500 K" in m for m in doc.messages)
    assert {r["d_estimate"] for r in doc.runs} == {"value", "upper"}
    assert os.path.isfile(doc.plots["d_arrhenius"])
    # an upper estimate above the fit is consistent with it: no warning
    runs[-2:] = [run(400.0, 0, 3.0, "upper"), run(400.0, 1, 2.0, "upper")]
    doc = CompositionSummaryMaker.make.original(
        CompositionSummaryMaker(structure_metrics=False, plots=False), _structure_doc(), glass,
        runs, calculator={"name": "ionic", "params": {}})
    assert doc.fits["bounds"][0]["contradicts"] is False
    assert not any("overestimates" in m for m in doc.messages)
    json.dumps(doc.model_dump(), allow_nan=False)


def test_vft_with_t0_above_303K_falls_back_to_arrhenius_for_sigma_303K():
    """A preferred VFT fit whose T0 lies above 303 K has no value there: sigma(303 K)
    comes from the Arrhenius fit and the messages say why (it used to raise and sink
    the whole summary)."""
    from viglas.analysis.summary import fit_series, temperature_points

    t = np.array([500.0, 550.0, 600.0, 650.0, 700.0, 750.0, 800.0])
    d = 1e-3 * np.exp(-600.0 / (t - 350.0))
    rows = [{"t_K": x, "d_cm2_s": y, "d_err_cm2_s": 0.02 * y, "sigma_mS_cm": y * 1e7 / x,
             "sigma_err_mS_cm": 0.02 * y * 1e7 / x} for x, y in zip(t, d)]
    s = fit_series(temperature_points(rows))
    assert s.fits["preferred_model"] == "vft"
    assert s.fits["d_vft"]["t0_K"] == pytest.approx(350.0, abs=1.0)
    assert s.values["sigma_303K_model"] == "arrhenius"
    assert s.values["sigma_303K_mS_cm"] > 0
    assert any("T0 = 350 K, at or above 303 K" in m for m in s.messages)


def test_temperature_points_kinds():
    """Rows without a d_estimate (results written before it) count as values; a point of
    upper and lower bounds is "mixed"; fewer than two diffusive points: no fit, and the
    message says the others are bounds."""
    from viglas.analysis.summary import fit_series, temperature_points

    rows = [{"t_K": 500.0, "d_cm2_s": 1e-6, "d_err_cm2_s": 1e-7},
            {"t_K": 400.0, "d_cm2_s": 1e-7, "d_err_cm2_s": 1e-7, "d_estimate": "upper"},
            {"t_K": 400.0, "d_cm2_s": 2e-7, "d_err_cm2_s": 1e-7, "d_estimate": "lower"},
            {"t_K": 300.0, "d_cm2_s": 2e-8, "d_err_cm2_s": 1e-8, "d_estimate": "value"},
            {"t_K": 300.0, "d_cm2_s": 4e-8, "d_err_cm2_s": 1e-8, "d_estimate": "lower"}]
    pts = temperature_points(rows)
    assert [(p["t_K"], p["d_estimate"], p["n_replicas"], p["n_bound_replicas"])
            for p in pts] == [(300.0, "lower", 2, 1), (400.0, "mixed", 2, 2),
                              (500.0, "value", 1, 0)]
    series = fit_series(pts)
    assert series.fits["d_arrhenius"] is None and series.values["ea_eV"] is None
    assert any("have 1 (2 more are bounds)" in m for m in series.messages)
    assert [b["contradicts"] for b in series.fits["bounds"]] == [None, None]


def _summary(formula, p, sigma, ea=0.3, tg=None, rel_err=0.05):
    return CompositionSummaryDoc(
        formula=formula, label=formula, x=p, oxygen_fraction=p, alkali={"Li": 1.0},
        former={"Al": 1.0}, mobile_species="Li", n_atoms=42, density_g_cm3=2.2,
        number_density_per_cm3=1e22, calculator={"name": "ionic"}, runs=[], temperatures=[],
        fits={}, ea_eV=ea, ea_err_eV=0.01, sigma_300K_mS_cm=sigma,
        sigma_300K_err_mS_cm=None if sigma is None else rel_err * sigma, tg_K=tg,
        structure={"largest_cluster_fraction": p})


def test_sweep_summary_fits_percolation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pc, t = 0.12, 1.8
    ps = [0.05, 0.10, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4]
    rng = np.random.default_rng(0)
    docs = []
    for p in ps:
        if p > pc:
            docs.append(_summary(f"C{p}", p, 10.0 * (p - pc) ** t * (1 + 0.02 * rng.normal())))
        else:  # insulating: sigma indistinguishable from zero
            docs.append(_summary(f"C{p}", p, 1e-6, rel_err=1.0))
    maker = SeriesSummaryMaker(kind="oxygen_sweep", plots=False)
    out = SeriesSummaryMaker.make.original(maker, docs + [None])
    assert "error" not in out.percolation, out.percolation
    assert abs(out.percolation["p_c"] - pc) < 0.03
    assert abs(out.percolation["t"] - t) < 0.5
    assert len(out.structural_percolation) == len(ps)
    assert out.ranking[0]["formula"] == "C0.4" and out.ranking[0]["rank"] == 1


def test_sweep_summary_too_few_points_gives_clear_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    docs = [_summary("A", 0.1, 1e-3), _summary("B", 0.2, 2e-3), _summary("C", 0.3, None)]
    out = SeriesSummaryMaker.make.original(SeriesSummaryMaker(kind="oxygen_sweep", plots=False), docs)
    assert "not enough points above threshold" in out.percolation["error"]


def test_screening_summary_ranks_and_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    docs = [_summary("LiAlCl2.5O0.75", 0.23, 0.5, ea=0.35, tg=400),
            _summary("LiGaCl2.5O0.75", 0.23, 2.0, ea=0.30, tg=380),
            _summary("LiInCl2.5O0.75", 0.23, 0.1, ea=0.40, tg=None)]
    out = SeriesSummaryMaker.make.original(SeriesSummaryMaker(kind="screening"), docs)
    assert [r["formula"] for r in out.ranking] == ["LiGaCl2.5O0.75", "LiAlCl2.5O0.75",
                                                   "LiInCl2.5O0.75"]
    assert out.percolation is None
    for key in ("sigma300_vs_ea", "sigma300_vs_tg"):
        assert os.path.getsize(out.plots[key]) > 1000


def test_failed_job_is_reported_and_dependants_skipped(tmp_path):
    """A job that fails (here: a missing potential file, found only when the MD starts)
    is reported with its one-line error; jobs that need it are skipped; results.json,
    report.md and a non-zero CLI exit code tell the user."""
    import subprocess
    import sys

    import yaml

    from viglas.workflows.run import run_local

    data = {**TINY, "calculator": {"name": "ionic",
                                   "params": {"parameters": str(tmp_path / "missing.yaml")}}}
    res = run_local(parse_config(data), tmp_path / "w", progress=False, workers=1)
    st = res["status"]
    assert not st["complete"]
    errors = [f["error"] for f in st["failed"]]
    assert any("missing.yaml" in e for e in errors), errors
    assert sum(e.startswith("skipped") for e in errors) == 8  # 4 MD + 4 analyses
    assert any("nothing to summarise" in e for e in errors)
    assert res["compositions"][0]["n_atoms"] == 42  # the build job finished and is kept
    assert "failed job" in (tmp_path / "w" / "report.md").read_text()
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "viglas.cli", "run", str(cfg), "--workdir",
                           str(tmp_path / "w"), "--quiet"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
