"""Follow a submitted flow: the state of its jobs (:func:`flow_status`,
:func:`wait_for_flow`) and its outputs read back from the project's job store as a
``results.json`` dict (:func:`remote_results`, through the code ``viglas run`` uses).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from viglas.errors import SubmitError
from viglas.workflows.hpc_settings import job_controller, project_name

__all__ = ["flow_status", "wait_for_flow", "remote_results"]

_TERMINAL_JOB = {"COMPLETED", "FAILED", "REMOTE_ERROR", "CANCELLED", "STOPPED", "USER_STOPPED"}
_BAD_JOB = {"FAILED", "REMOTE_ERROR", "CANCELLED", "STOPPED", "USER_STOPPED"}


def _state(x: Any) -> str:
    return getattr(x, "value", str(x)) if x is not None else "?"


def flow_status(flow_id: str, project: str | None = None) -> dict[str, Any]:
    """State of a submitted flow and of each of its jobs.

    Returns ``{"flow_id", "name", "state", "counts": {state: n}, "n_failed",
    "finished", "jobs": [{"db_id", "uuid", "index", "name", "kind", "state", "worker",
    "run_dir", "error", "process_id", "parents", ...}]}``; ``finished`` is true when no
    job can run any more; the error is the traceback text of a failed job (as ``jf job info``
    shows it). ``state`` is jobflow-remote's flow state: it is ``COMPLETED`` when the
    final jobs completed even if an intermediate job failed (viglas summaries accept
    missing runs), so check ``n_failed`` too.
    """
    jc = job_controller(project)
    try:
        flows = jc.get_flows_info(flow_ids=[flow_id])
        if not flows:
            raise SubmitError("no such flow in the queue database", field="flow_id",
                              value=flow_id, hint="list flows with 'jf flow list'")
        info = flows[0]
        jobs = jc.get_jobs_info(flow_ids=[flow_id])
        allow = {(d["uuid"], d["index"]): ((d.get("job") or {}).get("config") or {})
                 .get("on_missing_references", "error") != "error"
                 for d in jc.jobs.find({"uuid": {"$in": [j.uuid for j in jobs]}},
                                       projection=["uuid", "index",
                                                   "job.config.on_missing_references"])}
    finally:
        jc.close()
    rows = []
    counts: dict[str, int] = {}
    for ji in sorted(jobs, key=lambda j: (j.created_on, j.index)):
        st = _state(ji.state)
        counts[st] = counts.get(st, 0) + 1
        rows.append({
            "db_id": ji.db_id, "uuid": ji.uuid, "index": ji.index, "name": ji.name,
            "kind": (ji.metadata or {}).get("viglas_role"), "state": st,
            "worker": ji.worker, "run_dir": ji.run_dir, "error": ji.error,
            "process_id": getattr(ji.remote, "process_id", None),
            "parents": list(ji.parents or []), "allow_failed_parents":
                allow.get((ji.uuid, ji.index), False),
        })
    n_bad = sum(n for st, n in counts.items() if st in _BAD_JOB)
    return {"flow_id": flow_id, "name": info.name, "state": _state(info.state),
            "counts": counts, "n_failed": n_bad, "finished": not _can_advance(rows),
            "jobs": rows}


def _can_advance(rows: list[dict[str, Any]]) -> bool:
    """Whether any job of the flow may still run or change state.

    A WAITING job is stuck when a parent failed (and the job does not accept missing
    inputs) or is itself stuck; PAUSED jobs wait for the user. Everything else that
    is not finished (READY, SUBMITTED, RUNNING, ...) is still on its way.
    """
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["uuid"] not in latest or r["index"] > latest[r["uuid"]]["index"]:
            latest[r["uuid"]] = r
    stuck: set[str] = set()
    changed = True
    while changed:
        changed = False
        for u, r in latest.items():
            if u in stuck or r["state"] != "WAITING":
                continue
            for p in r["parents"]:
                ps = latest[p]["state"] if p in latest else "COMPLETED"
                ok_failed = r["allow_failed_parents"] and ps in ("FAILED", "USER_STOPPED")
                if p in stuck or (ps in _BAD_JOB and not ok_failed) or ps == "PAUSED":
                    stuck.add(u)
                    changed = True
                    break
    return any(r["state"] not in _TERMINAL_JOB | {"PAUSED"} and u not in stuck
               for u, r in latest.items())


def wait_for_flow(flow_id: str, project: str | None = None, *, timeout_s: float = 3600.0,
                  poll_s: float = 3.0, progress: Callable[[dict], None] | None = None
                  ) -> dict[str, Any]:
    """Poll :func:`flow_status` until no job can advance any more (all jobs finished,
    or the remaining ones wait on failed parents). Raises :class:`SubmitError` after
    ``timeout_s`` seconds. Returns the last status."""
    t0 = time.monotonic()
    finished_at = None
    while True:
        st = flow_status(flow_id, project)
        if progress:
            progress(st)
        if st["finished"]:
            # jobflow-remote updates the flow's own state just after the last job's;
            # wait for it (a flow with a REMOTE_ERROR job stays RUNNING: give up then)
            finished_at = finished_at or time.monotonic()
            if st["state"] in ("COMPLETED", "FAILED", "STOPPED", "PAUSED") or \
                    time.monotonic() - finished_at > max(15.0, 5 * poll_s):
                return st
        else:
            finished_at = None
        if time.monotonic() - t0 > timeout_s:
            raise SubmitError(f"flow not finished after {timeout_s:.0f} s "
                              f"({st['counts']})", field="flow_id", value=flow_id,
                              hint="is the runner running? 'jf runner status'")
        time.sleep(poll_s)


def _last_line(text: str | None) -> str | None:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else None


def remote_results(project: str | None, flow_id: str) -> dict[str, Any]:
    """Read a submitted flow's outputs back from the project's job store.

    Returns the ``results.json`` dict (``schema: viglas-results/1``) assembled from the
    job outputs by the same code ``viglas run`` uses
    (:func:`viglas.workflows.results.collect_results`), plus a ``"remote"`` section:
    project, flow id, flow state, and one row per job (db_id, name, kind, state,
    worker, run_dir, error). Works on partial flows: failed jobs are listed under
    ``status.failed`` (one-line error) and ``remote.jobs`` (full traceback); the
    compositions they belong to have ``complete: false`` and ``null`` numbers where
    nothing was computed. Trajectory paths are absolute paths on the cluster.

    Flows not submitted from a viglas config (e.g.
    :func:`~viglas.workflows.hpc_probe.probe_flow`) give
    ``{"schema": ..., "outputs": {job uuid: output}, "remote": ...}``.
    """
    status = flow_status(flow_id, project)
    jc = job_controller(project)
    try:
        fdoc = jc.flows.find_one({"uuid": flow_id}, projection=["metadata"]) or {}
        uuids = sorted({row["uuid"] for row in status["jobs"]})
        docs = list(jc.jobstore.docs_store.query({"uuid": {"$in": uuids}}))
    finally:
        jc.close()
    # one document per job: the last index (a segmented MD job is stored once per segment)
    latest: dict[str, dict[str, Any]] = {}
    for d in docs:
        d.pop("_id", None)
        if d["uuid"] not in latest or d.get("index", 1) > latest[d["uuid"]].get("index", 1):
            latest[d["uuid"]] = d
    failed = {row["uuid"]: _last_line(row["error"]) or row["state"]
              for row in status["jobs"] if row["state"] in _BAD_JOB}
    cfg = (fdoc.get("metadata") or {}).get("viglas_config")
    if cfg is not None:
        results = _collect(cfg, list(latest.values()), failed, uuids)
    else:
        from viglas.analysis.export_schema import RESULTS_SCHEMA

        results = {"schema": RESULTS_SCHEMA,
                   "outputs": {u: _json_safe(d.get("output")) for u, d in latest.items()},
                   "status": {"failed": [{"uuid": u, "error": e} for u, e in failed.items()]}}
    results["remote"] = {
        "project": status.get("project") or project_name(project), "flow_id": flow_id,
        "flow_name": status["name"], "state": status["state"], "counts": status["counts"],
        "jobs": [{k: row[k] for k in ("db_id", "uuid", "name", "kind", "state", "worker",
                                      "run_dir", "error")} for row in status["jobs"]],
    }
    return _json_safe(results)


def _collect(cfg: dict[str, Any], docs: list[dict[str, Any]], failed: dict[str, str],
             expected: list[str]) -> dict[str, Any]:
    """results.json from store documents, through ``viglas.workflows.results.collect_results``
    (the code ``viglas run`` uses; paths stay as stored on the cluster)."""
    from viglas.config import Config
    from viglas.workflows.results import collect_results

    config = Config.model_validate(cfg)
    return collect_results(None, config=config, failed=failed, expected=expected,
                           docs=_json_safe(docs))


def _json_safe(obj: Any) -> Any:
    """Plain JSON types: datetimes as ISO strings, NaN/inf as None, tuples as lists,
    anything else unknown as its string."""
    from viglas.serialize import clean

    return clean(obj, default=str)
