"""Ionic potential + a linear many-body correction fitted to DFT ("ionic+delta").

The rigid-ion form (:mod:`viglas.potentials.ionic`) cannot match PBE-D3 forces and
pressure at the same time on these glasses (docs/dft.md: held-out force R² ≤ 0.62).
This module adds to it a correction that is *linear in its coefficients*, so it is fitted
by one regularised least-squares solve on DFT energies, forces and stresses (the
approach of ultra-fast force fields, Xie et al., npj Comput. Mater. 9, 18 (2023), and
of linear ACE/SNAP), and evaluated by two short numba loops::

    E = E_ionic + sum_s n_s mu_s
      + sum_{i<j} s(r_ij) sum_k a_{t_i t_j, k} B_k(r_ij)                        (2-body)
      + sum_i F_{t_i}(rho_i)                                                    (embedding)
      + sum_i sum_{j<k in N(i)} g_ij g_ik sum_l b_{t_i, {t_j, t_k}, l} P_l(cos th_jik)  (3-body)

- ``mu_s``: one reference energy per element (DFT energies are absolute).
- 2-body: uniform cubic B-splines ``B_k`` of knot spacing ``h`` per element pair, from
  ``r_lo`` (just below the shortest distance of that pair in the training data) to the
  cutoff ``rc``; only basis functions that vanish with their first two derivatives at
  ``rc`` are kept, and ``s(r)`` (a C² smoothstep over ``[r_lo, r_lo + w]``) turns the
  correction off below ``r_lo``, so where there are no data only the physical ionic
  repulsion acts.
- embedding: ``F_t(rho_i)`` of the local density ``rho_i = sum_j (1 - r_ij/rc_e)^3``
  (EAM-like: pressure without pair forces), cubic B-splines that vanish with two
  derivatives at ``rho = 0`` (``emb_kmin = 3``: no constant part, so it cannot trade a
  constant with ``mu``) and 40 % above the largest density of the training data.
- 3-body: Legendre polynomials ``P_0 .. P_lmax`` of the bond angle at atom ``i`` between
  its first-shell neighbours (cation centre with anion neighbours, anion centre with
  cation neighbours) with the radial weight ``g(r) = (1 - r/r3)^3`` (C² at the cutoff
  ``r3`` of that element pair). ``l = 0`` is a pairwise product of coordinations: the
  term is many-body (bond-order-like) as well as angular.

Forces and stress are the exact derivatives (tested against finite differences).
Everything a fit needs (the design rows of energy, forces and virial) comes from the
same kernel as the evaluation, so the fitted model is the one that runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from viglas.chemistry import ANIONS as _CHEM_ANIONS
from viglas.errors import CalculatorError, FitError

#: Neighbour channels of the ACE block (see viglas.potentials.delta_ace.neighbour_mask).
ACE_PAIRS = ("opposite", "all")
from viglas.jit import lazy_kernel

#: File format tag of a fitted ionic+delta model.
DELTA_SCHEMA = "viglas-ionic-delta/1"

#: Ionic radii (Å; Shannon, common coordination: Li and Na six-fold, unlike the
#: four-fold ones of structures.geometry that place atoms) that set only this model's
#: first-shell cutoff of the 3-body term, r3 = r_cation + r_anion + R3_MARGIN. They are
#: part of the fitted form (stored per pair in every model file as ``r3_A``).
SHELL_RADII = {"Li": 0.76, "Na": 1.02, "K": 1.38, "Mg": 0.72, "Al": 0.535, "Ga": 0.62,
               "In": 0.80, "B": 0.11, "Si": 0.40, "P": 0.17, "Zn": 0.74,
               "O": 1.40, "Cl": 1.81, "F": 1.33, "S": 1.84, "Br": 1.96, "I": 2.20}
ANIONS = frozenset(_CHEM_ANIONS)  # the one anion table (viglas.chemistry)
R3_MARGIN = 0.6


# ---------------------------------------------------------------- the model
@dataclass
class DeltaModel:
    """Geometry of the correction (species, ranges, basis sizes) and its coefficients.

    ``species``: element symbols (type index = position). ``pair_lo[a][b]`` (Å, symmetric,
    0 = no 2-body term for that pair), ``rc`` (Å), ``h`` (knot spacing, Å), ``w`` (switch
    width, Å), ``r3[a][b]`` (3-body neighbour cutoff, Å, 0 = not a neighbour), ``lmax``.
    ``coef``: all coefficients in the order of :meth:`layout` (eV).
    """

    species: list[str]
    pair_lo: np.ndarray
    rc: float = 5.5
    h: float = 0.25
    w: float = 0.3
    r3: np.ndarray | None = None
    lmax: int = 4
    coef: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    emb_rc: float = 0.0
    emb_nk: int = 0
    emb_hi: np.ndarray | None = None
    emb_kmin: int = 0
    ace_rc: float = 0.0
    ace_r0: float = 1.0
    ace_nr: int = 4
    ace_pmax: int = 3
    ace_pairs: str = "opposite"
    ace_blocks: list | None = None
    #: radial distance transform of the ACE splines (1/Å): 0 = splines uniform in r;
    #: > 0 = uniform in 1 - exp(-kappa (r - r0)), finer in the first shell
    ace_kappa: float = 0.0
    #: per element pair start of the ACE radial range (Å, symmetric, 0 = ``ace_r0``);
    #: None = ``ace_r0`` for every pair
    ace_r0_pair: np.ndarray | None = None
    #: field-squared term (:mod:`viglas.potentials.delta_field`): cutoff (Å, 0 = off)
    #: and Tang–Toennies damping (1/Å); one coefficient per element
    field_rc: float = 0.0
    field_b: float = 1.8

    def __post_init__(self) -> None:
        n = len(self.species)
        self.pair_lo = np.asarray(self.pair_lo, float).reshape(n, n)
        if self.r3 is None:
            self.r3 = default_r3(self.species)
        self.r3 = np.asarray(self.r3, float).reshape(n, n)
        self.emb_hi = (np.zeros(n) if self.emb_hi is None
                       else np.asarray(self.emb_hi, float).reshape(n))
        if self.ace_r0_pair is not None:
            self.ace_r0_pair = np.asarray(self.ace_r0_pair, float).reshape(n, n)
        if self.rc <= 0 or self.h <= 0 or self.w < 0 or self.lmax < 0:
            raise FitError("bad delta geometry", field="rc/h/w/lmax",
                           value=(self.rc, self.h, self.w, self.lmax),
                           allowed="rc > 0, h > 0, w >= 0, lmax >= 0")
        self._check_ace()
        self._build_layout()
        if self.coef is not None:
            self.coef = np.asarray(self.coef, float)
            if self.coef.shape != (self.n_coef,):
                raise FitError("coefficient vector has the wrong length", field="coef",
                               value=len(self.coef), allowed=str(self.n_coef))

    def _check_ace(self) -> None:
        """The ACE block's settings, checked before they shape the column layout: an
        unknown ``pairs`` value would otherwise act as "opposite" without a word."""
        if self.ace_pairs not in ACE_PAIRS:
            raise FitError("unknown ACE neighbour channels", field="ace_pairs",
                           value=self.ace_pairs, allowed=", ".join(ACE_PAIRS),
                           hint="'opposite': cation-anion pairs only; 'all': every pair")
        if self.ace_rc < 0:
            raise FitError("ACE cutoff must be >= 0 (0 = no ACE block)", field="ace_rc",
                           value=self.ace_rc)
        if not self.ace_kappa >= 0:
            raise FitError("ACE radial transform must be >= 0 (0 = uniform splines)",
                           field="ace_kappa", value=self.ace_kappa,
                           allowed=">= 0 1/Å (e.g. 0.5-1)")
        if self.ace_rc == 0:
            return
        for name, value, low in (("ace_nr", self.ace_nr, 1), ("ace_pmax", self.ace_pmax, 0)):
            if int(value) != value or value < low:
                raise FitError(f"must be an integer >= {low}", field=name, value=value)
        if not 0 < self.ace_r0 < self.ace_rc:
            raise FitError("ACE radial range must satisfy 0 < r0 < rc", field="ace_r0",
                           value=self.ace_r0, allowed=f"0 < r0 < {self.ace_rc:g} (ace_rc)")
        r0t = self.ace_r0_table
        if np.any(r0t >= self.ace_rc) or np.any(r0t <= 0):
            raise FitError("ACE pair radial range must satisfy 0 < r0 < rc",
                           field="ace_r0_pair", value=float(r0t.max()),
                           allowed=f"0 < r0 < {self.ace_rc:g} (ace_rc)")

    # column layout: [mu (n species)] [pair splines] [3-body]
    def _build_layout(self) -> None:
        n = len(self.species)
        nk = np.zeros((n, n), np.int64)
        off = np.zeros((n, n), np.int64)
        col = n
        for a in range(n):
            for b in range(a, n):
                lo = self.pair_lo[a, b]
                k = int(math.floor((self.rc - lo) / self.h + 1e-9)) if lo > 0 else 0
                k = max(k, 0)
                nk[a, b] = nk[b, a] = k
                off[a, b] = off[b, a] = col
                col += k
        self.pair_nk, self.pair_off = nk, off
        # 3-body: centre c, neighbour types u <= v (both neighbours of c)
        toff = -np.ones((n, n, n), np.int64)
        nl = self.lmax + 1
        for c in range(n):
            nb = [u for u in range(n) if self.r3[c, u] > 0]
            for x, u in enumerate(nb):
                for v in nb[x:]:
                    toff[c, u, v] = toff[c, v, u] = col
                    col += nl
        self.tb_off = toff
        # embedding F_t(rho_i): emb_nk splines per centre element (if emb_hi > 0)
        eoff = -np.ones(n, np.int64)
        if self.emb_rc > 0 and self.emb_nk > 0:
            for t in range(n):
                if self.emb_hi[t] > 0:
                    eoff[t] = col
                    col += self.emb_nk
        self.emb_off = eoff
        # field-squared term: one column per element (before ACE, which stays last)
        self.field_off = -1
        if self.use_field:
            from viglas.potentials.delta_field import charges_of

            self.field_q = charges_of(self.species)
            self.field_off = col
            col += n
        # body-order-3 ACE block (delta_ace): (centre, s1 <= s2) blocks present in data
        from viglas.potentials import delta_ace

        self.ace_blocks = sorted(tuple(int(x) for x in b) for b in (self.ace_blocks or []))
        self.ace_mask = delta_ace.neighbour_mask(self.species, ANIONS, self.ace_pairs)
        if self.ace_rc > 0 and self.ace_blocks:
            self.ace_off, col = delta_ace.layout(self.ace_blocks, n, self.ace_nr,
                                                 self.ace_pmax, col)
        else:
            self.ace_off = -np.ones((n, n, n), np.int64)
        self.n_coef = col

    def labels(self) -> list[str]:
        """A readable name for every coefficient (same order as ``coef``)."""
        sp = self.species
        out = [f"mu[{s}]" for s in sp]
        n = len(sp)
        for a in range(n):
            for b in range(a, n):
                out += [f"pair[{sp[a]}-{sp[b]}][{k}]" for k in range(self.pair_nk[a, b])]
        for c in range(n):
            nb = [u for u in range(n) if self.r3[c, u] > 0]
            for x, u in enumerate(nb):
                for v in nb[x:]:
                    out += [f"3b[{sp[u]}-{sp[c]}-{sp[v]}][P{l}]" for l in range(self.lmax + 1)]
        for t in range(n):
            if self.emb_off[t] >= 0:
                out += [f"emb[{sp[t]}][{k}]" for k in range(self.emb_nk)]
        if self.use_field:
            out += [f"field[{s}]" for s in sp]
        if self.use_ace:
            from viglas.potentials.delta_ace import block_labels

            out += block_labels(sp, self.ace_blocks, self.ace_nr, self.ace_pmax)
        return out

    @property
    def ace_r0_table(self) -> np.ndarray:
        """Start (Å) of the ACE radial range for every element pair."""
        n = len(self.species)
        t = np.full((n, n), float(self.ace_r0))
        if self.ace_r0_pair is not None:
            t = np.where(self.ace_r0_pair > 0, self.ace_r0_pair, t)
        return np.ascontiguousarray(t)

    @property
    def use_ace(self) -> bool:
        return self.ace_rc > 0 and bool(self.ace_blocks)

    @property
    def use_field(self) -> bool:
        return self.field_rc > 0

    @property
    def cutoff(self) -> float:
        return max(self.rc, float(self.r3.max(initial=0.0)), self.emb_rc, self.ace_rc,
                   self.field_rc)

    def types_of(self, symbols) -> np.ndarray:
        idx = {s: k for k, s in enumerate(self.species)}
        missing = sorted(set(symbols) - set(idx))
        if missing:
            raise CalculatorError("element not covered by the delta model",
                                  field="atoms", value=missing,
                                  allowed=", ".join(self.species))
        return np.array([idx[s] for s in symbols], np.int64)

    # ------------------------------------------------------------- file format
    def to_dict(self) -> dict[str, Any]:
        sp = self.species
        n = len(sp)
        return {
            "schema": DELTA_SCHEMA,
            "species": list(sp),
            "rc_A": self.rc, "h_A": self.h, "w_A": self.w, "lmax": self.lmax,
            "pair_lo_A": {f"{sp[a]}-{sp[b]}": float(self.pair_lo[a, b])
                          for a in range(n) for b in range(a, n) if self.pair_lo[a, b] > 0},
            "r3_A": {f"{sp[a]}-{sp[b]}": float(self.r3[a, b])
                     for a in range(n) for b in range(a, n) if self.r3[a, b] > 0},
            "emb_rc_A": self.emb_rc, "emb_nk": self.emb_nk, "emb_kmin": self.emb_kmin,
            "emb_hi": {sp[t]: float(self.emb_hi[t]) for t in range(n) if self.emb_hi[t] > 0},
            **({"ace": {"rc_A": self.ace_rc, "r0_A": self.ace_r0, "nr": self.ace_nr,
                        "pmax": self.ace_pmax, "pairs": self.ace_pairs,
                        **({"kappa_per_A": self.ace_kappa} if self.ace_kappa else {}),
                        **({"r0_pair_A": {
                            f"{sp[a]}-{sp[b]}": float(self.ace_r0_pair[a, b])
                            for a in range(n) for b in range(a, n)
                            if self.ace_r0_pair[a, b] > 0}}
                           if self.ace_r0_pair is not None else {}),
                        "blocks": [[sp[c], sp[a], sp[b]] for c, a, b in self.ace_blocks]}}
               if self.use_ace else {}),
            **({"field": {"rc_A": self.field_rc, "b_per_A": self.field_b,
                          "charges_e": {x: float(q) for x, q in zip(sp, self.field_q)}}}
               if self.use_field else {}),
            "coef_eV": None if self.coef is None else [float(x) for x in self.coef],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeltaModel:
        if d.get("schema") != DELTA_SCHEMA:
            raise FitError("not a delta model", field="schema", value=d.get("schema"),
                           allowed=DELTA_SCHEMA)
        sp = list(d["species"])
        n = len(sp)
        idx = {s: k for k, s in enumerate(sp)}

        def table_of(entries):
            t = np.zeros((n, n))
            for name, v in entries.items():
                a, b = name.split("-")
                t[idx[a], idx[b]] = t[idx[b], idx[a]] = float(v)
            return t

        def table(key):
            return table_of(d.get(key, {}))

        if d.get("field"):  # the field's charges are the formal ones; a file that says
            # otherwise was made by other code and would be evaluated wrongly
            from viglas.potentials.delta_field import charges_of

            want = dict(zip(sp, charges_of(sp).tolist()))
            got = {k: float(v) for k, v in d["field"].get("charges_e", want).items()}
            if got != want:
                raise FitError("field-term charges differ from the formal charges",
                               field="field.charges_e", value=got, allowed=str(want))

        return cls(species=sp, pair_lo=table("pair_lo_A"), rc=float(d["rc_A"]),
                   h=float(d["h_A"]), w=float(d["w_A"]), r3=table("r3_A"),
                   lmax=int(d["lmax"]), coef=d.get("coef_eV"), meta=d.get("meta", {}),
                   emb_rc=float(d.get("emb_rc_A", 0.0)), emb_nk=int(d.get("emb_nk", 0)),
                   emb_hi=[float(d.get("emb_hi", {}).get(x, 0.0)) for x in sp],
                   emb_kmin=int(d.get("emb_kmin", 0)),
                   **({"ace_rc": float(d["ace"]["rc_A"]), "ace_r0": float(d["ace"]["r0_A"]),
                       "ace_nr": int(d["ace"]["nr"]), "ace_pmax": int(d["ace"]["pmax"]),
                       "ace_pairs": str(d["ace"]["pairs"]),
                       "ace_kappa": float(d["ace"].get("kappa_per_A", 0.0)),
                       "ace_r0_pair": (table_of(d["ace"]["r0_pair_A"])
                                       if "r0_pair_A" in d["ace"] else None),
                       "ace_blocks": [[idx[c], idx[a], idx[b]] for c, a, b in d["ace"]["blocks"]]}
                      if d.get("ace") else {}),
                   **({"field_rc": float(d["field"]["rc_A"]),
                       "field_b": float(d["field"]["b_per_A"])} if d.get("field") else {}))


def default_r3(species: list[str], margin: float = R3_MARGIN) -> np.ndarray:
    """First-shell cutoffs (Å): cation–anion pairs only (sum of radii + margin)."""
    n = len(species)
    t = np.zeros((n, n))
    for a, sa in enumerate(species):
        for b, sb in enumerate(species):
            if (sa in ANIONS) != (sb in ANIONS) and sa in SHELL_RADII and sb in SHELL_RADII:
                t[a, b] = SHELL_RADII[sa] + SHELL_RADII[sb] + margin
    return t


# ---------------------------------------------------------------- numba kernels
@lazy_kernel(remember_missing=False)
def _build_kernel(numba):
    from viglas.potentials.delta_ace import kernel_helpers, require_kernel

    bspline, _, _, pair_add, pair_vector = require_kernel(kernel_helpers())

    @numba.njit(cache=True, nogil=True)
    def kernel(pos, cell, ii, jj, SS, types, pair_lo, pair_nk, pair_off, rc, h, w,
               r3, tb_off, lmax, emb_rc, emb_nk, emb_hi, emb_off, emb_kmin,
               coef, fit, efeat, ffeat, vfeat, forces, virial):
        """fit=True: add design rows (efeat[P], ffeat[N,3,P] = -dE/dx, vfeat[6,P]);
        fit=False: add energy (returned), forces and virial (3x3) with ``coef``."""
        n = pos.shape[0]
        energy = 0.0
        for t in range(types.shape[0]):  # reference energies
            if fit:
                efeat[types[t]] += 1.0
            else:
                energy += coef[types[t]]
        # neighbour vectors for the 3-body part, both directions
        maxnb = 64
        nb_cnt = np.zeros(n, np.int64)
        nb_j = np.empty((n, maxnb), np.int64)
        nb_d = np.empty((n, maxnb, 3))
        overflow = False
        rc2 = rc * rc
        rho = np.zeros(n)
        use_emb = emb_rc > 0.0 and emb_nk > 0
        npair = ii.shape[0]
        pd = np.empty((npair, 4)) if use_emb else np.empty((0, 4))
        for p in range(npair):
            i = ii[p]
            j = jj[p]
            d0, d1, d2 = pair_vector(pos, cell, SS, p, i, j)
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            ti = types[i]
            tj = types[j]
            r = math.sqrt(r2)
            if use_emb:
                pd[p, 0] = d0
                pd[p, 1] = d1
                pd[p, 2] = d2
                pd[p, 3] = r
                if r < emb_rc:
                    q = 1.0 - r / emb_rc
                    rho[i] += q * q * q
                    rho[j] += q * q * q
            if r3[ti, tj] > 0.0 and r < r3[ti, tj]:
                if nb_cnt[i] < maxnb and nb_cnt[j] < maxnb:
                    c = nb_cnt[i]
                    nb_j[i, c] = j
                    nb_d[i, c, 0] = d0
                    nb_d[i, c, 1] = d1
                    nb_d[i, c, 2] = d2
                    nb_cnt[i] = c + 1
                    c = nb_cnt[j]
                    nb_j[j, c] = i
                    nb_d[j, c, 0] = -d0
                    nb_d[j, c, 1] = -d1
                    nb_d[j, c, 2] = -d2
                    nb_cnt[j] = c + 1
                else:
                    overflow = True
            if r2 >= rc2:
                continue
            nk = pair_nk[ti, tj]
            if nk == 0:
                continue
            lo = pair_lo[ti, tj]
            if r <= lo:
                continue
            # smoothstep switch on [lo, lo + w]
            if w > 0.0 and r < lo + w:
                x = (r - lo) / w
                s = x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)
                ds = 30.0 * x * x * (1.0 - x) * (1.0 - x) / w
            else:
                s = 1.0
                ds = 0.0
            base = pair_off[ti, tj]
            # basis k has support [lo + (k-3) h, lo + (k+1) h]
            u = (r - lo) / h
            kmin = int(math.floor(u)) - 0
            for k in range(max(0, kmin - 0), min(nk, kmin + 4)):
                b, db = bspline(u - (k - 3))
                if b == 0.0 and db == 0.0:
                    continue
                val = s * b
                dval = ds * b + s * db / h  # dE/dr per unit coefficient
                g0 = dval * d0 / r
                g1 = dval * d1 / r
                g2 = dval * d2 / r
                col = base + k
                if fit:
                    efeat[col] += val
                else:
                    energy += coef[col] * val
                pair_add(fit, col, coef, i, j, g0, g1, g2, d0, d1, d2, ffeat, vfeat,
                         forces, virial)
        # embedding: E = sum_i F_t(rho_i), F = sum_m c_m B_m(rho / he), he = hi / nk
        if use_emb:
            m0 = np.zeros(n, np.int64)
            dB = np.zeros((n, 4))  # dF/drho per unit coefficient of the 4 live splines
            for i in range(n):
                ti = types[i]
                if emb_off[ti] < 0:
                    continue
                he = emb_hi[ti] / emb_nk
                u = rho[i] / he
                k0 = int(math.floor(u))
                m0[i] = k0
                for q in range(4):
                    k = k0 + q
                    if k < emb_kmin or k >= emb_nk:
                        continue
                    b, db = bspline(u - (k - 3))
                    dB[i, q] = db / he
                    col = emb_off[ti] + k
                    if fit:
                        efeat[col] += b
                    else:
                        energy += coef[col] * b
            for p in range(npair):
                r = pd[p, 3]
                if r >= emb_rc:
                    continue
                i = ii[p]
                j = jj[p]
                q1 = 1.0 - r / emb_rc
                dphi = -3.0 * q1 * q1 / emb_rc
                d0 = pd[p, 0]
                d1 = pd[p, 1]
                d2 = pd[p, 2]
                for side in range(2):
                    a_ = i if side == 0 else j
                    ta = types[a_]
                    if emb_off[ta] < 0:
                        continue
                    for q in range(4):
                        k = m0[a_] + q
                        if k < emb_kmin or k >= emb_nk or dB[a_, q] == 0.0:
                            continue
                        dval = dB[a_, q] * dphi
                        g0 = dval * d0 / r
                        g1 = dval * d1 / r
                        g2 = dval * d2 / r
                        col = emb_off[ta] + k
                        pair_add(fit, col, coef, i, j, g0, g1, g2, d0, d1, d2, ffeat,
                                 vfeat, forces, virial)
        # 3-body
        nl = lmax + 1
        P = np.empty(nl)
        dP = np.empty(nl)
        for i in range(n):
            ti = types[i]
            m = nb_cnt[i]
            for x in range(m):
                j = nb_j[i, x]
                tj = types[j]
                a0 = nb_d[i, x, 0]
                a1 = nb_d[i, x, 1]
                a2 = nb_d[i, x, 2]
                ra = math.sqrt(a0 * a0 + a1 * a1 + a2 * a2)
                qa = 1.0 - ra / r3[ti, tj]
                ga = qa * qa * qa
                dga = -3.0 * qa * qa / r3[ti, tj]
                for y in range(x + 1, m):
                    k = nb_j[i, y]
                    tk = types[k]
                    col0 = tb_off[ti, tj, tk]
                    if col0 < 0:
                        continue
                    b0 = nb_d[i, y, 0]
                    b1 = nb_d[i, y, 1]
                    b2 = nb_d[i, y, 2]
                    rb = math.sqrt(b0 * b0 + b1 * b1 + b2 * b2)
                    qb = 1.0 - rb / r3[ti, tk]
                    gb = qb * qb * qb
                    dgb = -3.0 * qb * qb / r3[ti, tk]
                    cs = (a0 * b0 + a1 * b1 + a2 * b2) / (ra * rb)
                    P[0] = 1.0
                    dP[0] = 0.0
                    if lmax >= 1:
                        P[1] = cs
                        dP[1] = 1.0
                    for l in range(1, lmax):
                        P[l + 1] = ((2 * l + 1) * cs * P[l] - l * P[l - 1]) / (l + 1)
                        dP[l + 1] = dP[l - 1] + (2 * l + 1) * P[l]
                    gg = ga * gb
                    # d cos / d a  and  d cos / d b
                    ca0 = b0 / (ra * rb) - cs * a0 / (ra * ra)
                    ca1 = b1 / (ra * rb) - cs * a1 / (ra * ra)
                    ca2 = b2 / (ra * rb) - cs * a2 / (ra * ra)
                    cb0 = a0 / (ra * rb) - cs * b0 / (rb * rb)
                    cb1 = a1 / (ra * rb) - cs * b1 / (rb * rb)
                    cb2 = a2 / (ra * rb) - cs * b2 / (rb * rb)
                    for l in range(nl):
                        val = gg * P[l]
                        # dE/da, dE/db per unit coefficient
                        fa = dga * gb * P[l] / ra
                        fb = ga * dgb * P[l] / rb
                        q = gg * dP[l]
                        ea0 = fa * a0 + q * ca0
                        ea1 = fa * a1 + q * ca1
                        ea2 = fa * a2 + q * ca2
                        eb0 = fb * b0 + q * cb0
                        eb1 = fb * b1 + q * cb1
                        eb2 = fb * b2 + q * cb2
                        col = col0 + l
                        if fit:
                            efeat[col] += val
                            # a = x_j - x_i, b = x_k - x_i ; force = -dE/dx
                            ffeat[j, 0, col] -= ea0
                            ffeat[j, 1, col] -= ea1
                            ffeat[j, 2, col] -= ea2
                            ffeat[k, 0, col] -= eb0
                            ffeat[k, 1, col] -= eb1
                            ffeat[k, 2, col] -= eb2
                            ffeat[i, 0, col] += ea0 + eb0
                            ffeat[i, 1, col] += ea1 + eb1
                            ffeat[i, 2, col] += ea2 + eb2
                            vfeat[0, col] += a0 * ea0 + b0 * eb0
                            vfeat[1, col] += a1 * ea1 + b1 * eb1
                            vfeat[2, col] += a2 * ea2 + b2 * eb2
                            vfeat[3, col] += a1 * ea2 + b1 * eb2
                            vfeat[4, col] += a0 * ea2 + b0 * eb2
                            vfeat[5, col] += a0 * ea1 + b0 * eb1
                        else:
                            cf = coef[col]
                            energy += cf * val
                            forces[j, 0] -= cf * ea0
                            forces[j, 1] -= cf * ea1
                            forces[j, 2] -= cf * ea2
                            forces[k, 0] -= cf * eb0
                            forces[k, 1] -= cf * eb1
                            forces[k, 2] -= cf * eb2
                            forces[i, 0] += cf * (ea0 + eb0)
                            forces[i, 1] += cf * (ea1 + eb1)
                            forces[i, 2] += cf * (ea2 + eb2)
                            virial[0, 0] += cf * (a0 * ea0 + b0 * eb0)
                            virial[0, 1] += cf * (a0 * ea1 + b0 * eb1)
                            virial[0, 2] += cf * (a0 * ea2 + b0 * eb2)
                            virial[1, 0] += cf * (a1 * ea0 + b1 * eb0)
                            virial[1, 1] += cf * (a1 * ea1 + b1 * eb1)
                            virial[1, 2] += cf * (a1 * ea2 + b1 * eb2)
                            virial[2, 0] += cf * (a2 * ea0 + b2 * eb0)
                            virial[2, 1] += cf * (a2 * ea1 + b2 * eb1)
                            virial[2, 2] += cf * (a2 * ea2 + b2 * eb2)
        return energy, overflow

    return kernel


def _kernel():
    from viglas.potentials.delta_ace import require_kernel

    return require_kernel(_build_kernel())


_MONO: dict = {}


def _pairs(model: DeltaModel, pos: np.ndarray, cell: np.ndarray, cutoff: float | None = None):
    from viglas.potentials.ionic import half_neighbour_list

    return half_neighbour_list(pos, cell, cutoff or model.cutoff)


def _call(model: DeltaModel, atoms, fit: bool, nl=None, types=None):
    pos = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    cell = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
    if types is None:
        types = model.types_of(atoms.get_chemical_symbols())
    i, j, S = nl if nl is not None else _pairs(model, pos, cell)
    n = len(atoms)
    P = model.n_coef
    if fit:
        ef, ff, vf = np.zeros(P), np.zeros((n, 3, P)), np.zeros((6, P))
        f, v = np.zeros((1, 3)), np.zeros((3, 3))
        coef = np.zeros(1)
    else:
        ef, ff, vf = np.zeros(1), np.zeros((1, 1, 1)), np.zeros((1, 1))
        f, v = np.zeros((n, 3)), np.zeros((3, 3))
        coef = model.coef
    e, overflow = _kernel()(pos, cell, i, j, np.ascontiguousarray(S, dtype=np.int64), types,
                            model.pair_lo, model.pair_nk, model.pair_off, model.rc, model.h,
                            model.w, model.r3, model.tb_off, model.lmax, float(model.emb_rc),
                            int(model.emb_nk), model.emb_hi, model.emb_off,
                            int(model.emb_kmin), coef, fit,
                            ef, ff, vf, f, v)
    if model.use_ace:
        from viglas.potentials.delta_ace import kernel as ace_kernel, lowered, monomials

        mono = _MONO.get(model.ace_pmax)
        if mono is None:  # built once per pmax, not at every MD step
            ex, deg, wm = monomials(model.ace_pmax)
            mono = _MONO[model.ace_pmax] = (ex, deg, wm, lowered(ex))
        ex, deg, wm, low = mono
        e += ace_kernel()(pos, cell, i, j, np.ascontiguousarray(S, dtype=np.int64), types,
                          len(model.species), model.ace_mask, model.ace_off,
                          model.ace_r0_table, float(model.ace_rc), int(model.ace_nr),
                          int(model.ace_pmax), float(model.ace_kappa), ex, deg, wm, low, coef,
                          fit, ef, ff, vf, f, v)
    if model.use_field:
        from viglas.potentials.delta_field import kernel as field_kernel

        e += field_kernel()(pos, cell, i, j, np.ascontiguousarray(S, dtype=np.int64), types,
                            model.field_q, float(model.field_rc), float(model.field_b),
                            int(model.field_off), coef, fit, ef, ff, vf, f, v)
    if overflow:
        raise CalculatorError("more than 64 first-shell neighbours on one atom",
                              field="positions", value=len(atoms),
                              allowed="a physical structure (atoms collapsed?)")
    return e, (ef, ff, vf) if fit else (f, v)


def design_rows(model: DeltaModel, atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Design rows of one frame: energy (P,), forces (N, 3, P) and stress (6, P; eV/Å³,
    ASE sign and Voigt order) per unit coefficient."""
    _, (ef, ff, vf) = _call(model, atoms, True)
    return ef, ff, vf / atoms.get_volume()


