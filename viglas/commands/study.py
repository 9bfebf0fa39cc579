"""``viglas study``: run a published study (resumable) and publish it to docs/results/."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``study`` to the CLI."""

    @app.command("study")
    def study(
        name: str = typer.Argument(None, help="Study to run and publish: laco-naco, "
                                   "sweep-oxygen, screen-formers, finite-size "
                                   "(--list shows them with their configs)."),
        runs_dir: Path = typer.Option(Path("runs"), "--runs-dir",
                                      help="Where the run directories live (runs/<config "
                                      "name>); rerunning resumes them."),
        out_dir: Path = typer.Option(Path("docs/results"), "--out",
                                     help="Publication folder; the study goes to "
                                     "OUT/<name>/."),
        jobs: int = typer.Option(None, "--jobs", "-j", min=1,
                                 help="MD jobs at once (default: $VIGLAS_JOBS or the "
                                 "number of CPUs, max 8)."),
        publish_only: bool = typer.Option(False, "--publish-only",
                                          help="Do not run: publish what the run "
                                          "directories hold (they must be complete)."),
        list_: bool = typer.Option(False, "--list", help="List the studies and exit."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Run a study's configs (or resume them), then publish results.json, the CSV
        tables, the plots and the README's generated block to docs/results/NAME/.

        The wall time of every invocation is recorded and published (a study split over
        several invocations reports their sum)."""
        from viglas.workflows.study import STUDIES, publish_study, run_study

        if list_ or name is None:
            for s in STUDIES.values():
                typer.echo(f"{s.name:16s} {s.title}\n{'':16s} configs: {', '.join(s.configs)}")
            if name is None and not list_:
                raise typer.Exit(2)
            return
        if not publish_only:
            results = run_study(name, runs_dir=runs_dir, jobs=jobs, progress=not quiet)
            failed = [r["config"]["name"] for r in results
                      if not r.get("status", {}).get("complete")]
            if failed:
                typer.echo(f"not complete: {', '.join(failed)}; rerun `viglas study {name}` "
                           "to resume (nothing was published)", err=True)
                raise typer.Exit(1)
        dest = publish_study(name, runs_dir=runs_dir, out_dir=out_dir)
        typer.echo(f"published {dest}/ (results.json, summary.csv, tables, plots, README.md)")
