"""``viglas export``: continuum-model parameters (JSON, YAML, CSV, PyBaMM) from results.json."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``export`` to the CLI."""

    @app.command("export")
    def export(
        results: Path = typer.Argument(..., help="results.json written by 'viglas run' "
                                       "(or its run directory)."),
        format: str = typer.Option("json", "--format", "-f",
                                   help="json | yaml | csv | pybamm. csv writes parameters.csv "
                                   "(every value, exact) plus grid_<label>.csv tables of "
                                   "sigma(T), D(T); pybamm writes a Python module with "
                                   "electrolyte_conductivity(c_e, T) / "
                                   "electrolyte_diffusivity(c_e, T)."),
        out: Path = typer.Option(None, "--out", "-o",
                                 help="Output file (csv: a folder, or NAME.csv with grid files "
                                 "beside it; pybamm: NAME.py). Default: continuum.<ext> next "
                                 "to RESULTS."),
        composition: str = typer.Option(None, "--composition", "-c",
                                        help="Export only this formula or label (pybamm needs "
                                        "one when the run has several)."),
        grid: str = typer.Option(None, "--grid",
                                 help="Temperatures of the CSV grid in K: 'START:STOP:STEP' "
                                 "(inclusive) or a comma list. Default 233.15:373.15:5."),
        strict: bool = typer.Option(False, "--strict",
                                    help="Fail instead of warning when 298.15 K lies outside "
                                    "the fitted temperature range, or when the run is "
                                    "unfinished (failed or missing MD runs)."),
    ) -> None:
        """Export sigma(T), D(T) fits and derived numbers for continuum battery models.

        Writes one documented, versioned parameter set per composition (schema
        viglas-continuum/1, shipped as viglas/analysis/data/continuum-schema.json):
        Arrhenius/VFT parameters with covariance and fitted T range, sigma and D at
        298.15 K with one-sigma bands, Ea, Tg, Haven ratio, transference number 1
        (assumed: single-ion conductor), percolation p_c and t for sweeps, provenance.
        Values outside the fitted range are flagged and warned about.

        Example: viglas export runs/quick/results.json -f pybamm -o laco_pybamm.py
        """
        import warnings

        from viglas.analysis.export import (ExtrapolationWarning, IncompleteResultsWarning,
                                            export_parameters)
        from viglas.errors import ExportError

        fmt = format.lower()
        ext = {"json": "json", "yaml": "yaml", "yml": "yaml", "csv": "csv", "pybamm": "py"}
        if fmt not in ext:
            raise ExportError("unknown export format", field="--format", value=format,
                              allowed="json, yaml, csv, pybamm")
        base = results if results.is_dir() else results.parent
        target = out or base / (f"continuum.{ext[fmt]}" if fmt != "csv" else "continuum")
        from viglas.errors import check_writable_dir

        if fmt == "csv" and not target.suffix:
            check_writable_dir(target, field="--out")
        else:
            check_writable_dir(target.parent if str(target.parent) else Path("."),
                               field="--out")
        grid_t = _parse_grid(grid) if grid else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("error" if strict else "always", ExtrapolationWarning)
            warnings.simplefilter("error" if strict else "always", IncompleteResultsWarning)
            try:
                exp = export_parameters(results, format=fmt, out=target,
                                        composition=composition, grid_t_K=grid_t)
            except IncompleteResultsWarning as exc:
                raise ExportError(str(exc), field="--strict", value=True,
                                  allowed="results of a finished run; rerun 'viglas run' to "
                                  "finish it, or drop --strict to export with complete: "
                                  "false") from None
            except ExtrapolationWarning as exc:
                raise ExportError(str(exc), field="--strict", value=True,
                                  allowed="fits whose range includes 298.15 K; drop --strict "
                                  "to export with the extrapolation flagged") from None
        for w in caught:
            typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        for c in exp["compositions"]:
            a = c["at_t_ref"]
            err = a["sigma_err_mS_cm"]
            band = f" +- {err:.3g}" if err is not None else ""
            typer.echo(f"{c['formula']}: sigma(298.15 K) = {a['sigma_mS_cm']:.4g}{band} mS/cm "
                       f"({a['sigma_model']}{'' if a['sigma_in_fitted_range'] else ', extrapolated'})"
                       f", D = {a['d_cm2_s']:.4g} cm2/s")
        if not exp.get("complete", True):
            typer.secho("INCOMPLETE: the export is marked complete: false ("
                        + "; ".join(exp.get("incomplete_reasons") or []) + ")",
                        fg=typer.colors.YELLOW, err=True)
        typer.echo(f"wrote {fmt} export to {target}")


def _parse_grid(text: str) -> list[float]:
    """'START:STOP:STEP' (inclusive) or 'T1,T2,...' in K -> list of floats."""
    import math

    from viglas.errors import ExportError

    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            n = int(math.floor((stop - start) / step + 1e-9))
            return [round(start + k * step, 10) for k in range(n + 1)]
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ExportError("cannot read the grid", field="--grid", value=text,
                          allowed="'START:STOP:STEP' in K with STEP > 0, or 'T1,T2,...'") from None
