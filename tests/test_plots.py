"""Plots say what they show (issue 14, item 12): a title inside each figure
(composition, T, calculator), extrapolated parts of Arrhenius/VFT curves dashed with
a marker at the report temperature, and a legend for the reference lines of the
D-vs-fit-start panel."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.analysis import plots
from viglas.units import KB_EV_K


@pytest.fixture
def figures(monkeypatch):
    """Keep the figures the plot functions make (instead of closing them)."""
    kept = []

    def save(fig, path):
        kept.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", save)
    return kept


def _labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_arrhenius_plot_marks_extrapolation_and_report_point(figures):
    from viglas.analysis import fit_arrhenius, fit_vft

    t = np.array([500.0, 600.0, 700.0, 800.0, 900.0])
    d = 1e-3 * np.exp(-0.3 / (KB_EV_K * t))
    fit = fit_arrhenius(t, d, 0.05 * d)
    vft = fit_vft(t, d * np.exp(-50.0 / (t - 100.0)), 0.05 * d)
    plots.plot_arrhenius(t, d, 0.05 * d, fit, "a.png", t_extrapolate_K=300.0, vft=vft,
                         title="LiAlCl2.5O0.75: D at 500-900 K; ionic (default)")
    fig = figures[-1]
    assert fig._suptitle.get_text() == "LiAlCl2.5O0.75: D at 500-900 K; ionic (default)"
    ax = fig.axes[0]
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) > 2]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert all(np.max(ln.get_xdata()) <= 1000 / 500 + 1e-9 for ln in solid)  # data range only
    assert any(np.isclose(np.max(ln.get_xdata()), 1000 / 300) for ln in dashed)
    labels = _labels(ax)
    assert any(lab.startswith("300 K:") and "extrapolated" in lab for lab in labels)
    assert "extrapolated" in labels and any(lab.startswith("VFT") for lab in labels)


def test_vft_plot_dashes_the_extrapolated_part(figures):
    from viglas.analysis import fit_vft

    t = np.array([500.0, 600.0, 700.0, 800.0, 900.0])
    y = 1e-3 * np.exp(-800.0 / (t - 200.0))
    plots.plot_vft(t, y, 0.03 * y, fit_vft(t, y, 0.03 * y), "v.png", title="x")
    ax = figures[-1].axes[0]
    assert any(ln.get_linestyle() == "--" and np.max(ln.get_xdata()) > 1000 / 500
               for ln in ax.get_lines())


def test_msd_plot_has_title_and_explains_the_scan_panel(figures, tmp_path):
    from test_trajectory_checksums import _write

    from viglas.analysis import analyze_trajectory

    _write(tmp_path / "t.h5")
    res, msd = analyze_trajectory(str(tmp_path / "t.h5"), species="Li", temperature_K=600,
                                  return_msd=True)
    plots.plot_msd(msd, res.diffusion_result, "m.png", title="Li at 600 K; ionic (default)")
    fig = figures[-1]
    assert "600 K" in fig._suptitle.get_text()
    labels = _labels(fig.axes[1])
    assert any(lab.startswith("fit start used") for lab in labels)
    assert "reported D ± 1 sd" in labels


def test_calculator_label_for_titles():
    from viglas.workflows.makers import calculator_label

    assert calculator_label({"name": "ionic", "params": {"parameters": "default"}}) == \
        "ionic (default)"
    assert calculator_label({"name": "ionic", "params": {}}) == "ionic (default)"
    assert calculator_label({"spec": {"name": "chgnet", "params": {"model": "0.3.0"}},
                             "class": "CHGNetCalculator"}) == "chgnet (0.3.0)"
