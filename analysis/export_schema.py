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

from viglas.errors import ExportError

__all__ = ["CONTINUUM_SCHEMA", "SCHEMA_VERSION", "RESULTS_SCHEMA", "load_schema",
           "validate_export"]

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


def validate_export(export: Mapping) -> None:
    """Check ``export`` against the shipped JSON Schema; raise ExportError if invalid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(export), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(document)"
        raise ExportError(f"export does not match {CONTINUUM_SCHEMA}: {err.message}",
                          field=where, allowed="see viglas/analysis/data/continuum-schema.json",
                          hint=f"{len(errors)} schema error(s) in all")
