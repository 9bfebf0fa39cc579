"""The identifiers and the JSON Schema of the continuum export (``viglas-continuum/1``)
and of the results.json it reads (``viglas-results/1``).

The schema (``viglas/analysis/data/continuum-schema.json``) documents every field
with its unit; :func:`validate_export` checks a document against it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from viglas.errors import ExportError

__all__ = ["CONTINUUM_SCHEMA", "SCHEMA_VERSION", "RESULTS_SCHEMA", "load_schema",
           "schema_errors", "validate_export"]

#: Identifier of the export document :mod:`viglas.analysis.export` writes.
CONTINUUM_SCHEMA = "viglas-continuum/1"
#: Version of the schema file (bumped on compatible additions).
SCHEMA_VERSION = "1.1.0"
#: Identifier of the results.json the export reads (written by ``viglas run``).
RESULTS_SCHEMA = "viglas-results/1"


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("viglas.analysis").joinpath("data/continuum-schema.json").read_text(
        encoding="utf-8")


def load_schema() -> dict:
    """The shipped JSON Schema of the export (draft 2020-12) as a dict."""
    return json.loads(_schema_text())


def schema_errors(validator, doc: Any) -> list[tuple[str, str]]:
    """Every error of ``validator`` (a jsonschema validator) on ``doc`` as ``(path,
    message)``, ordered by path; ``path`` is ``a/0/b`` and, for a missing required key,
    ends with that key's name (``(document)`` at the top)."""
    def order(err) -> list[tuple[int, Any]]:  # ints and strings mixed: never compare both
        return [(0, p) if isinstance(p, int) else (1, str(p)) for p in err.absolute_path]

    out = []
    for err in sorted(validator.iter_errors(doc), key=order):
        parts = [str(p) for p in err.absolute_path]
        if err.validator == "required" and isinstance(err.instance, Mapping):
            missing = [k for k in err.validator_value if k not in err.instance]
            if missing:
                parts.append(str(missing[0]))
        out.append(("/".join(parts) or "(document)", err.message))
    return out


def validate_export(export: Mapping) -> None:
    """Check ``export`` against the shipped JSON Schema; raise ExportError if invalid."""
    import jsonschema

    errors = schema_errors(jsonschema.Draft202012Validator(load_schema()), export)
    if errors:
        where, message = errors[0]
        raise ExportError(f"export does not match {CONTINUUM_SCHEMA}: {message}",
                          field=where, allowed="see viglas/analysis/data/continuum-schema.json",
                          hint=f"{len(errors)} schema error(s) in all")
