"""Cooperative wall-time stops for long MD runs.

A wall-time segment (:func:`viglas.workflows.hpc_segments.segmented_call`) asks the
running MD to stop with :func:`request_stop` (from a ``SIGALRM`` handler). The MD loop in
:func:`viglas.md.run_md` reads :data:`STOP` after every step; when it is set,
the loop finishes the step it is on, writes frames, log and a checkpoint at that step,
and raises :class:`WallTimeUp`. Stopping at a step boundary, rather than raising from
inside whatever C or numba code the signal happened to interrupt, means the error
cannot be wrapped into an unrelated ``SystemError`` and no step's work is lost.
"""

from __future__ import annotations

__all__ = ["WallTimeUp", "request_stop", "clear", "STOP"]


class WallTimeUp(BaseException):
    """The wall-time budget of this segment is spent; the checkpoint is up to date.

    A ``BaseException`` so that ``except Exception`` in user or library code does not
    swallow it.
    """


#: Set by :func:`request_stop`; read once per MD step (a plain module attribute, so
#: the check costs one attribute lookup).
STOP: bool = False


def request_stop() -> None:
    """Ask the running MD loop to checkpoint and raise :class:`WallTimeUp`."""
    global STOP
    STOP = True


def clear() -> None:
    """Withdraw a stop request (done before and after each segment)."""
    global STOP
    STOP = False
