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
import csv
import json
import os
import shutil
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from viglas.config import Config, load_config
from viglas.analysis.export import RESULTS_SCHEMA
from viglas.errors import ConfigError, ViglasError, check_writable_dir
from viglas.files import atomic_write_text
from viglas.serialize import clean

__all__ = ["run_local", "default_workers", "open_store", "collect_results", "write_outputs", "RESULTS_SCHEMA"]

STORE_FILE = "jobstore.json"


# ----------------------------------------------------------------------------- store
def _atomic_json_store_cls():
    from maggma.stores import JSONStore

    class AtomicJSONStore(JSONStore):
        """maggma JSONStore whose file is replaced atomically (tmp + rename), so a
        run killed while saving never leaves a truncated store behind."""

        def update_json_file(self) -> None:  # noqa: D401
            import orjson

            from viglas.files import atomic_write_bytes

            data = list(self.query())
            for d in data:
                d.pop("_id", None)
            atomic_write_bytes(self.paths[0], orjson.dumps(
                data, option=self.serialization_option, default=self.serialization_default))

    return AtomicJSONStore


def open_store(workdir: str | Path):
    """The file-backed jobflow ``JobStore`` of a run directory (created if absent)."""
    from jobflow import JobStore

    path = Path(workdir) / STORE_FILE
    if not path.exists():
        path.write_text("[]")
    docs = _atomic_json_store_cls()(str(path), read_only=False)
    return JobStore(docs)


def _store_docs(workdir: Path) -> list[dict[str, Any]]:
    """All job documents of the store (read-only, plain dicts)."""
    path = workdir / STORE_FILE
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text() or "[]")
    except json.JSONDecodeError as exc:
        raise ViglasError("job store is not valid JSON", field=str(path),
                          hint="delete it to recompute everything") from exc


# ----------------------------------------------------------------------------- freshness
#: Store field in which run_local records what a job's inputs were when it ran: the
#: ``completed_at`` of every parent job (None for a parent that had no output).
INPUTS_FIELD = "viglas_inputs"


