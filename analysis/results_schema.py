"""JSON Schemas (draft 2020-12) of the results.json of a run (``viglas-results/1``) and
of a published study (``viglas-study/1``, docs/results/<study>/results.json).

The schemas ship as ``viglas/analysis/data/results-schema.json`` and
``viglas/analysis/data/study-schema.json``; every field is documented with its unit.
A study's ``runs[].results`` refer to the results schema by its ``$id``; both are
registered locally (no network). :func:`validate_results` and :func:`validate_study`
raise :class:`viglas.errors.ExportError` naming the JSON path of the first error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from viglas.analysis.export_schema import RESULTS_SCHEMA, schema_errors
from viglas.errors import ExportError

__all__ = ["RESULTS_SCHEMA", "STUDY_SCHEMA", "RESULTS_SCHEMA_ID", "STUDY_SCHEMA_ID",
           "load_results_schema", "load_study_schema", "validate_results", "validate_study",
           "study_errors"]

#: Identifier of a published study document (``viglas study NAME``).
STUDY_SCHEMA = "viglas-study/1"
#: ``$id`` of the shipped schemas (URNs: resolved locally, never fetched).
RESULTS_SCHEMA_ID = "urn:viglas:schema:viglas-results:1"
STUDY_SCHEMA_ID = "urn:viglas:schema:viglas-study:1"

_FILES = {RESULTS_SCHEMA: "data/results-schema.json", STUDY_SCHEMA: "data/study-schema.json"}


@lru_cache(maxsize=2)
def _schema_text(name: str) -> str:
    return resources.files("viglas.analysis").joinpath(_FILES[name]).read_text(encoding="utf-8")


def load_results_schema() -> dict:
    """The shipped JSON Schema of ``viglas-results/1`` (draft 2020-12) as a dict."""
    return json.loads(_schema_text(RESULTS_SCHEMA))


def load_study_schema() -> dict:
    """The shipped JSON Schema of ``viglas-study/1`` (draft 2020-12) as a dict."""
    return json.loads(_schema_text(STUDY_SCHEMA))


@lru_cache(maxsize=2)
def _validator(name: str):
    import jsonschema
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    results, study = load_results_schema(), load_study_schema()
    registry = Registry().with_resources([
        (RESULTS_SCHEMA_ID, DRAFT202012.create_resource(results)),
        (STUDY_SCHEMA_ID, DRAFT202012.create_resource(study)),
    ]).crawl()
    schema = results if name == RESULTS_SCHEMA else study
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _schema_errors(name: str, doc: Any) -> list[tuple[str, str]]:
    return schema_errors(_validator(name), doc)


def study_errors(doc: Any) -> list[tuple[str, str]]:
    """The checks of a study that JSON Schema cannot express, as ``(path, message)``:
    every key of ``summary.rows[i]`` must be one of ``summary.columns``."""
    out: list[tuple[str, str]] = []
    summary = doc.get("summary") if isinstance(doc, Mapping) else None
    if not isinstance(summary, Mapping):
        return out
    columns = summary.get("columns")
    rows = summary.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return out
    allowed = {c for c in columns if isinstance(c, str)}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            continue
        extra = [k for k in row if k not in allowed]
        if extra:
            out.append((f"summary/rows/{i}/{extra[0]}",
                        f"row key(s) {extra} not in summary.columns"))
    return out


def _raise(name: str, errors: list[tuple[str, str]]) -> None:
    if errors:
        where, message = errors[0]
        raise ExportError(f"document does not match {name}: {message}", field=where,
                          allowed=f"see viglas/analysis/{_FILES[name]}",
                          hint=f"{len(errors)} error(s) in all")


def validate_results(doc: Mapping) -> None:
    """Check a results.json dict against ``viglas-results/1``; raise ExportError if invalid
    (``field``: the JSON path of the first error, ``hint``: how many errors in all)."""
    _raise(RESULTS_SCHEMA, _schema_errors(RESULTS_SCHEMA, doc))


def validate_study(doc: Mapping) -> None:
    """Check a published study dict against ``viglas-study/1`` (its ``runs[].results``
    against ``viglas-results/1``) and that every summary row's keys are among
    ``summary.columns``; raise ExportError naming the first error's JSON path."""
    _raise(STUDY_SCHEMA, _schema_errors(STUDY_SCHEMA, doc) + study_errors(doc))
