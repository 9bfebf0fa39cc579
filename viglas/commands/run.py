"""``viglas run`` (the whole pipeline on this machine) and ``viglas results``."""

from __future__ import annotations

from pathlib import Path

import typer


def _default_workdir(config_path: Path) -> Path:
    return Path("runs") / config_path.stem


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``results`` to the CLI."""

    @app.command("run")
    def run(
        config: Path = typer.Argument(..., help="YAML config, e.g. configs/quick.yaml "
                                      "(see configs/ for commented presets)."),
        workdir: Path = typer.Option(None, "--workdir", "-w",
                                     help="Run directory (default: runs/<config name>). "
                                     "Rerunning with the same directory resumes: finished "
                                     "jobs are skipped and MD continues from checkpoints."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
        jobs: int = typer.Option(None, "--jobs", "-j", min=1,
                                 help="Jobs run at once (independent MD runs in parallel "
                                 "processes). Default: $VIGLAS_JOBS or the number of CPUs "
                                 "(max 8). Results do not depend on it."),
        check: bool = typer.Option(False, "--check", help="Only validate the config and "
                                   "print what would run."),
        allow_import: bool = typer.Option(
            False, "--allow-import",
            help="Allow a 'package.module:factory' calculator in CONFIG. Such a config "
            "names code that viglas imports and runs: use only for configs you trust."),
    ) -> None:
        """Run the whole pipeline for CONFIG on this machine.

        Glass model -> melt-quench -> MD at each temperature and replica -> diffusion
        and conductivity -> Arrhenius/VFT fits and sigma(300 K) with its error band
        (plus percolation or a ranking for sweeps and screenings). Writes
        results.json, CSV tables, plots and report.md into the run directory.
        """
        from viglas.config import load_config

        from viglas.calculators import check_import_allowed

        cfg = load_config(config)
        check_import_allowed(cfg.calculator.name, allow_import)
        wd = workdir or _default_workdir(config)
        if check:
            from viglas.structures import check_memory, estimate_memory_bytes

            check_memory(cfg.structure.n_atoms, field="structure.n_atoms")
            comps = cfg.compositions()
            p = cfg.production
            n_runs = len(comps) * len(p.temperatures_K) * p.replicas
            typer.echo(f"config OK: {cfg.kind} '{cfg.name}', {len(comps)} composition(s): "
                       f"{', '.join(c.formula for c in comps)}")
            typer.echo(f"  calculator {cfg.calculator.name}, {cfg.structure.n_atoms} atoms, "
                       f"T = {', '.join(f'{t:g}' for t in p.temperatures_K)} K x {p.replicas} "
                       f"replica(s) = {n_runs} MD runs of {p.duration_ps:g} ps "
                       f"(+{p.equilibration_ps:g} ps equilibration); workdir {wd}")
            typer.echo(f"  memory about {estimate_memory_bytes(cfg.structure.n_atoms) / 1e9:.1f}"
                       " GB per MD job (ionic potential)")
            return
        from viglas.workflows.run import run_local

        res = run_local(cfg, wd, progress=not quiet, workers=jobs, allow_import=allow_import)
        if not quiet:
            _print_summary(res, Path(wd))
        if res.get("status", {}).get("failed"):
            raise typer.Exit(1)

    @app.command("results")
    def results(
        workdir: Path = typer.Argument(..., help="Run directory of 'viglas run' (finished "
                                       "or partial), or the flow id printed by "
                                       "'viglas submit'."),
        as_json: bool = typer.Option(False, "--json", help="Print results.json instead of "
                                     "tables."),
        project: str = typer.Option(None, "--project", "-p", help="jobflow-remote project "
                                    "of a submitted flow (default: jobflow-remote's "
                                    "default project)."),
    ) -> None:
        """Print the summary table of a finished or partial run (local directory or a
        flow submitted with 'viglas submit')."""
        import json

        from viglas.errors import ConfigError
        from viglas.workflows.results import collect_results

        if project is not None or not workdir.exists():
            if workdir.suffix or "/" in str(workdir):
                raise ConfigError("no such run directory", field="workdir",
                                  value=str(workdir),
                                  allowed="a 'viglas run' directory or a submitted flow id")
            from viglas.workflows.hpc_status import remote_results

            res = remote_results(project, str(workdir))
        elif (workdir / "jobstore.json").exists() or not (workdir / "results.json").is_file():
            res = collect_results(workdir)
        else:  # a copied results directory without the job store
            res = json.loads((workdir / "results.json").read_text())
        if as_json:
            typer.echo(json.dumps(res, indent=2))
            return
        local = workdir.exists()
        _print_summary(res, Path(workdir), written=False, running=local and _running(workdir))


def _f(v, e=None, spec=".3g") -> str:
    if v is None:
        return "-"
    s = format(v, spec)
    return s + (" ± " + format(e, spec) if e is not None else "")


def _running(workdir: Path) -> bool:
    """True while a 'viglas run' holds the run directory's lock."""
    import fcntl

    from viglas.workflows.run import LOCK_FILE

    lock = workdir / LOCK_FILE
    if not lock.exists():
        return False
    try:
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _print_summary(res: dict, workdir: Path, written: bool = True,
                   running: bool = False) -> None:
    """Rich tables: per temperature D/sigma, per composition Ea and sigma(300 K), ranking.

    ``written``: the output files were just written (by 'viglas run'); otherwise only
    the files that exist are named, as left by the last run. ``running``: a run is in
    progress in the directory (the tables show the jobs finished so far)."""
    from rich.console import Console
    from rich.table import Table

    con = Console()
    if not con.is_terminal:  # pipes and files: do not squeeze the tables into 80 columns
        con = Console(width=120)
    st = res.get("status", {})
    state = "complete" if st.get("complete") else "PARTIAL"
    con.print(f"[bold]{res['config']['name']}[/bold] ({res['config']['kind']}): {state}, "
              f"{st.get('jobs_finished')} of {st.get('jobs_total') or '?'} jobs finished; "
              f"calculator {res['config']['calculator']['name']}")
    t = Table(title="D and sigma per temperature (replica mean ± 1 sd of the mean)")
    for col in ("composition", "T (K)", "replicas", "D (cm²/s)", "sigma (mS/cm)"):
        t.add_column(col, justify="right" if col != "composition" else "left")
    mark = {"upper": "≤ ", "lower": "≥ ", "mixed": "? "}
    n_bounds = 0
    for c in res["compositions"]:
        for p in c["temperatures"]:
            b = mark.get(p.get("d_estimate") or "value", "")
            n_bounds += bool(b)
            t.add_row(c["formula"], f"{p['t_K']:g}", str(p["n_replicas"]),
                      b + _f(p["d_cm2_s"], p["d_err_cm2_s"]),
                      b + _f(p["sigma_mS_cm"], p["sigma_err_mS_cm"]))
    if n_bounds:
        t.caption = ("≤ / ≥: a replica there has no diffusive regime, so the mean is an "
                     "upper / lower estimate and is left out of the fits")
    con.print(t)
    s = Table(title="Per composition (300 K values extrapolated from the Arrhenius fit, ± 1 sd)")
    for col in ("composition", "p = O/(O+Cl)", "Ea (eV)", "sigma 300 K (mS/cm)",
                "D 300 K (cm²/s)", "sigma 303 K (mS/cm)", "Tg (K)", "status"):
        s.add_column(col, justify="right" if col != "composition" else "left")
    for c in res["compositions"]:
        s303 = _f(c.get("sigma_303K_mS_cm"), c.get("sigma_303K_err_mS_cm"))
        if c.get("sigma_303K_source"):
            s303 += f" ({c['sigma_303K_source'][:6]}.)" if c["sigma_303K_source"] != \
                "simulated" else " (sim.)"
        s.add_row(c["formula"], f"{c['oxygen_fraction']:.3f}", _f(c["ea_eV"], c["ea_err_eV"]),
                  _f(c["sigma_300K_mS_cm"], c["sigma_300K_err_mS_cm"]),
                  _f(c["d_300K_cm2_s"], c["d_300K_err_cm2_s"]), s303,
                  _f(c["tg_K"], c["tg_err_K"], ".0f"),
                  "done" if c.get("complete") else "partial")
    con.print(s)
    for c in res["compositions"]:
        for m in c.get("messages") or []:
            con.print(f"[dim]{c['formula']}: {m}[/dim]")
    perc = res.get("percolation")
    if perc:
        if "error" in perc:
            con.print(f"percolation: [yellow]{perc['error']}[/yellow]")
        else:
            con.print(f"percolation: p_c = {_f(perc.get('p_c'), perc.get('p_c_err'))}, "
                      f"t = {_f(perc.get('t'), perc.get('t_err'))}")
    if res.get("ranking") and res["config"]["kind"] != "composition":
        r = Table(title="Ranking by sigma(300 K)")
        for col in ("rank", "composition", "sigma 300 K (mS/cm)", "Ea (eV)", "Tg (K)"):
            r.add_column(col)
        for i, row in enumerate(res["ranking"], 1):
            r.add_row(str(row.get("rank", i)), row["formula"],
                      _f(row.get("sigma_300K_mS_cm"), row.get("sigma_300K_err_mS_cm")),
                      _f(row.get("ea_eV"), row.get("ea_err_eV")), _f(row.get("tg_K"), None, ".0f"))
        con.print(r)
    for f in st.get("failed", []):
        con.print(f"[red]failed[/red] {f['uuid'][:8]}: {f['error']}")
    if running:
        con.print("[yellow]a 'viglas run' is in progress in this directory: these are the jobs "
                  "finished so far[/yellow]")
    files = [workdir / "results.json", workdir / "report.md", workdir / "plots"]
    if written:
        con.print("files: " + ", ".join(str(f) for f in files))
    elif workdir.is_dir():  # (a submitted flow id has no local files)
        have = [str(f) for f in files if f.exists()]
        con.print("nothing written by this command; " + (
            "files of the last 'viglas run' (updated when a run ends): " + ", ".join(have)
            if have else "no output files yet"))
