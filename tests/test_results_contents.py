"""What results.json and report.md carry (issue 14, item 13): the composition-level
Haven ratio with its error and the temperatures it comes from, covariance matrices
that name their parameters, the git commit and the versions of every package that
shapes the numbers, and the viglas version and seeds in report.md."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.units import KB_EV_K
from viglas.workflows.documents import DiffusionDoc, MeltQuenchDoc, StructureDoc
from viglas.analysis.summary import COV_PARAMS
from viglas.workflows.makers import CompositionSummaryMaker


def _runs(haven):
    runs = []
    for t in (500.0, 600.0, 700.0, 800.0):
        for r in range(2):
            d = 2e-3 * np.exp(-0.3 / (KB_EV_K * t))
            h = haven.get((t, r))
            runs.append(DiffusionDoc(formula="LiAlCl2.5O0.75", t_K=t, replica=r, seed=10 * r,
                                     species="Li", trajectory="x.h5", d_cm2_s=d,
                                     d_err_cm2_s=0.03 * d, sigma_mS_cm=d * 1e6,
                                     sigma_err_mS_cm=0.03 * d * 1e6, number_density_per_cm3=1e22,
                                     haven_ratio=None if h is None else h[0],
                                     haven_ratio_err=None if h is None else h[1]))
    return runs


def test_summary_reports_haven_ratio_with_error_and_temperatures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    haven = {(600.0, 0): (0.5, 0.05), (600.0, 1): (0.7, 0.05), (800.0, 0): (0.6, 0.1)}
    structure = StructureDoc(formula="LiAlCl2.5O0.75", label="LACO", x=0.75,
                             oxygen_fraction=0.23, alkali={"Li": 1.0}, former={"Al": 1.0},
                             mobile_species=["Li"], n_atoms=42, counts={"Li": 8},
                             density_g_cm3=2.2, volume_A3=600.0, method="substitution", seed=0,
                             structure_path="unused")
    glass = MeltQuenchDoc(formula="LiAlCl2.5O0.75", structure_path="unused", seed=0,
                          t_melt_K=1000, t_final_K=500, cool_rate_K_ps=100, pressure_GPa=0.5,
                          density_g_cm3=2.2, volume_A3=600.0)
    maker = CompositionSummaryMaker(structure_metrics=False, plots=False)
    doc = CompositionSummaryMaker.make.original(maker, structure, glass, _runs(haven),
                                                calculator={"name": "ionic", "params": {}})
    by_t = {p.t_K: p for p in doc.temperatures}
    assert by_t[600.0].haven_ratio == pytest.approx(0.6)
    assert by_t[600.0].haven_ratio_err == pytest.approx(0.1)  # sd of the mean of 0.5, 0.7
    assert by_t[800.0].haven_ratio == pytest.approx(0.6) and by_t[800.0].haven_ratio_err == 0.1
    assert by_t[500.0].haven_ratio is None
    assert doc.haven_ratio == pytest.approx(0.6)
    assert doc.haven_ratio_err is not None and doc.haven_ratio_err > 0
    assert doc.haven_ratio_t_K == [600.0, 800.0]
    assert doc.fits["d_arrhenius"]["cov_params"] == ["ln_prefactor", "ea_eV"]
    assert doc.fits["d_vft"] is None or doc.fits["d_vft"]["cov_params"] == list(COV_PARAMS["vft"])
    assert np.shape(doc.fits["d_arrhenius"]["cov"]) == (2, 2)


def test_results_json_and_report_carry_versions_git_and_seeds(tmp_path):
    from test_run_trust import FAST

    from viglas.config import parse_config
    from viglas.workflows.run import run_local

    res = run_local(parse_config(FAST), tmp_path / "w", progress=False, workers=1)
    prov = res["provenance"]
    for pkg in ("viglas", "numpy", "h5py", "numba", "typer", "jobflow"):
        assert pkg in prov["versions"], pkg
    assert "git" in prov  # None outside a git checkout
    if prov["git"] is not None:
        assert len(prov["git"]["commit"]) == 40 and isinstance(prov["git"]["dirty"], bool)
    c = res["compositions"][0]
    assert {"haven_ratio", "haven_ratio_err", "haven_ratio_t_K"} <= set(c)
    # 1 ps runs may have no diffusive regime: every temperature is a fit point or a bound
    fit = c["fits"]["d_arrhenius"]
    assert (fit["n_points"] if fit else 0) + len(c["fits"]["bounds"]) == 3
    if fit is not None:
        assert fit["cov_params"] == ["ln_prefactor", "ea_eV"]
    report = (tmp_path / "w" / "report.md").read_text()
    assert f"viglas {prov['versions']['viglas']}" in report
    assert f"config seed {FAST['seed']}" in report
    for r in c["runs"]:
        assert f"{r['t_K']:g} K r{r['replica']}: {r['seed']}" in report
    header = (tmp_path / "w" / "temperatures.csv").read_text().splitlines()[0]
    assert header.endswith("haven_ratio,haven_ratio_err")
