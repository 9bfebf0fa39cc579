"""What runs where (viglas.workflows): jobflow makers and flows, the local runner, HPC
submission. The MD engine they call is :mod:`viglas.md`.

Public API (imported lazily, so ``import viglas.workflows`` stays cheap)::

    from viglas.config import load_config
    from viglas.workflows import build_flow, run_local
    cfg = load_config("configs/quick.yaml")
    flow = build_flow(cfg)                  # jobflow Flow, deterministic job uuids
    results = run_local(cfg, "runs/quick")  # file-backed store, resumable, results.json

Modules: :mod:`~viglas.workflows.makers` (BuildGlassMaker, MeltQuenchMaker, ProductionMDMaker,
DiffusionAnalysisMaker, CompositionSummaryMaker, SeriesSummaryMaker),
:mod:`~viglas.workflows.documents` (output documents), :mod:`~viglas.workflows.flows`
(``build_flow``), :mod:`~viglas.workflows.run` (``run_local``), :mod:`~viglas.workflows.results`
(``collect_results``, results.json, CSV, report.md), :mod:`~viglas.workflows.store`
(the job store),
HPC with jobflow-remote: :mod:`~viglas.workflows.hpc_settings` (per-kind settings),
:mod:`~viglas.workflows.hpc_segments` (wall-time segments), :mod:`~viglas.workflows.hpc_submit`
(submission), :mod:`~viglas.workflows.hpc_status` (status, results),
:mod:`~viglas.workflows.hpc_probe` (probe jobs); :mod:`~viglas.workflows.submit` re-exports them.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_flow": "viglas.workflows.flows",
    "composition_flow": "viglas.workflows.flows",
    "run_local": "viglas.workflows.run",
    "collect_results": "viglas.workflows.results",
    "BuildGlassMaker": "viglas.workflows.makers",
    "MeltQuenchMaker": "viglas.workflows.makers",
    "ProductionMDMaker": "viglas.workflows.makers",
    "DiffusionAnalysisMaker": "viglas.workflows.makers",
    "CompositionSummaryMaker": "viglas.workflows.makers",
    "SeriesSummaryMaker": "viglas.workflows.makers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'viglas.workflows' has no attribute {name!r}")
