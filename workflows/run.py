"""Run a viglas flow on this machine, resumably, with a file-backed job store.

``run_local(config, workdir)`` builds the deterministic flow of
:func:`viglas.workflows.flows.build_flow` and runs it job by job with
``jobflow.run_locally`` against a JSON job store in ``workdir/jobstore.json`` (maggma
``JSONStore``, written atomically; no database server). Each job runs in its own
directory ``workdir/jobs/<name>-<uuid8>``.

**Resume**: job uuids are derived from what the job computes, so a rerun of the same
config finds the finished jobs in the store and skips them; their outputs are read
from the store by the jobs that need them. An interrupted MD job reruns in the same
directory and ``run_md`` continues from its last checkpoint.

Outputs in ``workdir``: ``results.json`` (schema ``viglas-results/1``), ``runs.csv``,
``temperatures.csv``, ``compositions.csv`` (and ``ranking.csv`` for sweeps and
screenings), ``plots/*.png`` and ``report.md``.
"""

from __future__ import annotations

import copy
import json
import os
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from viglas.config import Config, load_config
from viglas.errors import ConfigError, ViglasError, check_writable_dir
from viglas.workflows.results import collect_results, write_outputs
from viglas.workflows.store import (INPUTS_FIELD, RULES_FIELD, docs_by_uuid, job_freshness,
                                    open_store, record_inputs, rules_outdated)

__all__ = ["run_local", "default_workers"]




# ----------------------------------------------------------------------------- helpers
LOCK_FILE = ".viglas.lock"
#: Every worker process of a run holds a shared lock on this file while it lives, so a
#: new run can tell that workers of an earlier (killed) run are still writing here.
WORKERS_LOCK_FILE = ".viglas.workers.lock"


@contextmanager
def _lock(workdir: Path, wait_workers_s: float = 15.0):
    """Hold the run directory: the run lock, after the workers of any earlier run have
    gone (they die with their parent; this waits up to ``wait_workers_s`` for them)."""
    import fcntl

    fh = open(workdir / LOCK_FILE, "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        raise ViglasError("another viglas run is using this directory", field="workdir",
                          value=str(workdir), hint="wait for it or pick another --workdir") from exc
    try:
        with open(workdir / WORKERS_LOCK_FILE, "w") as wh:
            deadline = time.monotonic() + wait_workers_s
            while True:
                try:
                    fcntl.flock(wh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        raise ViglasError(
                            "worker processes of an earlier viglas run are still running in "
                            "this directory", field="workdir", value=str(workdir),
                            hint="wait for them to end (or end them) and rerun") from exc
                    time.sleep(0.2)
            fcntl.flock(wh, fcntl.LOCK_UN)
    except BaseException:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
        raise
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


class _Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) received: stop like Ctrl-C (workers stopped, outputs written)."""


@contextmanager
def _terminate_as_interrupt():
    """In the main thread, turn SIGTERM/SIGHUP into :class:`_Terminated` for the block."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise _Terminated(f"signal {signum}")

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("_")[:80]





class _Console:
    """Minimal progress printer (rich when available and enabled)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._c = None
        if enabled:
            from rich.console import Console

            self._c = Console(stderr=True)

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._c is not None:
            self._c.print(*args, **kwargs)


def _describe(job) -> str:
    md = job.metadata or {}
    stage = md.get("viglas_stage", "job")
    parts = [f"[bold]{stage}[/bold]"]
    if md.get("formula"):
        parts.append(md["formula"])
    if md.get("t_K") is not None:
        parts.append(f"T = {md['t_K']:g} K")
    if md.get("replica") is not None:
        parts.append(f"replica {md['replica']}")
    return "  ".join(parts)




# ----------------------------------------------------------------------------- run
def default_workers() -> int:
    """Parallel job slots for ``run_local``: ``$VIGLAS_JOBS`` or the usable CPUs (max 8)."""
    env = os.environ.get("VIGLAS_JOBS")
    if env:
        try:
            return max(1, int(env))
        except ValueError as exc:
            raise ConfigError("VIGLAS_JOBS must be a whole number", field="VIGLAS_JOBS",
                              value=env) from exc
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def _quiet_warnings() -> None:
    warnings.simplefilter("ignore", FutureWarning)
    warnings.filterwarnings("ignore", message=".*heuristic P_mass.*")


def _run_job_here(job, store, jobdir: Path) -> None:
    """Run one job with jobflow's local manager in ``jobdir`` against ``store``."""
    from jobflow.managers.local import run_locally

    solo = copy.deepcopy(job)
    solo.hosts = []
    with warnings.catch_warnings():
        _quiet_warnings()
        run_locally(solo, store=store, root_dir=jobdir, log=False,
                    allow_external_references=True, raise_immediately=True)


