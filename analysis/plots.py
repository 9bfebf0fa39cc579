"""Plots (matplotlib, Agg backend): each function writes a PNG and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_msd", "plot_arrhenius", "plot_vft", "plot_percolation", "plot_tg",
           "plot_screening", "plot_pareto", "plot_network_percolation",
           "plot_d_series"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _title(fig, title: str | None) -> None:
    """The figure's title: what it shows (composition, T, calculator), inside the PNG."""
    if title:
        fig.suptitle(title, fontsize=9)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path


def plot_msd(msd, diffusion=None, path: str | Path = "msd.png", *,
             title: str | None = None) -> Path:
    """Log–log MSD (Å² vs ps) with the fitted line over the diffusive window shaded;
    inset-free second panel: D against the fit start (scan), with the fit start used
    marked and the reported D ± 1 sd as a band. ``title``: e.g. composition, T and
    calculator, drawn inside the figure."""
    plt = _plt()
    ncol = 2 if diffusion is not None and diffusion.scan_t_start_fs else 1
    fig, axes = plt.subplots(1, ncol, figsize=(5.2 * ncol, 4))
    ax = axes[0] if ncol == 2 else axes
    t = msd.lag_time_fs[1:] / 1000.0
    ax.loglog(t, msd.msd_A2[1:], label=f"{msd.species} MSD")
    if msd.charge_msd_A2 is not None:
        ax.loglog(t, np.maximum(msd.charge_msd_A2[1:], 1e-12), alpha=0.5, label="charge MSD / N")
    if diffusion is not None:
        ts, te = diffusion.t_start_fs / 1000.0, diffusion.t_end_fs / 1000.0
        ax.axvspan(ts, te, color="0.9", label="fit window")
        tt = np.geomspace(max(ts, t[0]), te, 50)
        slope = 2 * msd.dimension * diffusion.d_cm2_s / 0.1  # Å²/fs
        ax.loglog(tt, slope * tt * 1000 + diffusion.intercept_A2, "k--",
                  label=f"D = {diffusion.d_cm2_s:.2e} ± {diffusion.d_err_cm2_s:.1e} cm²/s")
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.legend(fontsize=8)
    if ncol == 2:
        ax2 = axes[1]
        ax2.errorbar(np.array(diffusion.scan_t_start_fs) / 1000, diffusion.scan_d_cm2_s,
                     diffusion.scan_d_err_cm2_s, fmt="o-")
        ax2.axvline(diffusion.t_start_fs / 1000, color="k", ls=":",
                    label="fit start used (start of the diffusive window, log-log slope ≈ 1)")
        ax2.axhspan(diffusion.d_cm2_s - diffusion.d_err_cm2_s,
                    diffusion.d_cm2_s + diffusion.d_err_cm2_s, color="0.9",
                    label="reported D ± 1 sd")
        ax2.set_xscale("log")
        ax2.set_xlabel("fit start (ps)")
        ax2.set_ylabel("D (cm²/s)")
        ax2.set_title("D against the fit start: flat where the motion is diffusive",
                      fontsize=8)
        ax2.legend(fontsize=7)
    _title(fig, title)
    return _save(fig, path)


def _curve(ax, fit, t_lo: float, t_hi: float, t_data_min: float, t_data_max: float,
           style: str, color: str, label: str) -> None:
    """A fit with its 1-sigma band: solid over the fitted temperatures, dashed with a
    lighter band where it is an extrapolation."""
    parts = [(max(t_lo, t_data_min), min(t_hi, t_data_max), style, 0.25, label)]
    if t_lo < t_data_min:
        parts.append((t_lo, t_data_min, "--", 0.1, "extrapolated"))
    if t_hi > t_data_max:
        parts.append((t_data_max, t_hi, "--", 0.1, None))
    for a, b, ls, alpha, lab in parts:
        if b <= a:
            continue
        tt = np.linspace(a, b, 100)
        v, e = (np.asarray(x, float) for x in fit.predict(tt))
        ax.plot(1000 / tt, v, color=color, ls=ls, label=lab)
        ax.fill_between(1000 / tt, np.maximum(v - e, v * 1e-3), v + e, color=color,
                        alpha=alpha, lw=0)


