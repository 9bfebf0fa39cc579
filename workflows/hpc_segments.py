"""MD jobs cut into wall-time segments on a cluster: :func:`segmented_call` runs a
resumable MD function for at most a budget of wall time and then replaces its job by
a continuation job (jobflow ``Response(replace=...)``) that runs in a new allocation,
in the same work directory, where :func:`viglas.md.run_md` resumes from its
checkpoint. :func:`segment_job` turns an MD job into such a call.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Callable

from jobflow import Job, Response, job

from viglas.errors import SubmitError
from viglas.md import walltime
from viglas.md.walltime import WallTimeUp  # re-exported: the stop segments catch

__all__ = ["segmented_call", "segment_job", "SegmentTimeUp", "WallTimeUp",
           "MAX_STALLED_SEGMENTS"]


class SegmentTimeUp(WallTimeUp):
    """Raised from ``SIGALRM`` inside a job that did not stop by itself within the
    grace period after its segment's wall-time budget was spent (see
    :func:`segmented_call`). A ``BaseException``, like :class:`WallTimeUp`.
    """


def _hard_stop_grace_s(budget_s: float) -> float:
    """Seconds a job gets, after the stop request, to checkpoint and stop by itself."""
    return min(60.0, max(1.0, 0.05 * float(budget_s)))


def _time_up_in(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a wall-time stop. A signal that arrives
    while C or numba code runs can surface wrapped, e.g. as a ``SystemError`` whose
    ``__cause__`` is the :class:`SegmentTimeUp` the handler raised."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, WallTimeUp):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _callable_path(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


#: A segment that writes nothing is retried this many times (a slow start on a busy
#: node) before the job fails: a new allocation would not get further.
MAX_STALLED_SEGMENTS = 2


@job
def segmented_call(function: Callable, args: list, kwargs: dict, budget_s: float,
                   segment: int = 0, workdir: str | None = None, started_utc: float | None = None,
                   stalled: int = 0):
    """Run ``function(*args, **kwargs)`` for at most ``budget_s`` seconds of wall time.

    The call runs with ``workdir`` as the current directory (the run directory of the
    first segment), so a resumable MD function that writes relative paths or uses the
    current directory finds its checkpoint again. When the budget is spent, a
    ``SIGALRM`` handler asks the call to stop (:func:`viglas.md.walltime.request_stop`):
    :func:`~viglas.md.run_md` then finishes its current step, writes a
    checkpoint there and raises :class:`~viglas.md.walltime.WallTimeUp`. A function that
    does not look at the request is interrupted (:class:`SegmentTimeUp`, raised
    between Python statements) after a grace period of 5 % of the budget (1 to 60 s).
    Either way this job is then replaced by segment ``segment + 1`` with the same
    arguments: jobflow-remote submits it as a new batch job, and the MD resumes from
    the last checkpoint. Its output is then the output of the original job, so later
    jobs see no difference. Only for functions that resume when called again in the
    same directory (:func:`viglas.md.run_md` and the viglas MD makers).
    """
    if budget_s <= 0:
        raise SubmitError("segment wall time must be > 0 s", field="segment_walltime_s",
                          value=budget_s)
    here = os.getcwd()
    workdir = workdir or here
    started_utc = started_utc or time.time()
    print(f"viglas: MD segment {segment} of {_callable_path(function)} in {workdir}, "
          f"budget {budget_s:.0f} s", flush=True)

    grace = _hard_stop_grace_s(budget_s)

    def _alarm(signum, frame):
        if not walltime.STOP:  # first: ask the MD loop to checkpoint and stop
            walltime.request_stop()
            signal.setitimer(signal.ITIMER_REAL, grace)
            return
        raise SegmentTimeUp(f"segment {segment} used its {budget_s:.0f} s and did not stop "
                            f"by itself within {grace:.0f} s more")

    t_start = time.time()
    walltime.clear()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(budget_s))
    try:
        os.chdir(workdir)
        try:
            result = _unwrap(function)(*args, **kwargs)
        except BaseException as exc:
            if not _time_up_in(exc):
                raise
            raise WallTimeUp(str(exc)) from exc
    except WallTimeUp:
        signal.setitimer(signal.ITIMER_REAL, 0)
        stalled = 0 if _wrote_since(Path(workdir), t_start) else stalled + 1
        if stalled > MAX_STALLED_SEGMENTS:
            raise SubmitError(f"{stalled} MD segments in a row wrote no checkpoint or output "
                              f"in {budget_s:.0f} s each, so a new segment would not get "
                              "further", field="segment_walltime_s", value=budget_s,
                              allowed="longer than one checkpoint interval plus start-up") \
                from None
        from jobflow import CURRENT_JOB

        nxt = segmented_call(function, args, kwargs, budget_s, segment=segment + 1,
                             workdir=workdir, started_utc=started_utc, stalled=stalled)
        current = CURRENT_JOB.job
        if current is not None:
            base = re.sub(r" \[segment \d+\]$", "", current.name or "md")
            nxt.name = f"{base} [segment {segment + 1}]"
            nxt._kwargs = dict(current._kwargs)  # additional stores (data=...)
            nxt.output_schema = current.output_schema
        print(f"viglas: wall-time budget reached; continuing as segment {segment + 1}",
              flush=True)
        return Response(replace=nxt, stored_data={"segment": segment, "workdir": workdir,
                                                  "interrupted": True})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        walltime.clear()
        os.chdir(here)
    if isinstance(result, Response):
        result.stored_data = {**(result.stored_data or {}), "segments": segment + 1,
                              "workdir": workdir}
        return result
    return Response(output=result, stored_data={"segments": segment + 1, "workdir": workdir,
                                                "wall_s": time.time() - started_utc})


def _unwrap(function: Callable) -> Callable:
    """The plain callable behind a ``@job``-decorated function or Maker method (as
    ``jobflow.Job.run`` does it): calling the decorated one would only build a Job."""
    import types

    fn = getattr(function, "original", function)
    bound = getattr(function, "__self__", None)
    if bound is not None and not isinstance(bound, types.ModuleType):
        fn = types.MethodType(fn, bound)
    return fn


def _wrote_since(folder: Path, t: float, max_files: int = 20000) -> bool:
    """Whether any file under ``folder`` was modified at or after time ``t``."""
    for n, p in enumerate(folder.rglob("*")):
        if n >= max_files:
            return True  # too many files to check: assume progress
        try:
            if p.is_file() and p.stat().st_mtime >= t:
                return True
        except OSError:
            continue
    return False


def segment_job(j: Job, budget_s: float) -> None:
    """Turn MD job ``j`` in place into a :func:`segmented_call` of its function."""
    if getattr(j.function, "original", j.function) is segmented_call.original:  # done
        return
    function, args, kwargs = j.function, list(j.function_args), dict(j.function_kwargs)
    j.function = segmented_call.original
    j.function_args = (function, args, kwargs, float(budget_s))
    j.function_kwargs = {}
    j.metadata = {**(j.metadata or {}), "viglas_segment_walltime_s": float(budget_s)}
