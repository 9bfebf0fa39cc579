"""Cluster commands: ``viglas submit`` and the ``viglas hpc`` group.

They drive jobflow-remote (``pip install 'viglas[hpc]'``): a project file describes
the workers (Slurm, PBS, local shell) and the MongoDB store; ``jf runner start``
runs a daemon that submits each job of a flow when its inputs are ready.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

hpc_app = typer.Typer(
    name="hpc",
    help=(
        "Run viglas on a cluster with jobflow-remote (Slurm, PBS or a local shell).\n\n"
        "1) 'viglas hpc init' writes a commented project file (workers, MongoDB store); "
        "2) 'jf admin reset -y' and 'jf runner start --single'; "
        "3) 'viglas submit CONFIG --worker slurm'; "
        "4) 'viglas hpc status FLOW_ID' and 'viglas hpc results FLOW_ID'."
    ),
    no_args_is_help=True,
)

_PROJECT_HELP = ("jobflow-remote project name (default: $JFREMOTE_PROJECT, or the only "
                 "project in ~/.jfremote)")


def _print_submission(sub) -> None:
    from rich.console import Console

    con = Console()
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(sub.kinds.items()))
    con.print(f"[bold]submitted[/bold] flow '{sub.name}' ({sub.n_jobs} jobs: {kinds}) "
              f"to worker '{sub.worker}' of project '{sub.project}'")
    con.print(f"flow id: [bold]{sub.flow_id}[/bold]")
    con.print("follow it with:")
    for line in sub.follow_commands():
        con.print(f"  {line}", markup=False, highlight=False)


def submit(
    config: Path = typer.Argument(..., help="viglas YAML config (same file as for 'viglas run')",
                                  exists=True, dir_okay=False, readable=True),
    worker: str = typer.Option(..., "--worker", "-w",
                               help="worker of the project: slurm, pbs, local, ..."),
    project: Optional[str] = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    priority: int = typer.Option(0, help="jobflow-remote priority (higher runs first)"),
    md_segment: Optional[float] = typer.Option(
        None, "--md-segment-s",
        help="MD jobs stop at a checkpoint after this many seconds and continue in a new "
             "allocation (default: from the project, ~90% of the MD time limit)"),
    json_out: bool = typer.Option(False, "--json", help="print the submission as JSON"),
    allow_import: bool = typer.Option(
        False, "--allow-import",
        help="allow a 'package.module:factory' calculator in CONFIG: the config then names "
             "code that the jobs import and run; use only for configs you trust"),
) -> None:
    """Submit the flow of CONFIG to a cluster worker (jobflow-remote).

    The flow is the same as 'viglas run CONFIG'. MD jobs and analysis jobs get the
    resources set for them in the project's 'metadata.viglas' section (see
    'viglas hpc init'); long MD runs continue from checkpoints in new allocations.
    Prints the flow id and the commands to follow it. Jobs start once a runner is
    active: 'jf runner start --single'.
    """
    from viglas.workflows.hpc_submit import submit_config

    sub = submit_config(config, worker=worker, project=project, priority=priority,
                        md_segment_s=md_segment, allow_import=allow_import)
    if json_out:
        typer.echo(json.dumps({"flow_id": sub.flow_id, "project": sub.project,
                               "worker": sub.worker, "db_ids": sub.db_ids,
                               "n_jobs": sub.n_jobs, "kinds": sub.kinds,
                               "follow": sub.follow_commands()}))
    else:
        _print_submission(sub)


@hpc_app.command("init")
def init(
    output: Optional[Path] = typer.Option(
        None, "--output", "-o",
        help="file to write (default: $JFREMOTE_PROJECTS_FOLDER or ~/.jfremote, <name>.yaml)"),
    name: str = typer.Option("viglas", help="project name"),
    mongo_host: str = typer.Option("localhost", help="MongoDB host of the queue and outputs"),
    mongo_port: int = typer.Option(27017, help="MongoDB port"),
    database: Optional[str] = typer.Option(None, help="database name (default: the name)"),
    work_dir: str = typer.Option("~/viglas-jobs",
                                 help="parent folder of the job folders (shared by the nodes)"),
    pre_run: Optional[str] = typer.Option(
        None, help="shell line activating the Python environment in each job "
                   "(default: this environment)"),
    runner_delay: float = typer.Option(30.0, help="seconds between runner polls (2 for tests)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
) -> None:
    """Write a commented jobflow-remote project file for viglas.

    It defines a Slurm worker, a PBS worker and a local shell worker, the MongoDB
    queue and output stores (large binary data in GridFS; trajectories stay as H5MD
    files in the job folders), a 'gpu' execution config and per-job-kind resources
    (MD vs analysis) in 'metadata.viglas'. Edit the lines marked EDIT.
    """
    from viglas.workflows.hpc_templates import load_project, write_project

    path = write_project(output, overwrite=force, name=name, mongo_host=mongo_host,
                         mongo_port=mongo_port, database=database, work_dir=work_dir,
                         pre_run=pre_run, runner_delay_s=runner_delay)
    try:
        load_project(path)
    except Exception:
        path.unlink()
        raise
    typer.echo(f"wrote {path}")
    typer.echo("next: edit the lines marked EDIT, then 'jf admin reset -y' (once) and "
               "'jf runner start --single'")


@hpc_app.command("check")
def check(
    worker: str = typer.Option(..., "--worker", "-w", help="worker to test"),
    project: Optional[str] = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    wait: bool = typer.Option(True, help="wait for the two jobs and print what they saw"),
    timeout: float = typer.Option(600.0, help="seconds to wait"),
    resume: int = typer.Option(
        0, help="also run a resumable sleeping job of this many 1-s steps as an MD job, "
                "split by --md-segment-s: checks that a continuation in a new allocation "
                "finds the checkpoint (shared work_dir)"),
    md_segment: Optional[float] = typer.Option(None, "--md-segment-s",
                                               help="segment wall time for --resume"),
) -> None:
    """Submit tiny probe jobs to WORKER (the second reads the first's output).

    Shows the host, Python, scheduler job id, CPUs and GPUs each job saw: a quick
    test of a new project before submitting real work. Needs a running runner.
    """
    from viglas.errors import SubmitError
    from viglas.workflows.hpc_probe import probe_flow
    from viglas.workflows.hpc_status import remote_results, wait_for_flow
    from viglas.workflows.hpc_submit import submit_flow

    sub = submit_flow(probe_flow(resume_steps=resume), worker=worker, project=project,
                      md_segment_s=md_segment)
    _print_submission(sub)
    if not wait:
        return
    st = wait_for_flow(sub.flow_id, project, timeout_s=timeout, poll_s=2.0)
    res = remote_results(project, sub.flow_id)
    typer.echo(json.dumps(res.get("outputs", {}), indent=1, default=str))
    if st["state"] != "COMPLETED":
        raise SubmitError(f"probe flow ended {st['state']}", field="worker", value=worker,
                          hint=f"see 'jf job list -fid {sub.flow_id}' and 'jf job info'")
    typer.echo("probe OK")


@hpc_app.command("status")
def status(
    flow_id: str = typer.Argument(..., help="flow id printed by 'viglas submit'"),
    project: Optional[str] = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    wait: bool = typer.Option(False, help="poll until the flow has finished"),
    timeout: float = typer.Option(86400.0, help="seconds to wait with --wait"),
) -> None:
    """Show the state of a submitted flow and of each job (errors of failed jobs)."""
    from rich.console import Console
    from rich.table import Table

    from viglas.workflows.hpc_status import flow_status, wait_for_flow

    st = (wait_for_flow(flow_id, project, timeout_s=timeout) if wait
          else flow_status(flow_id, project))
    failed = f", {st['n_failed']} job(s) failed" if st["n_failed"] else ""
    table = Table(title=f"flow {st['name']} ({flow_id}): {st['state']}{failed}")
    for col in ("db_id", "name", "kind", "state", "worker", "error"):
        table.add_column(col)
    for j in st["jobs"]:
        err = (j["error"] or "").strip().splitlines()
        table.add_row(j["db_id"], j["name"], j["kind"] or "", j["state"], j["worker"],
                      err[-1] if err else "")
    con = Console()
    con.print(table)
    for j in st["jobs"]:
        err = (j["error"] or "").strip().splitlines()
        if err:
            typer.echo(f"job {j['db_id']} '{j['name']}' {j['state']}: {err[-1].strip()}")
            typer.echo(f"  full error: jf job info {j['db_id']}   run dir: {j['run_dir']}")


@hpc_app.command("results")
def results(
    flow_id: str = typer.Argument(..., help="flow id printed by 'viglas submit'"),
    project: Optional[str] = typer.Option(None, "--project", "-p", help=_PROJECT_HELP),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="write the results.json here"),
) -> None:
    """Read a submitted flow's results from the jobflow-remote store (results.json form).

    Works on partial flows: failed jobs are listed with their error under 'remote.jobs'.
    """
    from viglas.workflows.hpc_status import remote_results

    res = remote_results(project, flow_id)
    text = json.dumps(res, indent=2, default=str, allow_nan=False)
    if output:
        output.write_text(text + "\n")
        typer.echo(f"wrote {output} (flow state {res['remote']['state']})")
    else:
        typer.echo(text)


def register(app: typer.Typer) -> None:
    """Add ``viglas submit`` and the ``viglas hpc`` group to the CLI."""
    app.command("submit")(submit)
    app.add_typer(hpc_app, name="hpc")
