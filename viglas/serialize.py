"""Numbers and containers made JSON-ready: the one cleaning rule of viglas outputs.

:func:`finite` turns a value into a float or None (JSON has no NaN or infinity);
:func:`clean` applies it through dicts, lists, tuples and numpy arrays and turns numpy
integers into ints.
"""

from __future__ import annotations

import math
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


def clean(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays into lists/floats and NaN into None."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite(obj)
    return obj
