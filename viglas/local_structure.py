"""Partial radial distribution functions and coordination numbers of periodic frames:
the one implementation.

:mod:`viglas.analysis.structure` re-exports both functions (trajectory analysis, the
makers); :mod:`viglas.potentials.validate` calls them for the fit report with its own
bins and cutoffs. They live in the core because ``viglas.potentials`` sits below the
core (the calculator registry imports it) and must not import ``viglas.analysis``.

Neighbour lists: :func:`matscipy.neighbours.neighbour_list` (periodic images, pairs
with ``d < cutoff``; same pairs as ASE's ``neighbor_list``, ~15x faster). Units: Å.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from viglas.errors import AnalysisError

__all__ = ["as_frames", "rdf", "coordination_numbers"]


def as_frames(atoms: Any) -> list:
    """``atoms`` as a list of frames: a list/tuple as it is, a single Atoms wrapped."""
    if isinstance(atoms, (list, tuple)):
        return list(atoms)
    return [atoms]


def rdf(atoms: Any, a: str, b: str, r_max: float = 8.0, n_bins: int = 160, *,
        edges: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Partial RDF g_ab(r) averaged over frames (``atoms`` an Atoms or a list).

    Pairs up to ``r_max`` (Å) are binned on ``edges`` (Å; default ``n_bins`` equal bins
    on [0, ``r_max``]). Normalised by the ideal-gas pair density summed over frames,
    ``N_a N_b / V`` (``N_a (N_a - 1) / V`` for a = b), so g -> 1 for an ideal gas.
    Returns ``(r_A, g)`` at bin centres. Raises :class:`AnalysisError` when a species is
    absent from a frame.
    """
    from matscipy.neighbours import neighbour_list as neighbor_list

    frames = as_frames(atoms)
    if edges is None:
        edges = np.linspace(0.0, r_max, n_bins + 1)
    edges = np.asarray(edges, dtype=float)
    hist = np.zeros(len(edges) - 1)
    norm = 0.0
    for at in frames:
        syms = np.array(at.get_chemical_symbols())
        ia = np.where(syms == a)[0]
        ib = np.where(syms == b)[0]
        if len(ia) == 0 or len(ib) == 0:
            raise AnalysisError("element not present for the RDF", field="species",
                                value=(a, b), allowed=", ".join(sorted(set(syms))))
        i, j, d = neighbor_list("ijd", at, r_max)
        m = (syms[i] == a) & (syms[j] == b)
        hist += np.histogram(d[m], bins=edges)[0]
        nb = len(ib) - (1 if a == b else 0)
        norm += len(ia) * nb / at.get_volume()
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = hist / (norm * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def coordination_numbers(atoms: Any, center: str, neighbor: str | Sequence[str],
                         cutoff: float | Mapping[str, float]) -> dict[str, Any]:
    """Mean, std and histogram of the number of ``neighbor`` atoms within ``cutoff`` Å
    of each ``center`` atom, over all frames (``atoms`` an Atoms or a list).

    ``neighbor`` may be several species and ``cutoff`` a mapping species -> Å (one
    cutoff each; a neighbour counts when ``d < cutoff[its species]``). Returns
    ``center``, ``neighbor``, ``cutoff_A`` (as given), ``mean``, ``std`` and
    ``histogram`` {n: number of centres with n neighbours}.
    """
    from matscipy.neighbours import neighbour_list as neighbor_list

    species = [neighbor] if isinstance(neighbor, str) else list(neighbor)
    if isinstance(cutoff, Mapping):
        cut = {s: float(cutoff[s]) for s in species}
    else:
        cut = {s: float(cutoff) for s in species}
    r_list = max(cut.values())
    counts = []
    for at in as_frames(atoms):
        syms = np.array(at.get_chemical_symbols())
        ic = np.where(syms == center)[0]
        if len(ic) == 0:
            raise AnalysisError("element not present", field="center", value=center,
                                allowed=", ".join(sorted(set(syms))))
        i, j, d = neighbor_list("ijd", at, r_list)
        ok = np.zeros(len(i), dtype=bool)
        for s, rc in cut.items():
            ok |= (syms[j] == s) & (d < rc)
        m = ok & (syms[i] == center)
        cn = np.bincount(i[m], minlength=len(at))[ic]
        counts.append(cn)
    c = np.concatenate(counts)
    hist = np.bincount(c)
    return {"center": center, "neighbor": neighbor, "cutoff_A": cutoff, "mean": float(c.mean()),
            "std": float(c.std()), "histogram": {int(k): int(v) for k, v in enumerate(hist) if v}}
