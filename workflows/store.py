"""The file-backed job store of a local run and which of its outputs are still valid.

``workdir/jobstore.json`` is a maggma ``JSONStore`` behind a jobflow ``JobStore``,
rewritten atomically (:mod:`viglas.files`). :func:`job_freshness` decides from the
``completed_at`` of a job and of its parents (recorded in :data:`INPUTS_FIELD` when the
job ran), and from the analysis rules it was made under (:data:`RULES_FIELD`), which
stored outputs a rerun may keep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from viglas.errors import ViglasError

__all__ = ["STORE_FILE", "INPUTS_FIELD", "open_store", "store_docs", "docs_by_uuid",
           "job_freshness", "record_inputs", "RULES_FIELD", "rules_outdated",
           "stage_rules"]

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


def store_docs(workdir: Path) -> list[dict[str, Any]]:
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


#: Store field in which run_local records the version of the analysis rules a job was
#: made under, for the stages in :func:`stage_rules` (the composition summary).
RULES_FIELD = "viglas_rules"


def stage_rules() -> dict[str, str]:
    """Current rules version of each stage whose output depends on analysis rules that
    can change between viglas versions (not on MD): ``{"summary": ...}``."""
    from viglas.analysis.summary import RULES_VERSION

    return {"summary": RULES_VERSION}


def rules_outdated(doc: dict[str, Any] | None) -> bool:
    """The job was made by run_local under analysis rules other than the current ones
    (older stores: no rules recorded). Documents without :data:`INPUTS_FIELD` (made
    elsewhere, e.g. by jobflow-remote) are not judged."""
    if not doc or INPUTS_FIELD not in doc:
        return False
    want = stage_rules().get((doc.get("metadata") or {}).get("viglas_stage"))
    return want is not None and doc.get(RULES_FIELD) != want


def docs_by_uuid(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
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
      (again) later, or whose output is itself outdated, or when it was made under
      analysis rules other than the current ones (:func:`rules_outdated`: a summary
      made by an older viglas); its output must not be used;
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
        stale, missing = rules_outdated(doc), False
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


def record_inputs(store, uuid: str, parents: list[str]) -> None:
    """Write into the job's store documents which parent outputs it used."""
    docs = list(store.docs_store.query({"uuid": {"$in": [uuid, *parents]}}))
    by = docs_by_uuid(docs)
    inputs = {p: _when(by.get(p)) for p in parents}
    mine = [d for d in docs if d.get("uuid") == uuid]
    rules = stage_rules()
    for d in mine:
        d.pop("_id", None)
        d[INPUTS_FIELD] = inputs
        stage = (d.get("metadata") or {}).get("viglas_stage")
        if stage in rules:
            d[RULES_FIELD] = rules[stage]
    if mine:
        store.docs_store.update(mine, key=["uuid", "index"])
