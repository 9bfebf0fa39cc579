"""``viglas analyze`` (D and sigma from trajectories) and ``viglas arrhenius`` (fits)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")


def _provenance(extra: dict) -> dict:
    try:
        from viglas.provenance import provenance

        return provenance(**extra)
    except Exception:  # provenance is best effort; never block a result
        from viglas import __version__

        return {"viglas": __version__, **extra}


def register(app: typer.Typer) -> None:
    """Add ``analyze`` and ``arrhenius`` to the CLI."""

    @app.command("analyze")
    def analyze(
        trajectories: list[Path] = typer.Argument(..., help="Trajectory file(s): viglas H5MD "
                                                  "(.h5), ASE .traj, extxyz, XDATCAR, LAMMPS "
                                                  "dump. Several files = independent replicas "
                                                  "at the same temperature, pooled. Or one MSD "
                                                  "table (.csv: t_ps, msd_A2; optional "
                                                  "msd_err_A2, n_ions, msd_x_A2/msd_y_A2/msd_z_A2)."),
        species: str = typer.Option("Li", "--species", "-s", help="Mobile element, e.g. Li or Na."),
        temperature: float = typer.Option(..., "--temperature", "-T",
                                          help="MD temperature in K (for sigma)."),
        timestep_fs: float = typer.Option(None, "--timestep-fs", help="MD time step in fs. "
                                          "Needed when the file carries no times (XDATCAR, "
                                          "most .traj/dumps): frames are timestep x stride apart."),
        stride: int = typer.Option(1, "--stride", help="MD steps between stored frames "
                                   "(files without times)."),
        every: int = typer.Option(1, "--every", help="Use every n-th stored frame."),
        start_ps: float = typer.Option(None, "--start-ps", help="Discard this much of the "
                                       "start of each trajectory as equilibration (ps)."),
        fit_start_ps: float = typer.Option(None, "--fit-start-ps", help="Override the start "
                                           "of the diffusive fit window (ps)."),
        fit_end_ps: float = typer.Option(None, "--fit-end-ps", help="Override the end of the "
                                         "fit window (ps); default half the trajectory."),
        drift: str = typer.Option("framework", "--drift", help="Remove centre-of-mass drift of "
                                  "the 'framework' (all other atoms), the whole 'system', or 'none'."),
        charge: float = typer.Option(1.0, "--charge", help="Ionic charge of the species (e)."),
        fmt: str = typer.Option(None, "--format", help="h5md, traj, extxyz, xdatcar, lammps-dump "
                                "(default: from the file name)."),
        structure: Path = typer.Option(None, "--structure", help="MSD table only: structure "
                                       "giving the number density of the species (for sigma)."),
        n_ions: int = typer.Option(None, "--n-ions", help="MSD table only: ions averaged in "
                                   "the MSD (overrides the n_ions column)."),
        total_ps: float = typer.Option(None, "--total-ps", help="MSD table only: length of "
                                       "the trajectory behind the table (default: last lag)."),
        outdir: Path = typer.Option(Path("analysis"), "-o", "--output",
                                    help="Directory for transport.json and the MSD plot."),
        no_plot: bool = typer.Option(False, "--no-plot", help="Do not write the PNG plot."),
    ) -> None:
        """Diffusion coefficient D (with a calibrated 1-sigma error) and conductivity.

        Reads the trajectories, removes centre-of-mass drift, computes the MSD of the
        species over all time origins, fits D by generalised least squares in the
        diffusive window (chosen automatically, after displacement correlations such
        as back-hopping have decayed), and gives the Nernst-Einstein conductivity, the
        conductivity from the charge MSD and the Haven ratio. A .csv MSD table gives D
        with a model-only error (no per-particle data; a lower-information estimate).
        Writes DIR/transport.json (fields d_cm2_s, d_err_cm2_s, sigma_mS_cm, ...)
        and DIR/msd.png. Python: viglas.analysis.analyze_trajectory takes the same
        options by the same names (start_ps, fit_start_ps, output, no_plot, ...).
        """
        from viglas.analysis.conductivity import (analyze_msd_table, analyze_trajectory,
                                                  write_transport)
        from viglas.errors import check_writable_dir

        check_writable_dir(outdir, field="--output")  # before computing: nothing is lost
        from viglas.analysis.io import is_msd_table
        from viglas.errors import AnalysisError

        paths = [str(p) for p in trajectories]
        table = len(paths) == 1 and is_msd_table(paths[0])
        if not table and any(is_msd_table(p) for p in paths):
            raise AnalysisError("an MSD table is analysed on its own", field="trajectories",
                                value=paths, allowed="one .csv table, or trajectory files")
        if not table and (structure is not None or n_ions is not None or total_ps is not None):
            raise AnalysisError("--structure, --n-ions and --total-ps are for MSD tables",
                                field="structure/n_ions/total_ps", value=paths[0],
                                hint="a trajectory carries its own cell and ions")
        if table:
            res, msd = analyze_msd_table(paths[0], species, temperature, structure=structure,
                                         n_ions=n_ions, total_ps=total_ps, charge=charge,
                                         fit_start_ps=fit_start_ps, fit_end_ps=fit_end_ps,
                                         return_msd=True)
        else:
            res, msd = analyze_trajectory(
                paths, species, temperature, fmt=fmt, timestep_fs=timestep_fs, stride=stride,
                every=every, start_ps=start_ps, drift=drift, charge=charge,
                fit_start_ps=fit_start_ps, fit_end_ps=fit_end_ps, return_msd=True)
        dres = res.diffusion_result
        write_transport(res, msd, outdir, plot=not no_plot,
                        extra={"provenance": _provenance({"command": "viglas analyze",
                                                          "trajectories": paths})})
        src = "MSD table" if table else f"{res.n_replicas} replica(s)"
        typer.echo(f"{species} at {temperature:g} K: {res.n_ions} ions x {src}, fit "
                   f"{dres.t_start_fs / 1000:.3g}-{dres.t_end_fs / 1000:.3g} ps")
        if not dres.diffusive:
            typer.secho(f"WARNING: {dres.warning}", fg=typer.colors.RED, bold=True, err=True)
            rel = "<~" if dres.d_estimate == "upper" else ">~"
            typer.echo(f"D     {rel} {res.d_cm2_s:.2g} cm^2/s  ({dres.d_estimate} estimate, "
                       f"uncertain by a factor; effective jumps {dres.n_eff:.1f})")
        else:
            typer.echo(f"D     = {res.d_cm2_s:.4g} ± {res.d_err_cm2_s:.2g} cm^2/s  "
                       f"(effective jumps {dres.n_eff:.0f}; He 2018 RSD floor "
                       f"{dres.rsd_he2018:.0%})")
        if table:
            typer.echo("      error from the covariance model only (no per-particle data): "
                       "a lower-information estimate")
        if res.sigma_mS_cm is not None:
            typer.echo(f"sigma = {res.sigma_mS_cm:.4g} ± {res.sigma_err_mS_cm:.2g} mS/cm "
                       "(Nernst-Einstein, Haven ratio 1)"
                       + ("" if dres.diffusive else f" [{dres.d_estimate} estimate]"))
        if res.sigma_charge_mS_cm is not None:
            typer.echo(f"sigma = {res.sigma_charge_mS_cm:.4g} ± {res.sigma_charge_err_mS_cm:.2g} "
                       "mS/cm (charge MSD)"
                       + (f"; Haven ratio {res.haven_ratio:.2f} ± {res.haven_ratio_err:.2f}"
                          if res.haven_ratio is not None else ""))
        typer.echo(f"wrote {outdir / 'transport.json'}")

    @app.command("arrhenius")
    def arrhenius(
        table: Path = typer.Argument(..., help="CSV with columns T_K, D_cm2_s, D_err_cm2_s "
                                     "(one row per temperature); optional measured "
                                     "sigma_mS_cm, sigma_err_mS_cm (e.g. from the charge MSD)."),
        structure: Path = typer.Option(None, "--structure", help="Structure (CIF/POSCAR/extxyz/"
                                       "H5MD) giving the number density of the species, to "
                                       "convert D to sigma."),
        n_per_cm3: float = typer.Option(None, "--n-per-cm3", help="Number density of the "
                                        "mobile ion (cm^-3), instead of --structure."),
        species: str = typer.Option("Li", "--species", "-s", help="Mobile element."),
        charge: float = typer.Option(1.0, "--charge", help="Ionic charge (e)."),
        haven: float = typer.Option(1.0, "--haven", help="Haven ratio for Nernst-Einstein."),
        t_extrapolate: float = typer.Option(300.0, "--at", help="Temperature (K) to extrapolate to."),
        vft: bool = typer.Option(False, "--vft", help="Also fit VFT and compare by AIC/BIC "
                                 "(needs >= 4 temperatures)."),
        outdir: Path = typer.Option(Path("."), "-o", "--output", help="Directory for "
                                    "arrhenius.json and arrhenius.png."),
        no_plot: bool = typer.Option(False, "--no-plot", help="Do not write the PNG plots."),
        formula: str = typer.Option(None, "--formula", help="Composition to fit when the "
                                    "table (a sweep's temperatures.csv) holds several."),
    ) -> None:
        """Arrhenius fit of D(T): Ea ± err, D at 300 K with its band, and sigma at 300 K.

        The fit is weighted by the D errors; the band comes from the parameter
        covariance. sigma(T) is Nernst-Einstein on the fitted D(T) (number density
        from --structure or --n-per-cm3), so sigma(300 K) is consistent with
        D(300 K); only measured sigma columns in the table are fitted on their own.
        """
        import csv

        import numpy as np

        from viglas.analysis import (compare_models, fit_arrhenius, fit_vft,
                                     nernst_einstein_sigma_mS_cm, plot_arrhenius, plot_vft)
        from viglas.analysis.arrhenius import sigma_from_d_fit
        from viglas.analysis.conductivity import number_density_per_cm3, species_in_structure
        from viglas.errors import AnalysisError

        from viglas.errors import check_writable_dir

        if not table.exists():
            raise AnalysisError("table not found", field="table", value=str(table))
        check_writable_dir(outdir, field="--output")  # before computing: nothing is lost
        with open(table, newline="") as fh:
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()}
                    for r in csv.DictReader(fh)]
        if rows and "formula" in rows[0]:  # a run's temperatures.csv: one composition
            formulas = sorted({r["formula"] for r in rows})
            if formula is None and len(formulas) > 1:
                raise AnalysisError("the table holds several compositions", field="--formula",
                                    value=", ".join(formulas),
                                    allowed="one of them, e.g. --formula " + formulas[0])
            if formula is not None:
                if formula not in formulas:
                    raise AnalysisError("composition not in the table", field="--formula",
                                        value=formula, allowed=", ".join(formulas))
                rows = [r for r in rows if r["formula"] == formula]
        alias = {"t_K": "T_K", "d_cm2_s": "D_cm2_s", "d_err_cm2_s": "D_err_cm2_s"}
        rows = [{alias.get(k, k): v for k, v in r.items()} for r in rows]
        bounds = [r for r in rows if r.get("d_estimate") not in (None, "", "value")]
        if bounds:  # a run's temperatures.csv marks the points without a diffusive regime
            typer.echo("left out (no diffusive regime, D is only a bound): " + ", ".join(
                f"{r.get('T_K')} K ({r['d_estimate']} estimate)" for r in bounds), err=True)
            rows = [r for r in rows if r not in bounds]
            if len(rows) < 2:
                raise AnalysisError(
                    f"{len(rows)} temperature(s) with a diffusive regime, need >= 2; the "
                    f"other {len(bounds)} are only bounds on D", field="table",
                    value=str(table), allowed="longer runs (production.duration_ps or "
                    "adaptive) or higher temperatures, then `viglas run` again")
        need = ("T_K", "D_cm2_s", "D_err_cm2_s")
        if not rows or any(c not in rows[0] for c in need):
            raise AnalysisError("table lacks required columns", field="table",
                                value=list(rows[0].keys()) if rows else [],
                                allowed=", ".join(need))

        def col(name):
            try:
                return np.array([float(r[name]) for r in rows])
            except ValueError as exc:
                raise AnalysisError(f"non-numeric entry ({exc})", field=name,
                                    value=str(table)) from exc

        t, d, e = col("T_K"), col("D_cm2_s"), col("D_err_cm2_s")
        measured = "sigma_mS_cm" in rows[0] and all(r["sigma_mS_cm"] for r in rows)
        if structure is not None and n_per_cm3 is not None:
            raise AnalysisError("give the number density once", field="n_per_cm3",
                                value=n_per_cm3, allowed="--structure or --n-per-cm3")
        fit = fit_arrhenius(t, d, e, quantity="D")
        out = {"fit": fit.to_dict(), "t_K": t.tolist(), "d_cm2_s": d.tolist(),
               "d_err_cm2_s": e.tolist(), "ea_eV": fit.ea_eV, "ea_err_eV": fit.ea_err_eV}
        dx, dx_err = fit.predict(t_extrapolate)
        out.update({"t_extrapolate_K": t_extrapolate, "d_extrapolated_cm2_s": dx,
                    "d_extrapolated_err_cm2_s": dx_err})
        typer.echo(f"Ea = {fit.ea_eV:.3f} ± {fit.ea_err_eV:.3f} eV  ({fit.n_points} temperatures "
                   f"{fit.t_min_K:g}-{fit.t_max_K:g} K, chi2_red {fit.chi2_red:.2f})")
        typer.echo(f"D({t_extrapolate:g} K) = {dx:.3g} ± {dx_err:.2g} cm^2/s")
        n = n_per_cm3
        if structure is not None:  # the same reader and check as analyze_msd_table
            n_ions, volume_A3 = species_in_structure(structure, species)
            n = number_density_per_cm3(n_ions, volume_A3)
        if n is not None:
            sig = nernst_einstein_sigma_mS_cm(d, n, t, charge, haven)
            sig_err = nernst_einstein_sigma_mS_cm(e, n, t, charge, haven)
            sx, sx_err = sigma_from_d_fit(fit, t_extrapolate, n, charge=charge, haven=haven)
            out.update({"n_per_cm3": n, "haven_ratio": haven,
                        "sigma_mS_cm": np.asarray(sig).tolist(),
                        "sigma_err_mS_cm": np.asarray(sig_err).tolist(),
                        "sigma_extrapolated_mS_cm": sx, "sigma_extrapolated_err_mS_cm": sx_err,
                        "sigma_method": "nernst-einstein on the extrapolated D"})
            typer.echo(f"sigma({t_extrapolate:g} K) = {sx:.3g} ± {sx_err:.2g} mS/cm "
                       f"(Nernst-Einstein on D({t_extrapolate:g} K), n = {n:.3g} cm^-3, "
                       f"Haven ratio {haven:g})")
        if measured:
            sm = col("sigma_mS_cm")
            se = col("sigma_err_mS_cm") if "sigma_err_mS_cm" in rows[0] else None
            sfit = fit_arrhenius(t, sm, se, quantity="sigma")
            mx, mx_err = sfit.predict(t_extrapolate)
            out.update({"sigma_measured_fit": sfit.to_dict(),
                        "sigma_measured_extrapolated_mS_cm": mx,
                        "sigma_measured_extrapolated_err_mS_cm": mx_err})
            if n is None:
                out.update({"sigma_extrapolated_mS_cm": mx, "sigma_extrapolated_err_mS_cm": mx_err,
                            "sigma_method": "arrhenius fit of the measured sigma"})
            typer.echo(f"sigma({t_extrapolate:g} K) = {mx:.3g} ± {mx_err:.2g} mS/cm "
                       "(Arrhenius fit of the measured sigma column)")
        if vft:
            v = fit_vft(t, d, e, quantity="D")
            out["vft"] = v.to_dict()
            out["model_comparison"] = compare_models(fit, v)
            typer.echo(f"VFT: T0 = {v.t0_K:.0f} ± {v.t0_err_K:.0f} K, B = {v.b_K:.0f} ± "
                       f"{v.b_err_K:.0f} K; preferred by AIC: "
                       f"{out['model_comparison']['preferred_aic']}")
            if not no_plot:
                plot_vft(t, d, e, v, outdir / "vft.png", arrhenius=fit)
        out["provenance"] = _provenance({"command": "viglas arrhenius", "table": str(table)})
        _write_json(outdir / "arrhenius.json", out)
        if not no_plot:
            plot_arrhenius(t, d, e, fit, outdir / "arrhenius.png", t_extrapolate_K=t_extrapolate)
        typer.echo(f"wrote {outdir / 'arrhenius.json'}")