def _docs_by_uuid(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last document (highest index) of each job uuid."""
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        u = d.get("uuid")
        if u is not None and (u not in out or (d.get("index") or 0) >= (out[u].get("index") or 0)):
            out[u] = d
    return out


def _when(doc: dict[str, Any] | None) -> str | None:
    return None if doc is None else str(doc.get("completed_at") or "") or None


def job_freshness(jobs: list[tuple[str, list[str]]],
                  docs: dict[str, dict[str, Any]]) -> tuple[set[str], set[str], set[str]]:
    """Classify the finished jobs of a run as ``(fresh, partial, outdated)``.

    ``jobs`` is ``(uuid, parent uuids)`` in topological order, ``docs`` the store's
    last document per uuid. A finished job is

    * *outdated* when one of its inputs changed after it ran: a parent that finished
      (again) later, or whose output is itself outdated; its output must not be used;
    * *partial* when it ran while a parent had no output (a failed MD run under a
      summary) and that parent still has none: its output is kept and shown, but it
      did not use every input, so it reruns on the next ``viglas run``;
    * *fresh* otherwise.

    Jobs recorded by ``run_local`` carry ``viglas_inputs`` (the ``completed_at`` of
    each parent when the job finished); for older stores a parent that completed later
    than the job marks it outdated.
    """
    fresh: set[str] = set()
    partial: set[str] = set()
    outdated: set[str] = set()
    usable: dict[str, str | None] = {}  # uuid -> completed_at of a usable output
    for uuid, parents in jobs:
        doc = docs.get(uuid)
        if doc is None:
            continue
        recorded = doc.get(INPUTS_FIELD)
        stale = missing = False
        for p in parents:
            now = usable.get(p)
            if p in outdated:
                stale = True
            elif recorded is not None:
                then = recorded.get(p) if isinstance(recorded, dict) else None
                if then != now:
                    stale = True
                elif now is None:
                    missing = True
            elif now is None:
                missing = True
            elif (_when(doc) or "") < now:
                stale = True
        if stale:
            outdated.add(uuid)
            continue
        usable[uuid] = _when(doc)
        (partial if missing or any(p in partial for p in parents) else fresh).add(uuid)
    return fresh, partial, outdated


def _record_inputs(store, uuid: str, parents: list[str]) -> None:
    """Write into the job's store documents which parent outputs it used."""
    docs = list(store.docs_store.query({"uuid": {"$in": [uuid, *parents]}}))
    by = _docs_by_uuid(docs)
    inputs = {p: _when(by.get(p)) for p in parents}
    mine = [d for d in docs if d.get("uuid") == uuid]
    for d in mine:
        d.pop("_id", None)
        d[INPUTS_FIELD] = inputs
    if mine:
        store.docs_store.update(mine, key=["uuid", "index"])


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


def _plain(obj: Any) -> Any:
    """Job outputs as results.json wants them: monty ``@`` keys dropped, NaN/inf -> None."""
    return clean(obj, drop_meta=True)


def _rel(path: str | None, workdir: Path | None) -> str | None:
    if not path or workdir is None:
        return path
    try:
        return os.path.relpath(path, workdir) if Path(path).is_absolute() and \
            Path(path).resolve().is_relative_to(workdir.resolve()) else path
    except ValueError:
        return path


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


def _flat_jobs(flow) -> list:
    out = []
    for item in flow.jobs:
        out.extend(_flat_jobs(item) if hasattr(item, "jobs") else [item])
    return out


def _ordered_jobs(flow) -> list[tuple[Any, list[str]]]:
    """(job, parent uuids) in the order the jobs were added (a valid topological order
    for viglas flows: each MD run is followed by its analysis)."""
    parents = {job.uuid: list(p) for job, p in flow.iterflow()}
    order = [j for j in _flat_jobs(flow) if j.uuid in parents]
    pos = {j.uuid: i for i, j in enumerate(order)}
    if any(pos[p] > pos[j.uuid] for j in order for p in parents[j.uuid] if p in pos):
        return list(flow.iterflow())  # not topological: fall back to jobflow's order
    return [(j, parents[j.uuid]) for j in order]


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

    from viglas.workflows.flows import build_flow

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
        jobs = _ordered_jobs(flow)
        stored = _docs_by_uuid(list(store.docs_store.query(
            {}, properties=["uuid", "index", "completed_at", INPUTS_FIELD])))
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
                        _record_inputs(store, job.uuid, parents)
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
            _record_inputs(store, job.uuid, parents)
            done.add(job.uuid)
            con.print(f"{label(job)}  [green]finished[/green] in {time.time() - t0:.0f} s "
                      f"[dim](elapsed {time.time() - t_start:.0f} s)[/dim]")


# ----------------------------------------------------------------------------- results
def collect_results(workdir: str | Path | None, config: Config | None = None,
                    failed: dict[str, str] | None = None,
                    expected: list[str] | None = None,
                    parents: dict[str, list[str]] | None = None, *,
                    docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Build the results.json dict from whatever the job store holds (partial runs too).

    ``docs``: the job documents (plain dicts), e.g. read from a remote job store; by
    default those of the run directory's store. Without a ``workdir`` (remote results)
    ``config`` is needed and paths stay as stored.

    ``expected`` are the job uuids of the config's flow and ``parents`` their parent
    uuids (both derived from the config when not given). Outputs of jobs whose inputs
    changed after they ran are left out (see :func:`job_freshness`); a composition is
    ``complete`` only when its summary used the output of every one of its MD runs.
    """
    from viglas.provenance import provenance, stable_hash

    workdir = Path(workdir).resolve() if workdir is not None else None
    if config is None:
        cfg_path = workdir / "config.json" if workdir is not None else None
        if cfg_path is None or not cfg_path.exists():
            raise ConfigError("not a viglas run directory (no config.json)", field="workdir",
                              value=str(workdir))
        config = Config.model_validate(json.loads(cfg_path.read_text()))
    cfg = config.to_dict()
    if docs is None:
        docs = _store_docs(workdir)
    if expected is None:  # e.g. `viglas results DIR`: the jobs this config needs
        try:
            from viglas.workflows.flows import build_flow

            # only job ids are derived here; nothing of the config is imported or run
            order = _ordered_jobs(build_flow(config, allow_import=True))
            expected = [j.uuid for j, _ in order]
            parents = {j.uuid: list(p) for j, p in order}
        except ViglasError:
            expected = None
    partial: set[str] = set()
    if expected is not None:
        keep = set(expected)
        docs = [d for d in docs if d.get("uuid") in keep]
        if parents is not None:
            fresh, partial, _outdated = job_freshness(
                [(u, parents.get(u, [])) for u in expected], _docs_by_uuid(docs))
            docs = [d for d in docs if d.get("uuid") in fresh or d.get("uuid") in partial]
    series_partial = any((d.get("metadata") or {}).get("viglas_stage") == "series"
                         for d in docs if d.get("uuid") in partial)
    partial_formulas = {(d.get("output") or {}).get("formula") for d in docs
                        if d.get("uuid") in partial
                        and (d.get("metadata") or {}).get("viglas_stage") == "summary"}
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        stage = (d.get("metadata") or {}).get("viglas_stage", "?")
        by_stage.setdefault(stage, []).append(_plain(d.get("output") or {}))
    comps_out = []
    for comp in config.compositions():
        f = comp.formula
        summ = next((s for s in by_stage.get("summary", []) if s.get("formula") == f), None)
        build = next((s for s in by_stage.get("build", []) if s.get("formula") == f), None)
        glass = next((s for s in by_stage.get("melt_quench", []) if s.get("formula") == f), None)
        diffs = sorted((s for s in by_stage.get("diffusion", []) if s.get("formula") == f),
                       key=lambda s: (s["t_K"], s["replica"]))
        entry: dict[str, Any] = {
            "formula": f, "label": comp.label, "x": float(comp.x),
            "oxygen_fraction": float(comp.oxygen_fraction), "alkali": dict(comp.alkali),
            "former": dict(comp.former),
            "mobile_species": (comp.mobile_species if isinstance(comp.mobile_species, str)
                               else comp.mobile_species[0]),
            "n_atoms": build["n_atoms"] if build else None,
            "density_g_cm3": (glass or {}).get("density_g_cm3"),
            "number_density_per_cm3": None,
            "calculator": config.calculator.model_dump(mode="json"),
            "runs": [], "temperatures": [],
            "fits": {"d_arrhenius": None, "sigma_arrhenius": None, "d_vft": None,
                     "sigma_vft": None, "preferred_model": None},
            "ea_eV": None, "ea_err_eV": None, "sigma_300K_mS_cm": None,
            "sigma_300K_err_mS_cm": None, "d_300K_cm2_s": None, "d_300K_err_cm2_s": None,
            "tg_K": (glass or {}).get("tg_K"), "tg_err_K": (glass or {}).get("tg_err_K"),
            "haven_ratio": None, "haven_ratio_err": None, "haven_ratio_t_K": [],
            "transference_number": None, "transference_number_err": None,
            "transference_t_K": [], "tg_rates": [], "tg_lab_K": None, "tg_lab_err_K": None,
            "sigma_303K_mS_cm": None, "sigma_303K_err_mS_cm": None, "sigma_303K_source": None,
            "sigma_303K_model": None,
            "tg_rate_fit": None,
            "structure": {}, "plots": {}, "messages": [],
            "provenance": (glass or build or {}).get("provenance"),
            "complete": summ is not None,
        }
        if summ is not None:
            for k in list(entry):
                if k in summ and k not in ("calculator",):
                    entry[k] = summ[k]
            # complete = the summary used the output of every MD run of this composition
            entry["complete"] = f not in partial_formulas
        else:
            entry["runs"] = [{"t_K": d["t_K"], "replica": d["replica"], "seed": d["seed"],
                              "d_cm2_s": d.get("d_cm2_s"), "d_err_cm2_s": d.get("d_err_cm2_s"),
                              "sigma_mS_cm": d.get("sigma_mS_cm"),
                              "sigma_err_mS_cm": d.get("sigma_err_mS_cm"),
                              "haven_ratio": d.get("haven_ratio"),
                              "trajectory": d.get("trajectory"), "msd_plot": d.get("msd_plot")}
                             for d in diffs]
            # replica averages by the summary's own rule (viglas.analysis.summary)
            from viglas.analysis.summary import temperature_points

            entry["temperatures"] = temperature_points(entry["runs"])
            entry["number_density_per_cm3"] = next(
                (d.get("number_density_per_cm3") for d in diffs if d.get("number_density_per_cm3")),
                None)
        for r in entry["runs"]:
            r["trajectory"] = _rel(r.get("trajectory"), workdir)
            if r.get("msd_plot"):
                r["msd_plot"] = _rel(r["msd_plot"], workdir)
        entry["plots"] = {k: _rel(v, workdir) for k, v in (entry.get("plots") or {}).items()}
        comps_out.append(entry)
    series = next(iter(by_stage.get("series", [])), None)
    percolation = None
    ranking: list[dict[str, Any]] = []
    series_plots: dict[str, str] = {}
    structural: list[dict[str, Any]] = []
    if series is not None:
        percolation = series.get("percolation")
        ranking = series.get("ranking") or []
        structural = series.get("structural_percolation") or []
        series_plots = {k: _rel(v, workdir) for k, v in (series.get("plots") or {}).items()}
    elif config.kind != "composition":
        ranking = sorted(({"formula": c["formula"], "sigma_300K_mS_cm": c["sigma_300K_mS_cm"],
                           "sigma_300K_err_mS_cm": c["sigma_300K_err_mS_cm"], "ea_eV": c["ea_eV"],
                           "ea_err_eV": c["ea_err_eV"], "tg_K": c["tg_K"]}
                          for c in comps_out if c["complete"]),
                         key=lambda r: -(r["sigma_300K_mS_cm"] or -1.0))
    failed = failed or {}
    expected_n = len(expected) if expected is not None else None
    out = {
        "schema": RESULTS_SCHEMA,
        "provenance": provenance(cfg, config_hash=stable_hash(cfg)),
        "config": cfg,
        "compositions": comps_out,
        "percolation": percolation,
        "structural_percolation": structural,
        "ranking": ranking,
        "plots": series_plots,
        "status": {"complete": (not failed) and all(c["complete"] for c in comps_out) and
                   (config.kind == "composition" or (series is not None and not series_partial)),
                   "jobs_finished": len({d.get("uuid") for d in docs}), "jobs_total": expected_n,
                   "failed": [{"uuid": u, "error": e} for u, e in failed.items()]},
    }
    return _plain(out)


def _fmt(v: Any, err: Any = None, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    s = format(v, spec)
    if err is not None:
        s += " ± " + format(err, spec)
    return s


def write_outputs(results: dict[str, Any], workdir: str | Path) -> None:
    """Write results.json, CSV tables, copies of the plots and report.md into workdir."""
    workdir = Path(workdir)
    atomic_write_text(workdir / "results.json", json.dumps(results, indent=2, allow_nan=False))
    comps = results["compositions"]

    def write_csv(name: str, rows: list[dict[str, Any]], fields: list[str]) -> None:
        with open(workdir / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})

    write_csv("runs.csv", [{"formula": c["formula"], **r} for c in comps for r in c["runs"]],
              ["formula", "t_K", "replica", "seed", "d_cm2_s", "d_err_cm2_s", "sigma_mS_cm",
               "sigma_err_mS_cm", "haven_ratio", "trajectory"])
    write_csv("temperatures.csv", [{"formula": c["formula"], **t} for c in comps
                                   for t in c["temperatures"]],
              ["formula", "t_K", "n_replicas", "d_cm2_s", "d_err_cm2_s", "sigma_mS_cm",
               "sigma_err_mS_cm", "haven_ratio", "haven_ratio_err"])
    write_csv("compositions.csv", comps,
              ["formula", "x", "oxygen_fraction", "n_atoms", "density_g_cm3", "ea_eV", "ea_err_eV",
               "sigma_300K_mS_cm", "sigma_300K_err_mS_cm", "d_300K_cm2_s", "d_300K_err_cm2_s",
               "tg_K", "tg_err_K", "haven_ratio", "haven_ratio_err", "complete",
               "sigma_303K_mS_cm", "sigma_303K_err_mS_cm", "sigma_303K_source", "tg_lab_K",
               "tg_lab_err_K", "transference_number", "transference_number_err"])
    if results.get("ranking"):
        write_csv("ranking.csv", results["ranking"],
                  ["rank", "formula", "sigma_300K_mS_cm", "sigma_300K_err_mS_cm", "ea_eV",
                   "ea_err_eV", "tg_K", "tg_err_K", "oxygen_fraction"])
    # gather plots into workdir/plots
    plots_dir = workdir / "plots"
    plots_dir.mkdir(exist_ok=True)
    gathered: list[str] = []
    for c in comps:
        for k, p in (c.get("plots") or {}).items():
            src = workdir / p if not Path(p).is_absolute() else Path(p)
            if src.is_file():
                dst = plots_dir / f"{c['label']}_{k}.png"
                shutil.copyfile(src, dst)
                gathered.append(str(dst.relative_to(workdir)))
        for r in c.get("runs") or []:
            src = r.get("msd_plot")
            if src and (workdir / src if not Path(src).is_absolute() else Path(src)).is_file():
                dst = plots_dir / f"{c['label']}_msd_{r['t_K']:g}K_r{r['replica']}.png"
                shutil.copyfile(workdir / src if not Path(src).is_absolute() else Path(src), dst)
                gathered.append(str(dst.relative_to(workdir)))
    for k, p in (results.get("plots") or {}).items():
        src = workdir / p if not Path(p).is_absolute() else Path(p)
        if src.is_file():
            dst = plots_dir / f"{k}.png"
            shutil.copyfile(src, dst)
            gathered.append(str(dst.relative_to(workdir)))
    (workdir / "report.md").write_text(report_markdown(results, gathered))


def report_markdown(results: dict[str, Any], plots: list[str] | None = None) -> str:
    """A short human-readable report of a results dict."""
    cfg = results["config"]
    st = results.get("status", {})
    lines = [f"# viglas report: {cfg.get('name')} ({cfg.get('kind')})", ""]
    lines.append(f"Calculator: `{cfg['calculator']['name']}` {cfg['calculator'].get('params') or ''}; "
                 f"config hash `{results['provenance'].get('config_hash')}`; "
                 f"created {results['provenance'].get('created_utc')}.")
    prov = results.get("provenance") or {}
    versions = prov.get("versions") or {}
    git = prov.get("git") or {}
    lines.append(f"viglas {versions.get('viglas', '?')}"
                 + (f" (git {git.get('commit', '?')[:12]}{', modified' if git.get('dirty') else ''})"
                    if git else "")
                 + f"; config seed {cfg.get('seed')} (every job's seed derives from it; "
                 "per-run seeds below and in runs.csv).")
    lines.append(f"Status: {'complete' if st.get('complete') else 'PARTIAL'} "
                 f"({st.get('jobs_finished')} of {st.get('jobs_total')} jobs finished).")
    for f in st.get("failed", []):
        lines.append(f"- failed job {f['uuid'][:8]}: {f['error']}")
    lines.append("")
    lines.append("Uncertainties are one standard deviation. sigma is Nernst-Einstein "
                 f"(Haven ratio {cfg['analysis'].get('haven_ratio')}); 300 K values are "
                 "Arrhenius extrapolations with the fit's covariance band.")
    lines.append("")
    for c in results["compositions"]:
        lines.append(f"## {c['formula']}  (x = {c['x']:g}, O fraction p = {c['oxygen_fraction']:.4f}, "
                     f"{c.get('n_atoms') or '?'} atoms)")
        lines.append("")
        lines.append(f"- Ea = {_fmt(c['ea_eV'], c['ea_err_eV'])} eV (Arrhenius fit of D(T))")
        lines.append(f"- sigma(300 K) = {_fmt(c['sigma_300K_mS_cm'], c['sigma_300K_err_mS_cm'])} mS/cm")
        lines.append(f"- D(300 K) = {_fmt(c['d_300K_cm2_s'], c['d_300K_err_cm2_s'])} cm²/s")
        tg = (f"Tg = {_fmt(c['tg_K'], c['tg_err_K'], '.0f')} K" if c.get("tg_K") is not None
              else "Tg not fitted (see notes)")
        lines.append(f"- {tg}; glass density {_fmt(c['density_g_cm3'])} g/cm³ (after the quench)")
        if c["fits"].get("preferred_model"):
            lines.append(f"- preferred model (AIC): {c['fits']['preferred_model']}")
        if c.get("structure"):
            s = ", ".join(f"{k} = {_fmt(v) if isinstance(v, float) else v}"
                          for k, v in c["structure"].items() if not isinstance(v, (list, dict)))
            lines.append(f"- structure: {s}")
        lines.append("")
        if c.get("haven_ratio") is not None:
            lines.append(f"- Haven ratio {_fmt(c['haven_ratio'], c.get('haven_ratio_err'))} "
                         f"(mean over {', '.join(f'{t:g}' for t in c.get('haven_ratio_t_K') or [])}"
                         " K)")
        seeds = [f"{r['t_K']:g} K r{r['replica']}: {r['seed']}" for r in c.get("runs") or []
                 if r.get("seed") is not None]
        if seeds:
            lines.append(f"- MD seeds: {'; '.join(seeds)}")
        lines.append("")
        if c["temperatures"]:
            lines.append("| T (K) | replicas | D (cm²/s) | sigma (mS/cm) |")
            lines.append("|---:|---:|---:|---:|")
            for t in c["temperatures"]:
                lines.append(f"| {t['t_K']:g} | {t['n_replicas']} | {_fmt(t['d_cm2_s'], t['d_err_cm2_s'])} | "
                             f"{_fmt(t['sigma_mS_cm'], t['sigma_err_mS_cm'])} |")
            lines.append("")
        for m in c.get("messages") or []:
            lines.append(f"- note: {m}")
        if c.get("messages"):
            lines.append("")
    perc = results.get("percolation")
    if perc:
        lines.append("## Percolation")
        if "error" in perc:
            lines.append(f"No percolation fit: {perc['error']}")
        else:
            lines.append(f"p_c = {_fmt(perc.get('p_c'), perc.get('p_c_err'))}, "
                         f"t = {_fmt(perc.get('t'), perc.get('t_err'))}")
        lines.append("")
    if results.get("ranking"):
        lines.append("## Ranking by sigma(300 K)")
        lines.append("| rank | formula | sigma(300 K) (mS/cm) | Ea (eV) | Tg (K) |")
        lines.append("|---:|---|---:|---:|---:|")
        for i, r in enumerate(results["ranking"], 1):
            lines.append(f"| {r.get('rank', i)} | {r['formula']} | "
                         f"{_fmt(r.get('sigma_300K_mS_cm'), r.get('sigma_300K_err_mS_cm'))} | "
                         f"{_fmt(r.get('ea_eV'), r.get('ea_err_eV'))} | {_fmt(r.get('tg_K'), None, '.0f')} |")
        lines.append("")
    if plots:
        lines.append("## Plots")
        lines += [f"- ![{Path(p).stem}]({p})" for p in plots]
        lines.append("")
    return "\n".join(lines)