def evaluate(model: DeltaModel, atoms, nl=None, types=None
             ) -> tuple[float, np.ndarray, np.ndarray]:
    """Correction energy (eV), forces (eV/Å) and stress (Voigt, eV/Å³) of ``atoms``
    (``nl``: a half list ``(i, j, S)``, ``types``: :meth:`DeltaModel.types_of`, both
    computed here when not given)."""
    if model.coef is None:
        raise FitError("the delta model has no coefficients", field="coef", value=None,
                       allowed="a fitted model (scripts/fit_dft.py --form delta)")
    e, (f, v) = _call(model, atoms, False, nl, types)
    vol = atoms.get_volume()
    s = v / vol
    stress = np.array([s[0, 0], s[1, 1], s[2, 2], 0.5 * (s[1, 2] + s[2, 1]),
                       0.5 * (s[0, 2] + s[2, 0]), 0.5 * (s[0, 1] + s[1, 0])])
    return float(e), f, stress


# ---------------------------------------------------------------- calculator
class DeltaIonicPotential(Calculator):
    """The ionic potential plus a fitted :class:`DeltaModel` correction (ASE calculator).

    ``model``: a :class:`DeltaModel`, a dict in the ``viglas-ionic-delta/1`` layout or a
    path to such a JSON file; its ``baseline`` (an ionic parameter set: inline dict,
    path or shipped name) is built as :class:`~viglas.potentials.ionic.IonicPotential`.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    nolabel = True

    def __init__(self, model: DeltaModel | dict | str | Path, *, skin: float = 1.0,
                 **kwargs):
        super().__init__(**kwargs)
        from viglas.potentials.ionic import IonicPotential

        d = load_delta_file(model) if isinstance(model, (str, Path)) else model
        self.acemlp = None  # an optional nonlinear correction on top (viglas.potentials.acemlp)
        acemlp = d.get("acemlp") if isinstance(d, dict) else None
        if acemlp is not None:
            from viglas.potentials.acemlp import ACEMLPModel

            self.acemlp = ACEMLPModel(acemlp)
        if isinstance(d, dict):
            baseline = d.get("baseline")
            d = DeltaModel.from_dict(d["delta"] if "delta" in d else d)
        else:
            baseline = d.meta.get("baseline")
        self.model: DeltaModel = d
        self.baseline = IonicPotential(baseline, skin=skin)
        ident = {"schema": DELTA_SCHEMA, "baseline": self.baseline.params.model_dump(mode="json"),
                 "delta": d.to_dict()}
        if self.acemlp is not None:  # its identity: the hash of its arrays, not the arrays
            ident["acemlp"] = self.acemlp.identity()
        self.params = _Identity(ident)
        self.skin = float(skin)
        self._nl = None
        # (numbers, delta types, ACE-MLP types or None), rebuilt when the numbers change
        self._types: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self.delta_energy = 0.0

    def _list(self, pos, cell):
        """Verlet list at cutoff + skin, reused while no atom moved more than skin/2."""
        nl = self._nl
        if nl is not None and nl["cell"].shape == cell.shape and np.allclose(nl["cell"], cell) \
                and len(nl["pos"]) == len(pos):
            if np.max(np.sum((pos - nl["pos"]) ** 2, axis=1)) < (0.5 * self.skin) ** 2:
                return nl["ijS"]
        from viglas.potentials.ionic import half_neighbour_list

        cutoff = self.model.cutoff if self.acemlp is None else max(self.model.cutoff,
                                                                    self.acemlp.rc)
        ijS = half_neighbour_list(pos, cell, cutoff + self.skin)
        self._nl = {"pos": pos.copy(), "cell": cell.copy(), "ijS": ijS}
        return ijS

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        self.baseline.calculate(a, ["energy", "forces", "stress"], system_changes)
        rb = self.baseline.results
        pos = np.ascontiguousarray(a.positions, dtype=np.float64)
        cell = np.ascontiguousarray(a.cell.array, dtype=np.float64)
        if self._types is None or not np.array_equal(self._types[0], a.numbers):
            sym = a.get_chemical_symbols()
            self._types = (a.numbers.copy(), self.model.types_of(sym),
                           None if self.acemlp is None else self.acemlp.types_of(sym))
        nl = self._list(pos, cell)
        e, f, s = evaluate(self.model, a, nl, self._types[1])
        if self.acemlp is not None:
            from viglas.potentials.acemlp import evaluate as acemlp_evaluate

            e2, f2, s2 = acemlp_evaluate(self.acemlp, a, nl, self._types[2])
            e, f, s = e + e2, f + f2, s + s2
        self.delta_energy = e
        energy = float(rb["energy"]) + e
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": np.asarray(rb["forces"]) + f,
                        "stress": np.asarray(rb["stress"]) + s}


class _Identity:
    """What the workflow provenance reads of a calculator's parameters (``model_dump``,
    ``identity_dict``: the whole model, so its hash changes with any coefficient)."""

    def __init__(self, d: dict[str, Any]):
        self._d = d
        fit = (d["delta"].get("meta") or {}).get("fit") or {}
        self._d.setdefault("provenance", {"reference": fit.get("reference"),
                                          "date": fit.get("date")})

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return self._d

    identity_dict = model_dump


def load_delta_file(path: str | Path) -> dict[str, Any]:
    """Read a ``viglas-ionic-delta/1`` JSON file (``{"baseline": ..., "delta": ...}``) or a
    shipped one by name (:data:`SHIPPED_DELTA`)."""
    p = SHIPPED_DELTA.get(str(path), Path(path))
    if not p.exists():
        raise CalculatorError("delta model file not found", field="parameters", value=str(p))
    d = json.loads(p.read_text())
    if d.get("schema") != DELTA_SCHEMA:
        raise CalculatorError("not an ionic+delta model file", field="parameters",
                              value=str(p), allowed=f"a JSON file with schema {DELTA_SCHEMA}")
    return d


def training_labels(d: dict[str, Any]) -> set[str]:
    """Every DFT label an ionic+delta file (as :func:`load_delta_file` reads it) was fitted
    on: the linear correction's training frames and, where the file carries an ACE-MLP
    correction, every frame that fit saw (training and early-stopping runs). A score is
    held out only on frames outside this set."""
    seen = set(d.get("delta", {}).get("meta", {}).get("fit", {}).get("train_labels", []))
    ace = d.get("acemlp")
    if ace is not None:
        labels = ace.get("meta", {}).get("train_labels")
        if labels is None:
            raise CalculatorError("the ACE-MLP correction does not record its training "
                                  "frames", field="acemlp.meta.train_labels", value=None,
                                  allowed="a file written by scripts/fs_ace_probe.py export")
        seen |= set(labels)
    return seen


#: Shipped ionic+delta sets by name (``parameters: dft-delta`` in a config). ``default``
#: (and no ``parameters`` at all) is the default potential of viglas: ``dft-delta``,
#: fitted to PBE-D3 (docs/dft.md): the linear correction F14 with the ACE-MLP
#: correction L2 on top (since session 15). ``dft-delta-linear`` is F14 alone, the
#: default of sessions 10-14: about 1.35x faster, with worse forces. The plain ionic set
#: fitted to CHGNet, the default until session 10, is ``chgnet-ionic``.
SHIPPED_DELTA = {"dft-delta": Path(__file__).resolve().parent / "data" / "dft_delta.json",
                 "dft-delta-linear": Path(__file__).resolve().parent / "data"
                 / "dft_delta_linear.json"}
SHIPPED_DELTA["default"] = SHIPPED_DELTA["dft-delta"]
DEFAULT_POTENTIAL = "dft-delta"


def is_delta_file(path: Any) -> bool:
    """True when ``path`` names a ``viglas-ionic-delta/1`` JSON file (or a shipped one)."""
    if not isinstance(path, (str, Path)):
        return isinstance(path, dict) and path.get("schema") == DELTA_SCHEMA
    p = SHIPPED_DELTA.get(str(path), Path(path))
    if p.suffix != ".json" or not p.exists():
        return False
    try:
        return json.loads(p.read_text()).get("schema") == DELTA_SCHEMA
    except (OSError, ValueError):
        return False


def save_delta_file(model: DeltaModel, baseline: Any, path: str | Path) -> Path:
    """Write the fitted model with its ionic baseline (inline dict) as JSON."""
    d = {"schema": DELTA_SCHEMA, "baseline": baseline, "delta": model.to_dict()}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(d, indent=1))
    tmp.replace(p)
    return p


def make_potential(parameters: Any = None, *, skin: float = 1.0) -> Calculator:
    """The ionic calculator for ``parameters``: :class:`DeltaIonicPotential` when they
    name an ionic+delta JSON file (or dict), else
    :class:`~viglas.potentials.ionic.IonicPotential` (YAML set, shipped plain name).
    None and ``"default"`` give the default potential, ``dft-delta``."""
    if parameters is None:
        parameters = DEFAULT_POTENTIAL
    if is_delta_file(parameters):
        return DeltaIonicPotential(parameters, skin=skin)
    from viglas.potentials.ionic import IonicPotential

    return IonicPotential(parameters, skin=skin)


def potential_elements(parameters: Any = None) -> set[str]:
    """Elements a parameter set (ionic YAML or ionic+delta JSON; None = the default
    potential) covers."""
    from viglas.potentials.parameters import IonicParameters, load_parameters, parameters_from_dict

    if parameters is None:
        parameters = DEFAULT_POTENTIAL

    if is_delta_file(parameters):
        d = load_delta_file(parameters) if not isinstance(parameters, dict) else parameters
        b = d.get("baseline")
        bp = parameters_from_dict(b) if isinstance(b, dict) else load_parameters(b)
        return set(bp.charges) & set(d["delta"]["species"])
    p = parameters if isinstance(parameters, IonicParameters) else load_parameters(parameters)
    return set(p.charges)
