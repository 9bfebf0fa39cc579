"""``viglas fit-potential`` and ``viglas check-potential``: fit the classical ionic
potential to a reference (ML) potential and check that it is usable for MD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

DEFAULT_COMPOSITIONS_TEXT = ("LiAlCl4,LiAlCl2.5O0.75,NaAlCl2.5O0.75,LiGaCl2.5O0.75,"
                             "LiInCl2.5O0.75,LiBCl2.5O0.75,NaAlCl4,"
                             "Li0.5Na0.5Al0.5Ga0.5Cl3O0.5,Li0.5Na0.5In0.5B0.5Cl2.5O0.75,"
                             "LiAl0.5Ga0.5Cl2O")


def _reference_spec(name: str, params_json: str | None) -> dict[str, Any]:
    from viglas.errors import ConfigError

    params: dict[str, Any] = {}
    if params_json:
        try:
            params = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise ConfigError("not valid JSON", field="--reference-params",
                              value=params_json, allowed='e.g. \'{"model": "0.3.0"}\'') from exc
    if name == "chgnet":
        params.setdefault("model", "0.3.0")
    return {"name": name, "params": params}


def register(app: typer.Typer) -> None:
    """Add ``fit-potential`` and ``check-potential`` to the CLI."""

    @app.command("fit-potential")
    def fit_potential(
        reference: str = typer.Option("chgnet", "--reference", "-r",
                                      help="Reference calculator from the registry "
                                           "(chgnet, sevennet, mace-mp, ...)."),
        reference_params: Optional[str] = typer.Option(
            None, "--reference-params",
            help='JSON parameters of the reference, e.g. \'{"model": "0.3.0"}\'.'),
        compositions: str = typer.Option(DEFAULT_COMPOSITIONS_TEXT, "--compositions", "-c",
                                         help="Comma-separated formulas to sample."),
        output: Path = typer.Option(Path("params.yaml"), "--output", "-o",
                                    help="Where to write the fitted parameters (YAML)."),
        report: Optional[Path] = typer.Option(None, "--report",
                                              help="Fitting report JSON (default: next to "
                                                   "the output, *_report.json)."),
        plots_dir: Optional[Path] = typer.Option(None, "--plots-dir",
                                                 help="Folder for the PNG plots "
                                                      "(default: the output's folder)."),
        cache_dir: Optional[Path] = typer.Option(None, "--cache-dir",
                                                 help="Label cache (default "
                                                      "~/.cache/viglas/labels)."),
        n_atoms: int = typer.Option(64, help="Atoms per reference cell (about)."),
        rounds: int = typer.Option(3, help="Max. refit rounds with MD of the fitted "
                                           "potential (stops when the held-out error "
                                           "stops improving)."),
        seed: int = typer.Option(0, help="Seed of every random choice."),
        threads: int = typer.Option(1, help="torch threads for the reference."),
        iter_steps: int = typer.Option(400, help="MD steps (2 fs) per refit-round run."),
        plot_prefix: str = typer.Option("", help="Prefix of the PNG file names."),
        validation_steps: int = typer.Option(1000, help="Steps (2 fs) of the 1000 K MD "
                                                        "with the fitted potential whose "
                                                        "RDF is compared to the reference."),
        three_body: bool = typer.Option(False, "--three-body/--no-three-body",
                                        help="Add the angle term around Al/Ga/In/B "
                                             "(tetrahedral target; strength fitted)."),
        initial: Optional[Path] = typer.Option(
            None, "--initial", help="viglas-ionic/1 YAML with starting values; its "
                                    "'fixed' lists (pairs and three_body) are kept fixed. "
                                    "Overrides --three-body."),
        composition_weights: Optional[str] = typer.Option(
            None, "--composition-weights",
            help="Extra weight of the force/stress residuals of some compositions, e.g. "
                 "'LiBCl2.5O0.75=3' (default 1 for all)."),
    ) -> None:
        """Fit the ionic potential (Buckingham + wall + DSF Coulomb) to a reference ML
        potential by force matching, and write the parameters and a report.

        Reference configurations (relaxed random cells, MD at 1500/1000/600 K, strains,
        rattles) are labelled once and cached; the 1000 K frames are held out for
        validation. Example:

            viglas fit-potential --reference chgnet -c LiAlCl4,LiAlCl2.5O0.75 -o my.yaml
        """
        import sys

        from viglas.potentials.fit import fit_to_reference
        from viglas.potentials.parameters import save_parameters
        from viglas.potentials.validate import plot_parity, validation_report, write_report

        spec = _reference_spec(reference, reference_params)
        comps = [c.strip() for c in compositions.split(",") if c.strip()]
        command = "viglas " + " ".join(sys.argv[1:]) if sys.argv[1:] else "viglas fit-potential"
        from viglas.errors import ConfigError
        from viglas.potentials.fit import FitSettings

        weights: dict[str, float] = {}
        for item in (composition_weights or "").split(","):
            if not item.strip():
                continue
            name, _, val = item.partition("=")
            name = name.strip()
            try:
                weights[name] = float(val)
            except ValueError:
                raise ConfigError("composition weight is not 'FORMULA=number'",
                                  field="composition_weights", value=item,
                                  hint="e.g. --composition-weights 'LiBCl2.5O0.75=3'") from None
            if name not in comps or weights[name] <= 0:
                raise ConfigError("composition weight for a composition that is not fitted, "
                                  "or not > 0", field="composition_weights", value=item,
                                  allowed=", ".join(comps))
        start = None
        if initial is not None:
            from viglas.potentials.parameters import load_parameters

            start = load_parameters(initial)
        res = fit_to_reference(comps, spec, cache_dir=cache_dir, n_atoms=n_atoms, seed=seed,
                               rounds=rounds, num_threads=threads, command=command,
                               iter_steps=iter_steps, three_body=three_body, initial=start,
                               settings=FitSettings(composition_weights=weights),
                               log=typer.echo)
        params = res["parameters"]
        save_parameters(params, output)
        typer.echo(f"parameters written to {output}")
        plots = Path(plots_dir) if plots_dir else Path(output).parent
        rep = validation_report(params, res["valid"], plots_dir=plots, seed=seed,
                                train=res["train"], plot_prefix=plot_prefix,
                                md_steps=validation_steps, md_snapshots=15)
        rep["plots"]["parity_train"] = plot_parity(
            res["train"], params, plots / f"{plot_prefix}parity_train.png",
            "training forces").name
        rep["history"] = res["history"]
        rep["parameters_file"] = Path(output).name
        rep["provenance"] = params.provenance
        report_path = report or Path(output).with_name(Path(output).stem + "_report.json")
        write_report(rep, report_path)
        typer.echo(f"report written to {report_path}")
        for comp, m in rep["held_out"]["compositions"].items():
            typer.echo(f"  {comp:34s} held-out force R2 {m['force_r2']:.3f} "
                       f"RMSE {m['force_rmse_eV_A']:.3f} eV/A")

    @app.command("check-potential")
    def check_potential(
        parameters: Path = typer.Argument(..., help="Ionic parameter YAML to check."),
        compositions: str = typer.Option("LiAlCl4,LiAlCl2.5O0.75,NaAlCl2.5O0.75,"
                                         "LiGaCl2.5O0.75,LiInCl2.5O0.75,LiBCl2.5O0.75",
                                         "--compositions", "-c",
                                         help="Comma-separated formulas."),
        report: Path = typer.Option(..., "--report", help="JSON report to add the "
                                                           "results to."),
        section: str = typer.Option("stability", "--section",
                                    help="Report key the results go under (merged with "
                                         "what is there)."),
        workdir: Path = typer.Option(Path("runs/check-potential"), help="MD run folder."),
        nvt_ps: float = typer.Option(100.0, help="NVT length in ps."),
        t_k: float = typer.Option(1000.0, "--t-K", help="NVT temperature in K."),
        timestep_fs: float = typer.Option(2.0, help="MD time step in fs."),
        melt_quench: bool = typer.Option(True, help="Also run a melt-quench."),
        t_melt_k: float = typer.Option(1500.0, "--t-melt-K",
                                       help="Melt temperature of the melt-quench, K."),
        pressure_gpa: float = typer.Option(0.0, "--pressure-GPa",
                                           help="Pressure of the NPT melt-quench, GPa."),
        n_atoms: int = typer.Option(64, help="Atoms per cell (about)."),
        seed: int = typer.Option(0, help="Seed."),
    ) -> None:
        """Run NVT and melt-quench MD with an ionic parameter set for each composition
        and record whether it stays stable (no NaN, no collapse) and how the formers
        are coordinated."""
        from viglas.errors import ConfigError
        from viglas.potentials.stability import stability_checks
        from viglas.potentials.validate import write_report

        comps = [c.strip() for c in compositions.split(",") if c.strip()]
        if not section.strip():
            raise ConfigError("empty report section", field="--section", value=section,
                              hint="name a key such as 'stability'")
        res = stability_checks(parameters, comps, workdir, n_atoms=n_atoms, nvt_ps=nvt_ps,
                               t_K=t_k, timestep_fs=timestep_fs, melt_quench=melt_quench,
                               mq_t_melt_K=t_melt_k, mq_pressure_GPa=pressure_gpa,
                               seed=seed, log=typer.echo)
        data = json.loads(Path(report).read_text()) if Path(report).exists() else {}
        data.setdefault(section, {}).update(res)
        write_report(data, report)
        typer.echo(f"stability results added to {report} under '{section}'")
