"""Compile-on-first-use numba kernels: one helper, :func:`lazy_kernel`, for the H5MD
chunk readers of :mod:`viglas.trajectory`, the unwrap pass of :mod:`viglas.analysis.io`
and the ionic potential's kernels in :mod:`viglas.potentials.ionic_kernels`.

Importing this module imports neither numba nor jobflow: numba is imported on the
first call of a wrapped builder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_kernel"]


def lazy_kernel(build: Callable[[Any], Any] | None = None, *, remember_missing: bool = True):
    """Decorator for ``build(numba) -> jitted function``.

    The wrapped function takes no argument: its first call imports numba and calls
    ``build`` (numba caches the compiled code on disk); later calls return that same
    function. Without numba it returns None (callers then fall back to numpy/h5py).

    ``remember_missing`` (default True): a failed numba import is remembered, so later
    calls return None without trying again. With False (the ionic potential's kernels)
    every call made while numba is missing tries the import again. The wrapper keeps
    the choice as its attribute ``remember_missing``.

    Use as ``@lazy_kernel`` or ``@lazy_kernel(remember_missing=False)``, or call
    ``lazy_kernel(build)``.
    """
    if build is None:
        return functools.partial(lazy_kernel, remember_missing=remember_missing)

    done: list = []

    @functools.wraps(build)
    def get():
        if not done:
            try:
                import numba
            except ImportError:
                if not remember_missing:
                    return None
                done.append(None)
            else:
                done.append(build(numba))
        return done[0]

    get.remember_missing = remember_missing
    return get
