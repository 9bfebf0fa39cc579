"""Glass structure and glass transition.

* :func:`rdf` — partial radial distribution functions g_AB(r) averaged over frames.
* :func:`coordination_numbers` — mean number of B within a cutoff of A.
  (Both are :mod:`viglas.local_structure`, the one implementation, which the fit
  report of :mod:`viglas.potentials.validate` uses too.)
* :func:`bridging_oxygen` — fractions of O bonded to 0, 1, >= 2 network formers
  (free, non-bridging, bridging).
* :func:`network_clusters` — the M–O–M network (bonds by a cutoff per pair) as
  clusters with periodic images: each atom of a cluster gets an integer image
  offset while the cluster is grown; reaching an atom again with a different offset
  means the cluster wraps the cell (a periodic, *percolating* cluster) along the
  offset difference. Reports the largest-cluster fraction and whether it spans.
* :func:`fit_tg` — glass transition temperature from V(T) or E(T) of a quench by a
  continuous two-line (hinge) fit, with the covariance of the fit.
* :func:`fit_gibbs_dimarzio` — ``Tg(x) = ΔH / (ΔS + R ln(1 − x))`` over compositions.

Neighbour lists: :func:`ase.neighborlist.neighbor_list` (periodic, with shifts).
Units: Å, K, J/mol.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from viglas.analysis._records import DictRecord
from viglas.chemistry import FORMERS
from viglas.errors import AnalysisError, FitError
from viglas.local_structure import as_frames as _frames
from viglas.local_structure import coordination_numbers, rdf
from viglas.units import R_J_MOLK

__all__ = ["rdf", "coordination_numbers", "bridging_oxygen", "network_clusters", "NetworkResult",
           "TgFit", "fit_tg", "GibbsDiMarzioFit", "fit_gibbs_dimarzio", "DEFAULT_BOND_CUTOFFS"]

#: M–O bond cutoffs (Å), roughly the first minimum of g_MO in oxide/oxychloride glasses.
DEFAULT_BOND_CUTOFFS: dict[str, float] = {"Al-O": 2.3, "Ga-O": 2.4, "In-O": 2.7, "B-O": 1.9,
                                          "Al-Cl": 2.6, "Ga-Cl": 2.7, "In-Cl": 2.9, "B-Cl": 2.1}


def _pair_key(a: str, b: str) -> str:
    return f"{a}-{b}"


def _cutoff(cutoffs: Mapping[str, float] | None, a: str, b: str) -> float | None:
    c = dict(DEFAULT_BOND_CUTOFFS)
    if cutoffs:
        c.update(cutoffs)
    return c.get(_pair_key(a, b), c.get(_pair_key(b, a)))


def bridging_oxygen(atoms, formers: Iterable[str] = FORMERS,
                    cutoffs: Mapping[str, float] | None = None) -> dict[str, float]:
    """Fractions of O bonded to 0 (free), 1 (non-bridging) and >= 2 (bridging) formers,
    and among the bridging ones those bonded to >= 3 formers (``tricluster_O_fraction``,
    OM3 triclusters: the O of a denser, more connected network)."""
    from ase.neighborlist import neighbor_list

    formers = tuple(formers)
    tot = np.zeros(4)
    for at in _frames(atoms):
        syms = np.array(at.get_chemical_symbols())
        io = np.where(syms == "O")[0]
        if len(io) == 0:
            raise AnalysisError("no oxygen in the structure", field="species", value="O")
        rmax = max(_cutoff(cutoffs, m, "O") or 0.0 for m in formers)
        i, j, d = neighbor_list("ijd", at, rmax)
        m = syms[i] == "O"
        ok = np.zeros(len(i), bool)
        for f in formers:
            c = _cutoff(cutoffs, f, "O")
            if c:
                ok |= m & (syms[j] == f) & (d <= c)
        n = np.bincount(i[ok], minlength=len(at))[io]
        tot += [np.sum(n == 0), np.sum(n == 1), np.sum(n >= 2), np.sum(n >= 3)]
    f = tot / tot[:3].sum()
    return {"free_O_fraction": float(f[0]), "non_bridging_O_fraction": float(f[1]),
            "bridging_O_fraction": float(f[2]), "tricluster_O_fraction": float(f[3]),
            "n_O": int(tot[:3].sum())}


@dataclass
class NetworkResult:
    """M–O–M network clusters of one structure.

    cluster_sizes: atoms per cluster (formers + O), largest first;
    largest_cluster_fraction: largest cluster / all network atoms;
    largest_former_fraction: formers in the largest cluster / all formers;
    spans: whether the largest cluster wraps the cell; wrap_dimension: number of
    independent directions it wraps (0-3); any_spans: any cluster wraps.
    """

    n_network_atoms: int
    cluster_sizes: list[int]
    largest_cluster_fraction: float
    largest_former_fraction: float
    spans: bool
    wrap_dimension: int
    any_spans: bool
    formers: list[str] = field(default_factory=list)
    cutoffs_A: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def network_clusters(atoms, formers: Iterable[str] = FORMERS, anion: str = "O",
                     cutoffs: Mapping[str, float] | None = None) -> NetworkResult:
    """Clusters of the former–anion network with periodic images and wrap detection.

    Bonds: former–``anion`` pairs closer than the cutoff of that pair
    (:data:`DEFAULT_BOND_CUTOFFS`, overridable with ``cutoffs={"Al-O": 2.2}``).
    A cluster percolates when it is connected to its own periodic image, found by
    growing it breadth-first while carrying each atom's image offset.
    """
    from ase.neighborlist import neighbor_list

    syms = np.array(atoms.get_chemical_symbols())
    present = [f for f in formers if np.any(syms == f)]
    cut = {}
    for f in present:
        c = _cutoff(cutoffs, f, anion)
        if c is None:
            raise AnalysisError("no bond cutoff for this pair", field="cutoffs",
                                value=_pair_key(f, anion), hint="pass cutoffs={'X-O': r}")
        cut[_pair_key(f, anion)] = c
    net = np.isin(syms, present + [anion])
    n_net = int(net.sum())
    if not present or not np.any(syms == anion):
        return NetworkResult(n_network_atoms=n_net, cluster_sizes=[], largest_cluster_fraction=0.0,
                             largest_former_fraction=0.0, spans=False, wrap_dimension=0,
                             any_spans=False, formers=present, cutoffs_A=cut)
    rmax = max(cut.values())
    i, j, d, S = neighbor_list("ijdS", atoms, rmax)
    keep = np.zeros(len(i), bool)
    for f in present:
        c = cut[_pair_key(f, anion)]
        keep |= (((syms[i] == f) & (syms[j] == anion)) | ((syms[i] == anion) & (syms[j] == f))) & (d <= c)
    i, j, S = i[keep], j[keep], S[keep]
    order = np.argsort(i, kind="stable")
    i, j, S = i[order], j[order], S[order]
    start = np.searchsorted(i, np.arange(len(atoms) + 1))
    offset = np.zeros((len(atoms), 3), dtype=int)
    label = np.full(len(atoms), -1)
    sizes, wraps = [], []
    formers_in = []
    for seed in np.where(net)[0]:
        if label[seed] >= 0:
            continue
        cid = len(sizes)
        label[seed] = cid
        q = deque([seed])
        members = [seed]
        vecs = []
        while q:
            a = q.popleft()
            for k in range(start[a], start[a + 1]):
                b = j[k]
                ob = offset[a] + S[k]
                if label[b] < 0:
                    label[b] = cid
                    offset[b] = ob
                    members.append(b)
                    q.append(b)
                elif not np.array_equal(offset[b], ob):
                    vecs.append(ob - offset[b])
        sizes.append(len(members))
        rank = int(np.linalg.matrix_rank(np.array(vecs))) if vecs else 0
        wraps.append(rank)
        formers_in.append(int(np.isin(syms[members], present).sum()))
    order = np.argsort(sizes)[::-1]
    big = int(order[0])
    n_formers = int(np.isin(syms, present).sum())
    return NetworkResult(
        n_network_atoms=n_net, cluster_sizes=[int(sizes[k]) for k in order],
        largest_cluster_fraction=sizes[big] / n_net,
        largest_former_fraction=formers_in[big] / max(n_formers, 1), spans=wraps[big] > 0,
        wrap_dimension=int(wraps[big]), any_spans=any(w > 0 for w in wraps), formers=present,
        cutoffs_A=cut)


@dataclass
class TgFit(DictRecord):
    """Two-line (hinge) fit of a quench property y(T): glass slope below Tg, liquid above."""

    tg_K: float
    tg_err_K: float
    slope_glass: float
    slope_liquid: float
    y_at_tg: float
    cov: list[list[float]]
    n_points: int
    rss: float

    def predict(self, t_K):
        t = np.asarray(t_K, dtype=float)
        return np.where(t < self.tg_K, self.y_at_tg + self.slope_glass * (t - self.tg_K),
                        self.y_at_tg + self.slope_liquid * (t - self.tg_K))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_tg(temperature_K: Sequence[float], volume_or_energy: Sequence[float],
           min_points_per_branch: int = 3) -> TgFit:
    """Tg (K) from V(T) or E(T) of a quench by a continuous two-line fit.

    The breakpoint is first located by a grid scan of the residual sum of squares, then
    all four parameters (Tg, y(Tg), two slopes) are refined by least squares; the
    error on Tg is from the covariance scaled by the residual variance.
    """
    from scipy.optimize import curve_fit

    t = np.asarray(temperature_K, dtype=float)
    y = np.asarray(volume_or_energy, dtype=float)
    if len(t) != len(y):
        raise FitError("temperature and property have different lengths", field="volume_or_energy",
                       value=(len(t), len(y)))
    o = np.argsort(t)
    t, y = t[o], y[o]
    n = len(t)
    if n < 2 * min_points_per_branch + 1:
        raise FitError("too few points for a two-line Tg fit", field="temperature_K", value=n,
                       allowed=f">= {2 * min_points_per_branch + 1}")

    def hinge(tt, tg, y0, s1, s2):
        return np.where(tt < tg, y0 + s1 * (tt - tg), y0 + s2 * (tt - tg))

    best = None
    for k in range(min_points_per_branch, n - min_points_per_branch + 1):
        for tg in np.linspace(t[k - 1], t[min(k, n - 1)], 5):
            x1 = np.minimum(t - tg, 0)
            x2 = np.maximum(t - tg, 0)
            a = np.column_stack([np.ones(n), x1, x2])
            beta, *_ = np.linalg.lstsq(a, y, rcond=None)
            rss = float(np.sum((y - a @ beta) ** 2))
            if best is None or rss < best[0]:
                best = (rss, tg, beta)
    _, tg0, b0 = best
    try:
        p, c = curve_fit(hinge, t, y, p0=[tg0, b0[0], b0[1], b0[2]], maxfev=20000)
    except RuntimeError as exc:
        raise FitError("the two-line Tg fit did not converge", field="temperature_K",
                       value=n) from exc
    rss = float(np.sum((y - hinge(t, *p)) ** 2))
    if not (t[0] < p[0] < t[-1]) or not np.all(np.isfinite(c)):
        raise FitError("no kink in the data: Tg lies outside the temperature range",
                       field="temperature_K", value=[float(t[0]), float(t[-1])])
    return TgFit(tg_K=float(p[0]), tg_err_K=float(np.sqrt(c[0, 0])), slope_glass=float(p[2]),
                 slope_liquid=float(p[3]), y_at_tg=float(p[1]), cov=c.tolist(), n_points=n,
                 rss=rss)


@dataclass
class GibbsDiMarzioFit:
    """``Tg(x) = dh_J_mol / (ds_J_molK + R ln(1 - x))`` fitted over compositions."""

    dh_J_mol: float
    dh_err_J_mol: float
    ds_J_molK: float
    ds_err_J_molK: float
    cov: list[list[float]]
    n_points: int
    chi2_red: float

    def predict(self, x) -> tuple[Any, Any]:
        """Tg (K) and its 1-sigma error at fraction ``x`` (0 <= x < 1)."""
        x = np.asarray(x, dtype=float)
        den = self.ds_J_molK + R_J_MOLK * np.log1p(-x)
        tg = self.dh_J_mol / den
        g = np.stack([1.0 / den, -self.dh_J_mol / den**2], axis=-1)
        err = np.sqrt(np.einsum("...i,ij,...j->...", g, np.asarray(self.cov), g))
        return (float(tg), float(err)) if np.ndim(tg) == 0 else (tg, err)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_gibbs_dimarzio(x: Sequence[float], tg_K: Sequence[float],
                       tg_err_K: Sequence[float] | None = None) -> GibbsDiMarzioFit:
    """Fit the Gibbs–DiMarzio relation ``Tg = ΔH/(ΔS + R ln(1 − x))`` (x in [0, 1)).

    Linearised exactly: ``1/Tg = ΔS/ΔH + (R/ΔH) ln(1 − x)``, a weighted line in
    ``ln(1 − x)``, then refined by non-linear least squares in Tg.
    """
    from scipy.optimize import curve_fit

    xv = np.asarray(x, dtype=float)
    tg = np.asarray(tg_K, dtype=float)
    if len(xv) != len(tg) or len(xv) < 3:
        raise FitError("need >= 3 compositions with a Tg each", field="tg_K", value=len(tg))
    if np.any(xv < 0) or np.any(xv >= 1):
        raise FitError("x must be a fraction in [0, 1)", field="x", value=xv.tolist())
    e = np.asarray(tg_err_K, dtype=float) if tg_err_K is not None else np.ones_like(tg)
    lx = np.log1p(-xv)
    slope, icpt = np.polyfit(lx, 1.0 / tg, 1)
    dh0 = R_J_MOLK / slope if slope != 0 else 1e5
    ds0 = icpt * dh0

    def f(xx, dh, ds):
        return dh / (ds + R_J_MOLK * np.log1p(-xx))

    try:
        p, c = curve_fit(f, xv, tg, p0=[dh0, ds0], sigma=e, absolute_sigma=tg_err_K is not None,
                         maxfev=20000)
    except RuntimeError as exc:
        raise FitError("Gibbs-DiMarzio fit did not converge", field="tg_K", value=tg.tolist()) from exc
    chi2 = float(np.sum(((tg - f(xv, *p)) / e) ** 2))
    dof = max(len(xv) - 2, 1)
    if tg_err_K is not None and chi2 / dof > 1:
        c = c * chi2 / dof
    return GibbsDiMarzioFit(dh_J_mol=float(p[0]), dh_err_J_mol=float(np.sqrt(c[0, 0])),
                            ds_J_molK=float(p[1]), ds_err_J_molK=float(np.sqrt(c[1, 1])),
                            cov=c.tolist(), n_points=len(xv), chi2_red=chi2 / dof)
