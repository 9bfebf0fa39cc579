"""The CSV form of the continuum export: ``parameters.csv`` (one row per value, key
path + JSON-encoded value, exact round trip) and the ``grid_<label>.csv``
interpolation tables of sigma(T), D(T).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from viglas.errors import ExportError

__all__ = ["write_csv_export", "read_parameters_csv", "write_grid_csv"]


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def _key_path(parts: Sequence[str | int]) -> str:
    text = ""
    for p in parts:
        if isinstance(p, int):
            text += f"[{p}]"
        elif _IDENT.match(p):
            text += f".{p}" if text else p
        else:
            text += f"[{json.dumps(p)}]"
    return text


def _parse_key(key: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    while pos < len(key):
        m = _TOKEN.match(key, pos)
        if not m or (pos == 0 and key.startswith(".")):
            raise ExportError("bad key in parameters.csv", field="key", value=key,
                              allowed="dotted path with [index] / [\"quoted key\"] parts")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(json.loads(m.group(3)))
        pos = m.end()
    return parts


def _flatten(obj: Any, parts: list, rows: list) -> None:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            _flatten(v, [*parts, k], rows)
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            _flatten(v, [*parts, i], rows)
    else:
        rows.append((_key_path(parts), json.dumps(obj, allow_nan=False, ensure_ascii=False)))


def _unflatten(rows: Sequence[tuple[str, str]]) -> dict:
    root: dict = {}
    for key, value in rows:
        parts = _parse_key(key)
        node: Any = root
        for here, nxt in zip(parts[:-1], parts[1:]):
            child_type = list if isinstance(nxt, int) else dict
            node = _child(node, here, child_type, key)
        _set(node, parts[-1], json.loads(value), key)
    return root


def _child(node: Any, part: str | int, kind: type, key: str) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list) or part > len(node):
            raise ExportError("rows out of order in parameters.csv", field="key", value=key)
        if part == len(node):
            node.append(kind())
        return node[part]
    return node.setdefault(part, kind())


def _set(node: Any, part: str | int, value: Any, key: str) -> None:
    if isinstance(part, int):
        if not isinstance(node, list) or part != len(node):
            raise ExportError("rows out of order in parameters.csv", field="key", value=key)
        node.append(value)
    else:
        node[part] = value


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(rows)
    return buf.getvalue()


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", label)


def write_grid_csv(comp: Mapping, path: str | Path) -> Path:
    """Write a composition's grid (see :func:`viglas.analysis.export.grid_table`) as CSV;
    empty cell = undefined."""
    grid = {k: v for k, v in comp["grid"].items() if isinstance(v, list)}
    names = list(grid)
    rows = [names]
    for i in range(len(grid["t_K"])):
        row = []
        for n in names:
            v = grid[n][i]
            row.append("" if v is None else (int(v) if isinstance(v, bool) else repr(v)))
        rows.append(row)
    path = Path(path)
    path.write_text(_csv_text(rows), encoding="utf-8")
    return path


def _csv_paths(out: Path) -> tuple[Path, Path, str]:
    """(parameters file, folder for grids, grid file prefix) for a CSV export."""
    if out.suffix.lower() == ".csv":
        return out, out.parent, f"{out.stem}_grid_"
    return out / "parameters.csv", out, "grid_"


def write_csv_export(export: Mapping, out: Path) -> None:
    """Write ``export`` as ``parameters.csv`` (key path, JSON value) plus one grid CSV per
    composition. ``out``: a folder, or a ``.csv`` file name with the grid files beside
    it (``<stem>_grid_<label>.csv``)."""
    params, folder, prefix = _csv_paths(out)
    rows: list = []
    _flatten(export, [], rows)
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(_csv_text([("key", "value"), *rows]), encoding="utf-8")
    for comp in export["compositions"]:
        write_grid_csv(comp, folder / f"{prefix}{_safe(comp['label'])}.csv")


def read_parameters_csv(path: Path) -> Any:
    """The document stored in a ``parameters.csv`` written by :func:`write_csv_export`
    (exactly the numbers written; not yet validated)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0] != ["key", "value"]:
        raise ExportError("not a parameters CSV (header must be key,value)", field="path",
                          value=str(path), allowed="parameters.csv of a CSV export")
    return _unflatten([(r[0], r[1]) for r in rows[1:] if r])
