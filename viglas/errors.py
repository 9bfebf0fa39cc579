"""One exception family for viglas.

Every error names the offending *field*, the *value* given and what is *allowed*,
so the CLI can print a single line without a traceback::

    ViglasError("density must be positive", field="density", value=-1.0,
                allowed="a number > 0 in g/cm^3")
    -> "density: density must be positive (got -1.0; allowed: a number > 0 in g/cm^3)"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_MISSING = object()


class ViglasError(Exception):
    """Base class of every error viglas raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = _MISSING,
                 allowed: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.field = field
        self.value = None if value is _MISSING else value
        self.has_value = value is not _MISSING
        self.allowed = allowed
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message as one line: ``field: message (got V; allowed: A). hint``."""
        text = f"{self.field}: {self.message}" if self.field else self.message
        extra = []
        if self.has_value:
            extra.append(f"got {self.value!r}")
        if self.allowed:
            extra.append(f"allowed: {self.allowed}")
        if extra:
            text += " (" + "; ".join(extra) + ")"
        if self.hint:
            text += f". {self.hint}"
        return text.replace("\n", " ")


class CompositionError(ViglasError, ValueError):
    """A formula, element or stoichiometry that is not a valid VIGLAS composition."""


class StructureError(ViglasError, ValueError):
    """A glass model cannot be built as asked (density, atom count, packing)."""


class ConfigError(ViglasError, ValueError):
    """A YAML config or option is invalid; ``field`` is the dotted key path."""


class CalculatorError(ViglasError):
    """An unknown calculator, a missing optional package or unsupported elements."""


class MissingDependencyError(CalculatorError, ImportError):
    """An optional package is not installed; ``hint`` names the pip extra."""


class MDError(ViglasError, RuntimeError):
    """MD stopped by a guard (NaN, runaway temperature, atoms too close)."""


class CheckpointError(ViglasError):
    """A checkpoint or trajectory on disk does not match the run being resumed."""


class TrajectoryError(ViglasError, ValueError):
    """A trajectory cannot be read or unwrapped (format, times, jumps)."""


class TrajectoryChecksumError(TrajectoryError):
    """Stored trajectory data fail their HDF5 checksum: the file was damaged after it
    was written (disk, copy, or something writing into it)."""


class AnalysisError(ViglasError, ValueError):
    """An analysis cannot be done on the data given (too few frames, species absent)."""


class FitError(ViglasError, ValueError):
    """A model fit is impossible or ill-posed with the data given."""


class ExportError(ViglasError, ValueError):
    """Export of continuum parameters failed (missing fits, unknown format)."""


class SubmitError(ViglasError):
    """HPC submission or the remote store failed."""


class OutputError(ViglasError):
    """An output location cannot be written (read-only, not a folder, no permission)."""


def check_writable_dir(path: str | os.PathLike, *, field: str, create: bool = True) -> Path:
    """Make sure the folder ``path`` exists (created if ``create``) and accepts a new
    file, by writing and removing a probe file (permission bits alone do not tell:
    root, read-only mounts). Raises :class:`OutputError` naming ``field`` otherwise.
    Call it before long computations so no result is lost to an unwritable output."""
    import tempfile

    p = Path(path)
    try:
        if create:
            p.mkdir(parents=True, exist_ok=True)
        if not p.is_dir():
            raise OutputError("output folder does not exist or is not a folder", field=field,
                              value=str(path), allowed="a folder you can write to")
        fd, probe = tempfile.mkstemp(prefix=".viglas-write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write there ({exc.strerror or exc})", field=field,
                          value=str(path), allowed="a folder you can write to",
                          hint="choose another location or fix its permissions") from exc
    return p