_WORKER_LOCK = None  # the worker's open lock file (kept open for its whole life)


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker process end when its parent ``viglas run`` ends, however it
    ends (``kill -9`` included): ``PR_SET_PDEATHSIG`` on Linux, and everywhere a
    watchdog thread that kills the process once its parent is gone (re-parented)."""
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="viglas-parent-watchdog", daemon=True).start()


def _worker_init(workdir: str | None = None, parent_pid: int | None = None) -> None:
    import signal

    global _WORKER_LOCK
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    if workdir is not None:
        import fcntl

        _WORKER_LOCK = open(Path(workdir) / WORKERS_LOCK_FILE, "a")
        fcntl.flock(_WORKER_LOCK, fcntl.LOCK_SH)
    # Ctrl-C is handled by the main process, which stops the workers itself (their MD
    # resumes from its last checkpoint on the next run)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _worker_run(job_dict: dict, parent_docs: list[dict], jobdir: str) -> dict[str, Any]:
    """Run one job in a worker process against an in-memory store holding its parents'
    outputs; return the new store documents (the main process is the only writer of
    the run's job store) or the error."""
    from jobflow import Job, JobStore
    from maggma.stores import MemoryStore

    try:
        store = JobStore(MemoryStore())
        store.connect()
        if parent_docs:
            store.docs_store.update(parent_docs, key=["uuid", "index"])
        job = Job.from_dict(job_dict)
        _run_job_here(job, store, Path(jobdir))
        docs = list(store.docs_store.query({"uuid": job.uuid}))
        for d in docs:
            d.pop("_id", None)
        return {"docs": json.loads(json.dumps(docs, default=str))}
    except ViglasError as exc:
        return {"error": exc.one_line(), "traceback": traceback.format_exc()}
    except Exception as exc:  # noqa: BLE001 - reported by the main process
        return {"error": f"{type(exc).__name__}: {exc}".replace("\n", " "),
                "traceback": traceback.format_exc()}


def run_local(config: Config | str | Path, workdir: str | Path, progress: bool = True,
              workers: int | None = None, allow_import: bool = False) -> dict:
    """Run ``config`` on this machine in ``workdir``; resumable; returns results.json as dict.

    Parameters
    ----------
    config : a validated :class:`Config` or the path of a YAML file.
    workdir : run directory (created); holds the job store, the job directories and
        the outputs. Rerunning with the same directory skips finished jobs.
    progress : print stage lines (and, with one worker, MD progress bars) on stderr.
    workers : jobs run at the same time (independent MD runs in parallel processes,
        one thread each); None = :func:`default_workers`. Results do not depend on it:
        every job has its own seed.

    allow_import : allow a ``package.module:factory`` calculator (the config is then
        code that runs); refused otherwise, see :mod:`viglas.calculators`.

    Jobs that fail are reported (``results["status"]["failed"]``, with the one-line
    error) and their dependants are skipped; independent jobs still run. A finished
    job whose inputs changed since it ran, or that ran without the output of a failed
    job, reruns (see :func:`job_freshness`).
    """
    from jobflow.core.reference import OnMissing

    from viglas.workflows.flows import build_flow, ordered_jobs

    from viglas.calculators import check_import_allowed

    if not isinstance(config, Config):
        config = load_config(config)
    check_import_allowed(config.calculator.name, allow_import)
    from viglas.structures import check_memory

    check_memory(config.structure.n_atoms, field="structure.n_atoms")
    n_workers = default_workers() if workers is None else max(1, int(workers))
    workdir = check_writable_dir(Path(workdir).resolve(), field="workdir")
    con = _Console(progress)
    with _lock(workdir), _terminate_as_interrupt():
        cfg_path = workdir / "config.json"
        cfg_dict = config.to_dict()
        if cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            if old != cfg_dict:
                con.print("[yellow]config differs from the one stored in this directory; "
                          "jobs whose settings changed will be recomputed[/yellow]")
        cfg_path.write_text(json.dumps(cfg_dict, indent=2))
        flow = build_flow(config, progress=progress and n_workers == 1,
                          allow_import=allow_import)
        store = open_store(workdir)
        store.connect()
        jobs = ordered_jobs(flow)
        stored = docs_by_uuid(list(store.docs_store.query(
            {}, properties=["uuid", "index", "completed_at", INPUTS_FIELD, RULES_FIELD,
                            "metadata"])))
        done, partial, outdated = job_freshness([(j.uuid, list(p)) for j, p in jobs], stored)
        failed: dict[str, str] = {}
        n_skip = sum(1 for j, _ in jobs if j.uuid in done)
        con.print(f"[bold]viglas[/bold] {config.kind} '{config.name}': {len(jobs)} jobs, "
                  f"{n_skip} already finished, {n_workers} worker(s) (workdir {workdir})")
        index = {j.uuid: i for i, (j, _) in enumerate(jobs, start=1)}
        t_start = time.time()

        def label(job) -> str:
            return f"[{index[job.uuid]}/{len(jobs)}] {_describe(job)}"

        def jobdir_of(job) -> Path:
            d = workdir / "jobs" / f"{_slug(job.name)}-{job.uuid[:8]}"
            d.mkdir(parents=True, exist_ok=True)
            return d

        def blocked(job, parents) -> bool:
            bad = [p for p in parents if p in failed]
            if bad and job.config.on_missing_references != OnMissing.NONE:
                failed[job.uuid] = f"skipped: depends on failed job {bad[0][:8]}"
                con.print(f"{label(job)}  [yellow]skipped (an input failed)[/yellow]")
                return True
            return False

        def record_failure(job, message: str, tb: str) -> None:
            failed[job.uuid] = message
            (jobdir_of(job) / "error.txt").write_text(tb)
            con.print(f"{label(job)}  [red]failed:[/red] {message}")

        for job, _ in jobs:
            if job.uuid in done:
                con.print(f"{label(job)}  [dim]done, skipped[/dim]")
            elif job.uuid in partial:
                con.print(f"{label(job)}  [yellow]reruns: it ran without the output of a "
                          "failed job[/yellow]")
            elif job.uuid in outdated and rules_outdated(stored.get(job.uuid)):
                con.print(f"{label(job)}  [yellow]reruns: made under older analysis rules "
                          "(from the stored MD results)[/yellow]")
            elif job.uuid in outdated:
                con.print(f"{label(job)}  [yellow]reruns: its inputs changed since it "
                          "ran[/yellow]")
        pending = [(j, p) for j, p in jobs if j.uuid not in done]
        try:
            if n_workers == 1:
                for job, parents in pending:
                    if blocked(job, parents):
                        continue
                    jd = jobdir_of(job)
                    con.print(label(job) + _resume_note(job, jd))
                    try:
                        _run_job_here(job, store, jd)
                    except ViglasError as exc:
                        record_failure(job, exc.one_line(), traceback.format_exc())
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except Exception as exc:  # noqa: BLE001 - keep independent jobs running
                        record_failure(job, f"{type(exc).__name__}: {exc}".replace("\n", " "),
                                       traceback.format_exc())
                    else:
                        record_inputs(store, job.uuid, parents)
                        done.add(job.uuid)
            else:
                _run_parallel(pending, n_workers, store, done, failed, blocked, record_failure,
                              label, jobdir_of, con, t_start, workdir=workdir)
        except KeyboardInterrupt:
            con.print(f"[yellow]interrupted[/yellow]: {len(done)} finished job(s) are kept in "
                      f"{workdir}; rerun the same command to resume (MD continues from its "
                      "last checkpoint)")
            raise
        finally:
            # partial or complete: always leave readable outputs behind
            results = collect_results(workdir, config=config, failed=failed,
                                      expected=[j.uuid for j, _ in jobs],
                                      parents={j.uuid: list(p) for j, p in jobs})
            write_outputs(results, workdir)
        n_fail = len(failed)
        if n_fail:
            con.print(f"[red]{n_fail} job(s) failed or skipped[/red]; rerun the same command "
                      "after fixing the cause (finished jobs are kept)")
        else:
            con.print(f"[green]done[/green] in {time.time() - t_start:.0f} s: "
                      f"{workdir / 'results.json'}, {workdir / 'report.md'}")
    return results


def _last_step(log: Path) -> int:
    """Step of the last row of an MD thermo log (CSV written by run_md); 0 if none."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 2048))
            lines = fh.read().decode(errors="ignore").strip().splitlines()
        return int(float(lines[-1].split(",")[0])) if lines else 0
    except (OSError, ValueError, IndexError):
        return 0


def _md_progress(job, jobdir: Path) -> tuple[int, int] | None:
    """(steps done, steps total) of a running MD job, read from its log files."""
    stage = (job.metadata or {}).get("viglas_stage")
    m = job.maker
    if stage == "production":
        eq = _last_step(jobdir / "equil" / "traj.log.csv")
        prod = _last_step(jobdir / "prod" / "traj.log.csv")
        return min(eq, m.equilibration_steps) + prod, m.equilibration_steps + m.steps
    if stage == "melt_quench" and m.enabled:
        from viglas.md.quench import HEAT_RATE_K_PS, melt_quench_schedule
        from viglas.units import md_steps

        t_final = job.function_kwargs.get("t_final_K", m.t_final_K)
        sched, _, _ = melt_quench_schedule(t_start_K=t_final, t_melt_K=m.t_melt_K,
                                           t_final_K=t_final, heat_rate_K_ps=HEAT_RATE_K_PS,
                                           hold_ps=m.hold_ps, cool_rate_K_ps=m.cool_rate_K_ps)
        total = md_steps(sched.duration_fs, m.timestep_fs, "up")  # as melt_quench runs
        return min(_last_step(jobdir / "melt_quench" / "melt_quench.log.csv"), total), total
    return None


def _resume_note(job, jobdir: Path) -> str:
    """' (resumes from its checkpoint at step N of M)' for an MD job that ran before."""
    try:
        prog = _md_progress(job, jobdir)
    except Exception:  # noqa: BLE001 - a note never stops a run
        return ""
    if prog and prog[0] > 0:
        return (f"  [cyan](resumes from its last checkpoint: about step {prog[0]} of "
                f"{prog[1]})[/cyan]")
    return ""


def _run_parallel(pending, n_workers, store, done, failed, blocked, record_failure, label,
                  jobdir_of, con, t_start, workdir: Path | None = None) -> None:
    """Schedule ready jobs on a process pool; the main process writes the store and
    shows one progress bar per running MD job (steps read from its thermo log)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    waiting = list(pending)
    running: dict[Any, tuple[Any, float, Any]] = {}
    ctx = mp.get_context("spawn")  # no fork of a process holding numba/torch threads
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("MD steps"), TimeElapsedColumn(), console=con._c,
                    disable=con._c is None, transient=True)
    pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(str(workdir) if workdir else None, os.getpid()))
    try:
        with bars:
            _schedule(pool, bars, waiting, running, n_workers, store, done, failed, blocked,
                      record_failure, label, jobdir_of, con, t_start)
    except BaseException:
        # interrupted (Ctrl-C) or broken: stop the workers now, keep what is finished
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        raise
    else:
        pool.shutdown(wait=True)