def plot_arrhenius(t_K: Sequence[float], y: Sequence[float], y_err: Sequence[float] | None,
                   fit=None, path: str | Path = "arrhenius.png", t_extrapolate_K: float = 300.0,
                   *, vft=None, title: str | None = None,
                   bounds: Sequence[tuple[float, float, str]] = ()) -> Path:
    """y (log scale) against 1000/T with the fit and its 1-sigma band down to
    ``t_extrapolate_K``: solid over the data, dashed where extrapolated, and a marker
    with its error bar at ``t_extrapolate_K`` (the reported value). ``vft``: also draw
    that fit the same way. ``title``: drawn inside the figure. ``bounds``: points that
    are not in the fit because no run there is diffusive, ``(T_K, y, kind)`` with kind
    ``"upper"`` (drawn as an open down-triangle), ``"lower"`` (up-triangle) or
    ``"mixed"`` (open square)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    t = np.asarray(t_K, float)
    yv = np.asarray(y, float)
    ax.errorbar(1000 / t, yv, yerr=None if y_err is None else np.asarray(y_err, float), fmt="o",
                label="data (diffusive)")
    marker = {"upper": "v", "lower": "^", "mixed": "s"}
    for kind in ("upper", "lower", "mixed"):
        sel = [(bt, by) for bt, by, bk in bounds if bk == kind and by and by > 0]
        if sel:
            bt, by = np.array(sel, float).T
            ax.plot(1000 / bt, by, marker[kind], mfc="none", color="C7",
                    label=f"{kind} estimate, no diffusive regime (not fitted)")
    t_lo = min(t.min(), t_extrapolate_K)
    if fit is not None:
        label = (f"Arrhenius, Ea = {fit.ea_eV:.3f} ± {fit.ea_err_eV:.3f} eV"
                 if hasattr(fit, "ea_eV") else "fit")
        _curve(ax, fit, t_lo, t.max(), t.min(), t.max(), "-", "k", label)
        if t_extrapolate_K < t.min() or t_extrapolate_K > t.max():
            v, e = (float(np.ravel(x)[0]) for x in fit.predict(np.array([t_extrapolate_K])))
            ax.errorbar([1000 / t_extrapolate_K], [v], yerr=[[min(e, v * 0.999)], [e]], fmt="D",
                        color="C3", capsize=3,
                        label=f"{t_extrapolate_K:g} K: {v:.3g} ± {e:.2g} (extrapolated)")
    if vft is not None:
        lo = max(getattr(vft, "t0_K", 0.0) + 1.0, t_lo)
        _curve(ax, vft, lo, t.max(), t.min(), t.max(), "-", "C1",
               f"VFT, T0 = {vft.t0_K:.0f} ± {vft.t0_err_K:.0f} K" if hasattr(vft, "t0_K")
               else "VFT")
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    q = getattr(fit, "quantity", "D")
    ax.set_ylabel("D (cm²/s)" if q == "D" else "σ (mS/cm)")
    ax.legend(fontsize=7)
    _title(fig, title)
    return _save(fig, path)


def plot_vft(t_K, y, y_err, fit, path: str | Path = "vft.png", arrhenius=None, *,
             t_extrapolate_K: float | None = None, title: str | None = None) -> Path:
    """Data with the VFT fit (and optionally the Arrhenius fit) against 1000/T; solid
    over the data, dashed where extrapolated (down to ``t_extrapolate_K``, default
    0.8 x the lowest temperature, never below T0)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    t = np.asarray(t_K, float)
    ax.errorbar(1000 / t, y, yerr=y_err, fmt="o", label="data")
    t_lo = max(fit.t0_K + 1, t.min() * 0.8 if t_extrapolate_K is None else t_extrapolate_K)
    _curve(ax, fit, t_lo, t.max(), t.min(), t.max(), "-", "C1",
           f"VFT T0 = {fit.t0_K:.0f} ± {fit.t0_err_K:.0f} K")
    if arrhenius is not None:
        _curve(ax, arrhenius, t_lo, t.max(), t.min(), t.max(), "-", "k", "Arrhenius")
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.legend(fontsize=7)
    _title(fig, title)
    return _save(fig, path)


