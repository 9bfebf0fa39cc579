"""viglas.jit.lazy_kernel: the one compile-on-first-use helper (trajectory readers,
analysis unwrap pass, ionic potential kernels)."""

from __future__ import annotations

import sys

import pytest


def _counting_builder():
    calls = []

    def build(numba):
        calls.append(numba)
        return ("kernel", len(calls))

    return build, calls


def test_compiles_once_and_returns_the_same_kernel():
    from viglas.jit import lazy_kernel

    build, calls = _counting_builder()
    get = lazy_kernel(build)
    assert get() is get() and len(calls) == 1
    assert get.__name__ == "build"


@pytest.mark.parametrize("remember", [True, False])
def test_missing_numba(monkeypatch, remember):
    from viglas.jit import lazy_kernel

    build, calls = _counting_builder()
    get = lazy_kernel(remember_missing=remember)(build)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    assert get() is None and calls == []
    monkeypatch.undo()
    # remembered: stays None; not remembered: the import is tried again
    assert (get() is None) is remember
    assert len(calls) == (0 if remember else 1)


def test_every_lazy_kernel_uses_the_one_helper():
    import viglas.potentials.ionic_kernels as ik
    import viglas.trajectory as tr
    from viglas.jit import lazy_kernel

    assert tr.lazy_kernel is lazy_kernel
    assert not hasattr(ik, "_lazy_numba")
    # the potentials' kernels keep not remembering a missing numba
    for k in (ik.numba_pair_kernel, ik.numba_three_body_kernel, ik._numba_neighbours):
        assert k.remember_missing is False
    assert tr._fletcher32_kernel.remember_missing is True
    import viglas.potentials.delta as delta
    import viglas.potentials.delta_ace as delta_ace

    assert delta._build_kernel.remember_missing is False
    assert delta_ace._kernel.remember_missing is False