def _schedule(pool, bars, waiting, running, n_workers, store, done, failed, blocked,
              record_failure, label, jobdir_of, con, t_start) -> None:
    """The scheduling loop of :func:`_run_parallel`."""
    from concurrent.futures import FIRST_COMPLETED, wait

    while waiting or running:
        for item in list(waiting):
            if len(running) >= n_workers:
                break
            job, parents = item
            if any(p in failed for p in parents) and blocked(job, parents):
                waiting.remove(item)
                continue
            if not all(p in done or p in failed for p in parents):
                continue
            waiting.remove(item)
            parent_docs = list(store.docs_store.query({"uuid": {"$in": list(parents)}}))
            for d in parent_docs:
                d.pop("_id", None)
            jd = jobdir_of(job)
            fut = pool.submit(_worker_run, job.as_dict(), parent_docs, str(jd))
            prog = _md_progress(job, jd)
            task = (bars.add_task(_describe(job).replace("[bold]", "").replace("[/bold]", ""),
                                  total=prog[1], completed=prog[0]) if prog else None)
            running[fut] = (job, time.time(), task, parents)
            con.print(f"{label(job)}  [dim]started[/dim]{_resume_note(job, jd)}")
        if not running:
            if waiting:  # nothing can start: every remaining job waits on a failure
                for job, parents in waiting:
                    blocked(job, parents)
            break
        finished, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
        for fut, (job, _t0, task, _p) in running.items():
            if task is not None and fut not in finished:
                prog = _md_progress(job, jobdir_of(job))
                if prog:
                    bars.update(task, completed=prog[0])
        for fut in finished:
            job, t0, task, parents = running.pop(fut)
            if task is not None:
                bars.remove_task(task)
            try:
                out = fut.result()
            except Exception as exc:  # noqa: BLE001 - a crashed worker process
                out = {"error": f"worker crashed: {type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc()}
            if "error" in out:
                record_failure(job, out["error"], out.get("traceback", ""))
                continue
            store.docs_store.update(out["docs"], key=["uuid", "index"])
            record_inputs(store, job.uuid, parents)
            done.add(job.uuid)
            con.print(f"{label(job)}  [green]finished[/green] in {time.time() - t0:.0f} s "
                      f"[dim](elapsed {time.time() - t_start:.0f} s)[/dim]")


# ----------------------------------------------------------------------------- results
