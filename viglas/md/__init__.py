"""The MD engine of viglas, free of jobflow (any script or job runner can use it).

Public API (imported lazily, so ``import viglas.md.walltime`` stays cheap)::

    from viglas.md import run_md, melt_quench, Schedule

Modules, one job each:

* :mod:`~viglas.md.engine` — :func:`run_md` (resumable NVE/NVT/NPT with H5MD output)
  and its :class:`MDResult`;
* :mod:`~viglas.md.integrators` — the fused Langevin-BAOAB NVT step and the wrapper
  that builds, retargets and saves the ASE integrators;
* :mod:`~viglas.md.observers` — guards, thermo/frame recording, progress display;
* :mod:`~viglas.md.checkpoint` — file names, checkpoints, frame parts, thermo log;
* :mod:`~viglas.md.schedules` — piecewise-linear temperature/pressure schedules;
* :mod:`~viglas.md.walltime` — cooperative wall-time stops (HPC segments);
* :mod:`~viglas.md.quench` — :func:`melt_quench` and its schedule;
* :mod:`~viglas.md.adaptive` — run until a quantity reaches a target precision.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run_md": "viglas.md.engine",
    "MDResult": "viglas.md.engine",
    "ENSEMBLES": "viglas.md.engine",
    "THERMOSTATS": "viglas.md.engine",
    "LangevinBAOAB_NVT": "viglas.md.integrators",
    "Schedule": "viglas.md.schedules",
    "melt_quench": "viglas.md.quench",
    "melt_quench_schedule": "viglas.md.quench",
    "MeltQuenchResult": "viglas.md.quench",
    "BOIL_DENSITY_FRACTION": "viglas.md.quench",
    "WallTimeUp": "viglas.md.walltime",
    "run_to_precision": "viglas.md.adaptive",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'viglas.md' has no attribute {name!r}")
