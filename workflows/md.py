"""Old import path of the MD engine, kept for scripts written against it: the engine
lives in :mod:`viglas.md` (``from viglas.md import run_md, melt_quench``)."""

from viglas.md.engine import ENSEMBLES, THERMOSTATS, MDResult, run_md
from viglas.md.integrators import LangevinBAOAB_NVT
from viglas.md.quench import (BOIL_DENSITY_FRACTION, MeltQuenchResult,
                              melt_quench, melt_quench_schedule)

__all__ = ["ENSEMBLES", "THERMOSTATS", "MDResult", "run_md", "LangevinBAOAB_NVT",
           "BOIL_DENSITY_FRACTION", "MeltQuenchResult", "melt_quench", "melt_quench_schedule"]
