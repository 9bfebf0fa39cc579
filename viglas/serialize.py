"""Numbers and containers made JSON-ready: the one cleaning rule of viglas outputs.

:func:`finite` turns a value into a float or None (JSON has no NaN or infinity);
:func:`clean` applies it through mappings, lists, tuples and numpy arrays, turns numpy
booleans and integers into bools and ints, datetimes into ISO strings and pydantic models into dicts; with
``drop_meta`` it leaves out monty's ``@module``/``@class`` keys, with ``default`` it
maps any other object (e.g. ``str`` for documents read from a database).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

__all__ = ["finite", "clean"]


def finite(value: Any) -> float | None:
    """float(value) or None for None/NaN/inf (JSON has no NaN)."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def clean(obj: Any, *, drop_meta: bool = False,
          default: Callable[[Any], Any] | None = None, digits: int | None = None) -> Any:
    """Recursively turn numpy scalars/arrays into lists/floats and NaN into None.

    ``drop_meta``: leave out dict keys starting with ``@`` (monty's class markers).
    ``default``: applied to objects that are not None, str, int, bool, float, numpy
    numbers, containers, datetimes or pydantic models (kept as they are without it).
    ``digits``: round floats to this many decimals (``round``; None keeps them).
    """
    def rec(v: Any) -> Any:
        return clean(v, drop_meta=drop_meta, default=default, digits=digits)

    if isinstance(obj, Mapping):
        return {str(k): rec(v) for k, v in obj.items()
                if not (drop_meta and str(k).startswith("@"))}
    if isinstance(obj, (list, tuple)):
        return [rec(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return rec(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = finite(obj)
        return v if v is None or digits is None else round(v, digits)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):
        return rec(obj.model_dump(mode="json"))
    if default is not None and not (obj is None or isinstance(obj, (str, int, bool))):
        return default(obj)
    return obj
