"""Atomic file writes: the one rule for every file a rerun or a reader may find half
written (checkpoints, trajectories' parts, job stores, results.json, state files).

The content goes to a temporary file next to the target (``<name>.tmp<pid>``), is
flushed and fsynced, and replaces the target with ``os.replace`` (atomic on POSIX): a
kill at any moment leaves either the old or the new file, never a truncated one.
Leftover ``<name>.tmp*`` files of a killed writer can be deleted by the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write_bytes", "atomic_write_text", "temporary_name"]


def temporary_name(path: str | Path) -> Path:
    """The temporary file a writer of ``path`` uses: ``<name>.tmp<pid>`` beside it."""
    path = Path(path)
    return path.with_name(path.name + f".tmp{os.getpid()}")


def atomic_write_bytes(path: str | Path, data: bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``path`` atomically: ``data`` (bytes) or ``data(fh)`` (a writer called with
    the open binary file) goes to a temporary file, fsync, ``os.replace``."""
    path = Path(path)
    tmp = temporary_name(path)
    with open(tmp, "wb") as fh:
        if callable(data):
            data(fh)
        else:
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode())