def plot_percolation(p, sigma, sigma_err, fit, path: str | Path = "percolation.png", *,
                     title: str | None = None) -> Path:
    """sigma against p with the fitted power law and p_c (68% interval shaded)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    p = np.asarray(p, float)
    ax.errorbar(p, sigma, sigma_err, fmt="o", label="data")
    pp = np.linspace(fit.p_c + 1e-6, p.max(), 200)
    ax.plot(pp, fit.predict(pp), "k-", label=f"p_c = {fit.p_c:.3f} ± {fit.p_c_err:.3f}, "
                                              f"t = {fit.t:.2f} ± {fit.t_err:.2f}")
    ax.axvspan(*fit.p_c_ci68, color="0.85")
    ax.set_yscale("log")
    ax.set_xlabel("oxygen anion fraction p")
    ax.set_ylabel("σ(300 K) (mS/cm)")
    ax.legend(fontsize=8)
    _title(fig, title)
    return _save(fig, path)


def plot_tg(temperature_K, y, fit, path: str | Path = "tg.png", ylabel: str = "V (Å³)", *,
            title: str | None = None) -> Path:
    """Quench property against T with the two-line fit and Tg."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    t = np.asarray(temperature_K, float)
    ax.plot(t, y, ".", label="quench")
    tt = np.linspace(t.min(), t.max(), 200)
    ax.plot(tt, fit.predict(tt), "k-")
    ax.axvline(fit.tg_K, color="C3", ls="--", label=f"Tg = {fit.tg_K:.0f} ± {fit.tg_err_K:.0f} K")
    ax.set_xlabel("T (K)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    _title(fig, title)
    return _save(fig, path)



def plot_screening(ranking: Sequence[dict], outdir: str | Path) -> dict[str, str]:
    """sigma(300 K) against Ea and against Tg (scatter with error bars, one label per
    composition) for a ranking table (rows with ``formula``, ``sigma_300K_mS_cm``,
    ``sigma_300K_err_mS_cm``, ``ea_eV``, ``ea_err_eV``, ``tg_K``, ``tg_err_K``).
    Writes ``sigma300_vs_ea.png`` and ``sigma300_vs_tg.png`` into ``outdir``; returns
    ``{"sigma300_vs_ea": path, "sigma300_vs_tg": path}`` (absolute paths)."""
    plt = _plt()
    outdir = Path(outdir)
    out: dict[str, str] = {}
    for xkey, xerr, xlabel, fname in (("ea_eV", "ea_err_eV", "Ea (eV)", "sigma300_vs_ea.png"),
                                      ("tg_K", "tg_err_K", "Tg (K)", "sigma300_vs_tg.png")):
        rows = [r for r in ranking if r.get(xkey) is not None and r.get("sigma_300K_mS_cm")]
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        if rows:
            x = [r[xkey] for r in rows]
            y = [r["sigma_300K_mS_cm"] for r in rows]
            ax.errorbar(x, y, xerr=[r.get(xerr) or 0 for r in rows],
                        yerr=[r.get("sigma_300K_err_mS_cm") or 0 for r in rows], fmt="o",
                        capsize=3)
            for r, xi, yi in zip(rows, x, y):
                ax.annotate(r["formula"], (xi, yi), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
            ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, f"no composition has both {xkey} and sigma(300 K)",
                    ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("sigma(300 K) (mS/cm)")
        ax.set_title("screening: higher is better")
        path = _save(fig, outdir / fname)
        out[fname.removesuffix(".png")] = str(path.resolve())
    return out


def plot_pareto(rows: Sequence[dict], xkey: str, xerr: str, xlabel: str, front: Sequence[bool],
                path: str | Path, *, ykey: str = "sigma_303K_mS_cm",
                yerr: str = "sigma_303K_err_mS_cm", ylabel: str = "σ(303 K) (mS/cm)",
                title: str | None = None) -> Path:
    """Screening trade-off: ``ykey`` (higher is better, log axis) against ``xkey`` (lower
    is better) with error bars; the Pareto-front rows (``front``) filled and joined."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    pts = [(r, f) for r, f in zip(rows, front) if r.get(xkey) is not None and r.get(ykey)]
    for on, style in ((False, dict(mfc="white", color="0.45")), (True, dict(color="C3"))):
        sel = [r for r, f in pts if f == on]
        if sel:
            ax.errorbar([r[xkey] for r in sel], [r[ykey] for r in sel],
                        xerr=[r.get(xerr) or 0 for r in sel], yerr=[r.get(yerr) or 0 for r in sel],
                        fmt="o", capsize=3, label="Pareto front" if on else "dominated", **style)
    fr = sorted((r[xkey], r[ykey]) for r, f in pts if f)
    if len(fr) > 1:
        ax.step([a for a, _ in fr], [b for _, b in fr], where="post", color="C3", lw=1, alpha=0.6)
    for r, _ in pts:
        ax.annotate(r.get("formula", ""), (r[xkey], r[ykey]), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    if pts:
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel + " (lower is better)")
    ax.set_ylabel(ylabel + " (higher is better)")
    _title(fig, title)
    return _save(fig, path)


def plot_network_percolation(p, largest_fraction, sigma, sigma_err, path: str | Path, *,
                             p_c: float | None = None, p_c_ci68: Sequence[float] | None = None,
                             title: str | None = None) -> Path:
    """Structural against transport percolation along an oxygen sweep: the largest
    former-O-former cluster's share of the network (left axis) and sigma (right, log)
    against p, with the transport threshold p_c (68 % interval shaded) when given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.8, 4.2))
    p = np.asarray(p, float)
    ax.plot(p, largest_fraction, "s-", color="C0", label="largest M–O–M cluster fraction")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("oxygen anion fraction p = O/(O+Cl)")
    ax.set_ylabel("largest-cluster fraction", color="C0")
    ax2 = ax.twinx()
    ax2.errorbar(p, sigma, sigma_err, fmt="o", color="C1", label="σ(300 K)")
    ax2.set_yscale("log")
    ax2.set_ylabel("σ(300 K) (mS/cm)", color="C1")
    if p_c is not None:
        ax.axvline(p_c, color="k", ls="--", lw=1, label=f"transport p_c = {p_c:.3f}")
        if p_c_ci68 is not None:
            ax.axvspan(*p_c_ci68, color="0.9")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center right")
    _title(fig, title)
    return _save(fig, path)


def plot_d_series(series: dict[str, Sequence[dict]], path: str | Path, *,
                  title: str | None = None) -> Path:
    """Several labelled D(T) series (rows with t_K, d_cm2_s, d_err_cm2_s) on Arrhenius
    axes (log D against 1000/T), e.g. one composition at two cell sizes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    for k, (label, rows) in enumerate(series.items()):
        ok = [r for r in rows if r.get("d_cm2_s")]
        ax.errorbar([1000.0 / r["t_K"] for r in ok], [r["d_cm2_s"] for r in ok],
                    [r.get("d_err_cm2_s") or 0 for r in ok], fmt="os^v"[k % 4] + "-",
                    capsize=3, label=label, alpha=0.85)
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel("D (cm²/s)")
    ax.legend(fontsize=8)
    _title(fig, title)
    return _save(fig, path)
