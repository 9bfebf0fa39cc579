"""MSD tables as input, sigma(300 K) by Nernst-Einstein on the extrapolated D, the
Python API's option names, and the no-diffusive-regime report (issue 15)."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from ase import Atoms

from viglas.analysis import (analyze_msd_table, analyze_trajectory, diffusion_coefficient,
                             fit_arrhenius, msd_fft, msd_from_table,
                             nernst_einstein_sigma_mS_cm, read_msd_table, sigma_from_d_fit)
from viglas.errors import AnalysisError
from viglas.trajectory import H5MDWriter
from viglas.units import A2_FS_TO_CM2_S

KB = 8.617333262e-5
L = 12.0


def _walk(rng, n_frames, n_ions, d_a2fs):
    return np.cumsum(rng.normal(0.0, np.sqrt(2 * d_a2fs), (n_frames, n_ions, 3)), axis=0)


def _table(path, msd, n_ions=True, err=None, axes=None):
    lags = msd.sample_lag
    t_ps = lags * msd.dt_fs / 1000.0
    cols = ["t_ps", "msd_A2"] + (["n_ions"] if n_ions else []) + (["msd_err_A2"] if err is not None else [])
    rows = []
    for k, lag in enumerate(lags):
        r = [f"{t_ps[k]:.9g}", f"{msd.msd_A2[lag]:.12g}"]
        if n_ions:
            r.append(str(msd.n_particles))
        if err is not None:
            r.append(f"{err[k]:.6g}")
        rows.append(",".join(r))
    path.write_text(",".join(cols) + "\n" + "\n".join(rows) + "\n")
    return path


def test_msd_table_gives_d_with_a_calibrated_model_error(tmp_path):
    """Gaussian walks: D from the table agrees with the trajectory fit, and the model-only
    error is calibrated over seeded replicas (sd of z within 0.75-1.3)."""
    d_true = 0.01
    z, ratio = [], []
    for r in range(30):
        x = _walk(np.random.default_rng(300 + r), 1000, 12, d_true)
        m = msd_fft(x, 1.0, species="Li", charge_msd=False)
        res = analyze_msd_table(_table(tmp_path / f"m{r}.csv", m), "Li", 600.0)
        dr = res.diffusion_result
        assert dr.source == "msd-table" and "table" in dr.err_method
        z.append((res.d_cm2_s - d_true * A2_FS_TO_CM2_S) / res.d_err_cm2_s)
        ratio.append(res.d_err_cm2_s / diffusion_coefficient(m, n_scan=0).d_err_cm2_s)
    z = np.array(z)
    assert 0.75 <= z.std(ddof=1) <= 1.3, z
    assert abs(z.mean()) < 0.5, z
    # the table error is of the same size as the error with per-particle data
    assert 0.5 < np.median(ratio) < 2.0, ratio


def test_msd_table_errors_column_and_axes(tmp_path):
    rng = np.random.default_rng(5)
    x = _walk(rng, 1500, 16, 0.01)
    m = msd_fft(x, 1.0, charge_msd=False)
    # per-axis columns (anisotropic: z axis twice as fast) -> d_axes_cm2_s
    xa = x * np.array([1.0, 1.0, np.sqrt(2.0)])
    ms = [msd_fft(xa[..., k:k + 1], 1.0, charge_msd=False) for k in range(3)]
    lags = m.sample_lag
    f = tmp_path / "axes.csv"
    f.write_text("t_ps,msd_x_A2,msd_y_A2,msd_z_A2,n_ions\n" + "\n".join(
        f"{lag / 1000:.9g},{ms[0].msd_A2[lag]:.12g},{ms[1].msd_A2[lag]:.12g},"
        f"{ms[2].msd_A2[lag]:.12g},16" for lag in lags))
    res = analyze_msd_table(f, "Li", 600.0)
    ax = res.diffusion["d_axes_cm2_s"]
    err = res.diffusion["d_axes_err_cm2_s"]
    assert abs(ax["z"] - 0.02 * A2_FS_TO_CM2_S) < 4 * err["z"]
    assert abs(ax["x"] - 0.01 * A2_FS_TO_CM2_S) < 4 * err["x"]
    # given errors set the size of the covariance: twice the errors, twice the error of D
    # (when the points scatter less than stated; otherwise sqrt(chi2_red) takes over)
    small = analyze_msd_table(_table(tmp_path / "e1.csv", m, n_ions=False,
                                     err=0.2 * m.msd_A2[lags]), "Li", 600.0, fit_start_ps=0.01)
    big = analyze_msd_table(_table(tmp_path / "e3.csv", m, n_ions=False,
                                   err=0.4 * m.msd_A2[lags]), "Li", 600.0, fit_start_ps=0.01)
    assert big.diffusion["chi2_red"] < small.diffusion["chi2_red"] < 1.0
    assert big.d_err_cm2_s / small.d_err_cm2_s == pytest.approx(2.0, rel=1e-3)
    tiny = analyze_msd_table(_table(tmp_path / "e0.csv", m, n_ions=False,
                                    err=1e-4 * m.msd_A2[lags]), "Li", 600.0, fit_start_ps=0.01)
    assert tiny.diffusion["chi2_red"] > 1.0
    assert tiny.d_err_cm2_s == pytest.approx(tiny.diffusion["d_err_model_cm2_s"]
                                             * np.sqrt(tiny.diffusion["chi2_red"]), rel=1e-6)


def test_msd_table_bad_input_names_the_field(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("time,msd\n1,2\n")
    with pytest.raises(AnalysisError, match="t_ps and msd_A2"):
        read_msd_table(f)
    f.write_text("t_ps,msd_A2\n0.1,1\n0.2,x\n")
    with pytest.raises(AnalysisError, match="msd_A2: non-numeric"):
        read_msd_table(f)
    f.write_text("t_ps,msd_A2\n" + "\n".join(f"{0.1 * k},{k}" for k in range(1, 9)))
    with pytest.raises(AnalysisError, match="n_ions"):
        analyze_msd_table(f, "Li", 600.0)
    with pytest.raises(AnalysisError, match="t_ps: lag times are not multiples"):
        msd_from_table(np.array([1.0, 2.0, 3.5, 4.1, 5.0]), np.arange(1.0, 6.0), n_ions=4)
    with pytest.raises(AnalysisError, match="t_ps: lag times must be"):
        msd_from_table(np.array([1.0, 3.0, 2.0, 4.0]), np.arange(1.0, 5.0), n_ions=4)


def test_cli_analyze_reads_an_msd_table(tmp_path):
    from viglas.cli import main

    m = msd_fft(_walk(np.random.default_rng(9), 1500, 16, 0.01), 1.0, charge_msd=False)
    f = _table(tmp_path / "m.csv", m)
    struct = tmp_path / "s.extxyz"
    import ase.io

    ase.io.write(str(struct), Atoms(["Li"] * 16 + ["Cl"] * 16,
                                    positions=np.random.default_rng(0).uniform(0, L, (32, 3)),
                                    cell=np.eye(3) * L, pbc=True))
    out = tmp_path / "o"
    assert main(["analyze", str(f), "-T", "600", "--structure", str(struct), "-o", str(out),
                 "--no-plot"]) == 0
    d = json.loads((out / "transport.json").read_text())
    assert d["diffusion"]["source"] == "msd-table"
    n = 16 / (L**3 * 1e-24)
    assert d["sigma_mS_cm"] == pytest.approx(nernst_einstein_sigma_mS_cm(d["d_cm2_s"], n, 600.0))
    # bad table options are refused with exit code 2 (one line, no traceback)
    assert main(["analyze", str(f), "-T", "600", "--n-ions", "0", "-o", str(out)]) == 2


def test_sigma_300K_is_nernst_einstein_on_the_extrapolated_d(tmp_path):
    """sigma = c D / T is not Arrhenius when D is: a separate fit of sigma(T) extrapolates
    to a different value; the CLI uses Nernst-Einstein on D(300 K)."""
    from viglas.cli import main

    t = np.array([500.0, 600, 700, 800, 900, 1000, 1100, 1200, 1300])
    d = 1e-3 * np.exp(-0.35 / (KB * t))
    n = 2.0e22
    fit = fit_arrhenius(t, d, 0.05 * d)
    s300, s300_err = sigma_from_d_fit(fit, 300.0, n)
    d300, d300_err = fit.predict(300.0)
    assert s300 == pytest.approx(nernst_einstein_sigma_mS_cm(d300, n, 300.0), rel=1e-12)
    assert s300_err / s300 == pytest.approx(d300_err / d300, rel=1e-12)
    sig = nernst_einstein_sigma_mS_cm(d, n, t)
    separate = fit_arrhenius(t, sig, 0.05 * sig, quantity="sigma").predict(300.0)[0]
    assert separate / s300 > 1.3          # the old way overestimates it
    csv = tmp_path / "d.csv"
    csv.write_text("T_K,D_cm2_s,D_err_cm2_s\n" + "\n".join(f"{a},{b},{0.05 * b}" for a, b in zip(t, d)))
    assert main(["arrhenius", str(csv), "--n-per-cm3", str(n), "-o", str(tmp_path),
                 "--no-plot"]) == 0
    a = json.loads((tmp_path / "arrhenius.json").read_text())
    assert a["sigma_extrapolated_mS_cm"] == pytest.approx(s300, rel=1e-9)
    assert a["sigma_method"] == "nernst-einstein on the extrapolated D"
    # a measured sigma column is fitted on its own and reported separately
    csv.write_text("T_K,D_cm2_s,D_err_cm2_s,sigma_mS_cm,sigma_err_mS_cm\n" + "\n".join(
        f"{a_},{b},{0.05 * b},{2 * s},{0.1 * s}" for a_, b, s in zip(t, d, sig)))
    assert main(["arrhenius", str(csv), "--n-per-cm3", str(n), "-o", str(tmp_path),
                 "--no-plot"]) == 0
    a = json.loads((tmp_path / "arrhenius.json").read_text())
    assert a["sigma_extrapolated_mS_cm"] == pytest.approx(s300, rel=1e-9)
    assert a["sigma_measured_extrapolated_mS_cm"] == pytest.approx(2 * separate, rel=1e-6)


def _h5(path, pos, symbols, dt=10.0):
    a = Atoms(symbols, positions=pos[0], cell=np.eye(3) * L, pbc=True)
    with H5MDWriter(path, a.numbers, a.get_masses(), timestep_fs=dt) as w:
        w.append_frames(np.arange(len(pos)), np.arange(len(pos)) * dt, pos, np.eye(3) * L)
    return path


def test_api_takes_the_cli_option_names(tmp_path):
    rng = np.random.default_rng(3)
    li = _walk(rng, 600, 12, 0.002)
    fw = rng.uniform(0, L, (1, 12, 3)) + rng.normal(0, 0.05, (600, 12, 3))
    f = _h5(tmp_path / "t.h5", np.concatenate([li, fw], axis=1), ["Li"] * 12 + ["Cl"] * 12)
    res = analyze_trajectory(f, species="Li", temperature_K=600, start_ps=2, fit_start_ps=0.1,
                             fit_end_ps=1.5, output=tmp_path / "o", no_plot=True)
    dr = res.diffusion_result
    assert dr.t_start_fs == pytest.approx(100.0) and dr.t_end_fs == pytest.approx(1500.0)
    assert dr.n_frames == [400]                        # 2 ps of 6 ps discarded
    assert (tmp_path / "o" / "transport.json").exists()
    assert not (tmp_path / "o" / "msd.png").exists()
    with pytest.raises(TypeError, match="'start_pss'.*settle_z"):
        analyze_trajectory(f, species="Li", temperature_K=600, start_pss=2)
    # every CLI option of `viglas analyze` is a keyword of the API by the same name
    import typer.main

    from viglas.cli import app

    cmd = typer.main.get_command(app).commands["analyze"]
    api = set(inspect.signature(analyze_trajectory).parameters)
    table_api = set(inspect.signature(analyze_msd_table).parameters)
    special = {"trajectories": "path", "temperature": "temperature_K", "outdir": "output"}
    for p in cmd.params:
        name = special.get(p.name, p.name)
        assert name in api or name in table_api, p.name


def test_no_diffusive_regime_is_reported_as_an_upper_estimate(tmp_path):
    """Ions that only rattle in their cages (no jumps): not a measurement of D."""
    from viglas.cli import main

    rng = np.random.default_rng(2)
    cage = rng.uniform(0, L, (1, 12, 3)) + rng.normal(0, 0.3, (800, 12, 3))
    m = msd_fft(cage, 10.0, charge_msd=False)
    res = diffusion_coefficient(m, n_scan=0)
    assert not res.diffusive and res.d_estimate == "upper"
    assert "no diffusive regime" in res.warning
    assert res.d_err_cm2_s >= 0.8 * abs(res.d_cm2_s)      # no small error bar
    # a diffusive walk is not flagged
    ok = diffusion_coefficient(msd_fft(_walk(rng, 800, 12, 0.01), 10.0, charge_msd=False))
    assert ok.diffusive and ok.d_estimate == "value" and ok.warning == ""
    fw = rng.uniform(0, L, (1, 12, 3)) + rng.normal(0, 0.05, (800, 12, 3))
    f = _h5(tmp_path / "c.h5", np.concatenate([cage, fw], axis=1), ["Li"] * 12 + ["Cl"] * 12)
    out = tmp_path / "o"
    assert main(["analyze", str(f), "-T", "300", "-o", str(out), "--no-plot"]) == 0
    d = json.loads((out / "transport.json").read_text())
    assert d["diffusion"]["diffusive"] is False and d["diffusion"]["d_estimate"] == "upper"


def test_composition_summary_says_which_runs_have_no_diffusive_regime(tmp_path, monkeypatch):
    """Summary: sigma(300 K) is Nernst-Einstein on D(300 K), and a run flagged as
    non-diffusive appears in the messages (which the CLI prints)."""
    from viglas.units import KB_EV_K
    from viglas.workflows.documents import DiffusionDoc, MeltQuenchDoc, StructureDoc
    from viglas.workflows.makers import CompositionSummaryMaker

    monkeypatch.chdir(tmp_path)
    n = 1.0e22
    runs = []
    for t in (500.0, 600.0, 700.0, 800.0):
        d = 2e-3 * np.exp(-0.3 / (KB_EV_K * t))
        warn = "no diffusive regime: only 3.0 effective jumps" if t == 500.0 else ""
        runs.append(DiffusionDoc(formula="LiAlCl2.5O0.75", t_K=t, replica=0, seed=0, species="Li",
                                 trajectory="/x.h5", d_cm2_s=d, d_err_cm2_s=0.05 * d,
                                 sigma_mS_cm=nernst_einstein_sigma_mS_cm(d, n, t),
                                 sigma_err_mS_cm=0.05 * nernst_einstein_sigma_mS_cm(d, n, t),
                                 number_density_per_cm3=n,
                                 transport={"diffusion": {"diffusive": not warn, "warning": warn}}))
    sd = StructureDoc(formula="LiAlCl2.5O0.75", label="LiAlCl2p5O0p75", x=0.75, oxygen_fraction=0.23,
                      alkali={"Li": 1.0}, former={"Al": 1.0}, mobile_species=["Li"], n_atoms=42,
                      counts={"Li": 8}, density_g_cm3=2.2, volume_A3=600.0, method="substitution",
                      seed=0, structure_path="unused")
    glass = MeltQuenchDoc(formula="LiAlCl2.5O0.75", structure_path="unused", seed=0, t_melt_K=1500,
                          t_final_K=500, cool_rate_K_ps=100, pressure_GPa=0.0, density_g_cm3=2.2,
                          volume_A3=600.0)
    maker = CompositionSummaryMaker(structure_metrics=False, plots=False, vft=False)
    doc = CompositionSummaryMaker.make.original(maker, sd, glass, runs,
                                                calculator={"name": "ionic", "params": {}})
    assert any("500 K replica 0: no diffusive regime" in m for m in doc.messages)
    assert doc.sigma_300K_mS_cm == pytest.approx(
        nernst_einstein_sigma_mS_cm(doc.d_300K_cm2_s, n, 300.0), rel=1e-9)
