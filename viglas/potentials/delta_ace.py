"""Body-order-3 atomic-cluster-expansion term of the ionic+delta correction.

The first-shell Legendre term of :mod:`viglas.potentials.delta` sees only the bond
angles of nearest neighbours with one fixed radial weight. Rigid ions miss more than
that: a chloride (or oxide) ion is polarised by the field of the cations around it, and
the polarisation energy ``-alpha |E_i|^2 / 2`` with ``E_i = sum_j q_j r_ij / r_ij^3`` is
a sum over *pairs* of neighbours weighted by the cosine of their angle at ``i`` -- a
body-order-3 invariant with a radial dependence that is not the first-shell one. This
term is the linear atomic cluster expansion (Drautz, PRB 99, 014104 (2019)) truncated at
body order 3 (the "power spectrum"), with element-resolved neighbour channels::

    A_i[s, n, m] = sum_{j in N(i), species s} R_n(r_ij) u_m(r̂_ij)
    B_i[s1 n1, s2 n2, p] = sum_{|m| = p} w_m A_i[s1, n1, m] A_i[s2, n2, m]
                         = sum_{j (s1), k (s2)} R_n1(r_ij) R_n2(r_ik) (r̂_ij · r̂_ik)^p
    E = sum_i sum c[t_i, s1 n1, s2 n2, p] B_i[s1 n1, s2 n2, p]

- ``u_m``: the Cartesian monomials ``x^a y^b z^c`` of the unit vector with
  ``a + b + c = p`` and ``w_m = p! / (a! b! c!)`` (so the contraction is the power of the
  cosine; powers 0..pmax span the same functions as Legendre P_0..P_pmax).
- ``R_n``: ``nr`` uniform cubic B-splines with supports inside ``[r0, rc]`` (so the term
  and its first two derivatives vanish at both ends: nothing acts below ``r0``, where
  the ionic walls alone hold atoms apart). Uniform in ``r``, or (``kappa > 0``) in
  ``1 - exp(-kappa (r - r0))``, which puts more resolution into the first shell.
  ``r0`` may differ per element pair (the model's ``ace_r0_table``: each pair's range
  then starts just below its closest contact in the training data).
- Neighbour channels: by default only neighbours of the opposite class (anions around a
  cation, cations around an anion): the polyhedra and the bridges, and the field that
  polarises an anion. ``pairs = "all"`` adds same-class neighbours.
- Only (centre, s1, s2) blocks present in the training data get coefficients.

Forces and virial are exact derivatives; the same kernel gives the design rows of the
fit (energy, ``-dE/dx`` per atom, virial) and the MD evaluation.
"""

from __future__ import annotations

import math
from itertools import combinations_with_replacement

import numpy as np

from viglas.jit import lazy_kernel


def monomials(pmax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponents (M, 3), degree (M,) and multinomial weights (M,) of all monomials of
    a unit vector up to degree ``pmax``, sorted by degree."""
    ex, deg, w = [], [], []
    for p in range(pmax + 1):
        for a in range(p, -1, -1):
            for b in range(p - a, -1, -1):
                c = p - a - b
                ex.append((a, b, c))
                deg.append(p)
                w.append(math.factorial(p) / (math.factorial(a) * math.factorial(b)
                                              * math.factorial(c)))
    return np.array(ex, np.int64), np.array(deg, np.int64), np.array(w, float)


def lowered(ex: np.ndarray) -> np.ndarray:
    """(M, 3) indices: for monomial m = x^a y^b z^c of ``ex`` and axis c, the monomial
    with that exponent lowered by one, so d u_m / d u_x = a u_low[m, 0] (likewise y, z);
    0 where the exponent is 0 (its factor is then 0). Lets a kernel take the gradient of
    the monomials from their values, without powers or branches."""
    idx = {tuple(e): k for k, e in enumerate(np.asarray(ex).tolist())}
    low = np.zeros((len(idx), 3), np.int64)
    for e, m in idx.items():
        for c in range(3):
            if e[c] > 0:
                low[m, c] = idx[tuple(x - (1 if k == c else 0) for k, x in enumerate(e))]
    return low


def neighbour_mask(species: list[str], anions, pairs: str = "opposite") -> np.ndarray:
    """``mask[c, s]`` = 1 when atoms of species ``s`` are neighbour channels of a centre
    of species ``c``."""
    n = len(species)
    m = np.zeros((n, n), np.int64)
    for c, sc in enumerate(species):
        for s, ss in enumerate(species):
            if pairs == "all" or (sc in anions) != (ss in anions):
                m[c, s] = 1
    return m


def block_size(nr: int, pmax: int, same: bool) -> int:
    return (nr * (nr + 1) // 2 if same else nr * nr) * (pmax + 1)


def layout(blocks, n_species: int, nr: int, pmax: int, start: int) -> tuple[np.ndarray, int]:
    """Column offsets ``off[c, s1, s2]`` (symmetric in s1, s2; -1 = no block) for the
    (centre, s1 <= s2) ``blocks``, starting at column ``start``; returns (off, next)."""
    off = -np.ones((n_species, n_species, n_species), np.int64)
    col = start
    for c, s1, s2 in sorted(blocks):
        off[c, s1, s2] = off[c, s2, s1] = col
        col += block_size(nr, pmax, s1 == s2)
    return off, col


def blocks_in(frames, species: list[str], mask: np.ndarray, r0: float, rc: float,
              min_support: int = 1) -> list[tuple[int, int, int]]:
    """(centre, s1 <= s2) triples that occur within ``[r0, rc]`` in ``frames`` around at
    least ``min_support`` centre atoms (a block seen around a handful of atoms only is
    fitted to their noise: leave it out and let the pair and embedding terms act)."""
    return sorted(b for b, k in block_support(frames, species, mask, r0, rc).items()
                  if k >= min_support)


def block_support(frames, species: list[str], mask: np.ndarray, r0: float, rc: float
                  ) -> dict[tuple[int, int, int], int]:
    """How many centre atoms in ``frames`` have neighbours of both s1 and s2 (channels
    allowed by ``mask``) within ``[r0, rc]``, per (centre, s1 <= s2) block."""
    from viglas.potentials.ionic import half_neighbour_list

    idx = {s: k for k, s in enumerate(species)}
    found: dict[tuple[int, int, int], int] = {}
    for a in frames:
        i, j, S = half_neighbour_list(a.positions, a.cell.array, rc)
        r = np.linalg.norm(a.positions[j] - a.positions[i] + S @ a.cell.array, axis=1)
        keep = r > r0
        i, j = i[keep], j[keep]
        t = np.array([idx[x] for x in a.get_chemical_symbols()])
        nb: dict[int, set[int]] = {}
        for x, y in zip(i, j):
            if mask[t[x], t[y]]:
                nb.setdefault(int(x), set()).add(int(t[y]))
            if mask[t[y], t[x]]:
                nb.setdefault(int(y), set()).add(int(t[x]))
        for c_atom, ss in nb.items():
            c = int(t[c_atom])
            for s1, s2 in combinations_with_replacement(sorted(ss), 2):
                found[(c, s1, s2)] = found.get((c, s1, s2), 0) + 1
    return found


def block_labels(species: list[str], blocks, nr: int, pmax: int) -> list[str]:
    out = []
    for c, s1, s2 in sorted(blocks):
        for n1 in range(nr):
            for n2 in range(n1 if s1 == s2 else 0, nr):
                out += [f"ace[{species[c]}|{species[s1]}{n1},{species[s2]}{n2}][p{p}]"
                        for p in range(pmax + 1)]
    return out


# ---------------------------------------------------------------- numba kernels
@lazy_kernel(remember_missing=False)
def kernel_helpers(numba):
    """Inlined pieces shared by the ionic+delta kernels (:mod:`viglas.potentials.delta`)
    and this one: ``bspline(x)`` (uniform cubic B-spline on [0, 4) and its derivative),
    ``pair_rows`` (add a pair's -dE/dx and virial to the design rows of column ``col``),
    ``pair_force`` (add them to forces and virial), ``pair_add`` (either, by ``fit``)
    and ``pair_vector`` (the pair's separation vector). For both, ``g = dE/dd`` along
    ``d = x_j - x_i``: +g on i, -g on j, virial d (x) g."""

    @numba.njit(cache=True, nogil=True, inline="always")
    def bspline(x):
        if x < 0.0 or x >= 4.0:
            return 0.0, 0.0
        if x < 1.0:
            return x * x * x / 6.0, 0.5 * x * x
        if x < 2.0:
            y = x - 1.0
            return (1.0 + 3.0 * y + 3.0 * y * y - 3.0 * y * y * y) / 6.0, \
                (3.0 + 6.0 * y - 9.0 * y * y) / 6.0
        if x < 3.0:
            y = x - 2.0
            return (4.0 - 6.0 * y * y + 3.0 * y * y * y) / 6.0, (-12.0 * y + 9.0 * y * y) / 6.0
        y = 4.0 - x
        return y * y * y / 6.0, -0.5 * y * y

    @numba.njit(cache=True, nogil=True, inline="always")
    def pair_rows(col, i, j, g0, g1, g2, d0, d1, d2, ffeat, vfeat):
        ffeat[i, 0, col] += g0
        ffeat[i, 1, col] += g1
        ffeat[i, 2, col] += g2
        ffeat[j, 0, col] -= g0
        ffeat[j, 1, col] -= g1
        ffeat[j, 2, col] -= g2
        vfeat[0, col] += d0 * g0
        vfeat[1, col] += d1 * g1
        vfeat[2, col] += d2 * g2
        vfeat[3, col] += d1 * g2
        vfeat[4, col] += d0 * g2
        vfeat[5, col] += d0 * g1

    @numba.njit(cache=True, nogil=True, inline="always")
    def pair_force(i, j, g0, g1, g2, d0, d1, d2, forces, virial):
        forces[i, 0] += g0
        forces[i, 1] += g1
        forces[i, 2] += g2
        forces[j, 0] -= g0
        forces[j, 1] -= g1
        forces[j, 2] -= g2
        virial[0, 0] += d0 * g0
        virial[0, 1] += d0 * g1
        virial[0, 2] += d0 * g2
        virial[1, 0] += d1 * g0
        virial[1, 1] += d1 * g1
        virial[1, 2] += d1 * g2
        virial[2, 0] += d2 * g0
        virial[2, 1] += d2 * g1
        virial[2, 2] += d2 * g2

    @numba.njit(cache=True, nogil=True, inline="always")
    def pair_add(fit, col, coef, i, j, g0, g1, g2, d0, d1, d2, ffeat, vfeat, forces,
                 virial):
        """Add a pair term's force (g = dE/dd per unit coefficient along d = x_j - x_i:
        +g on i, -g on j) and virial d (x) g: as design rows (fit) or times coef[col]."""
        if fit:
            pair_rows(col, i, j, g0, g1, g2, d0, d1, d2, ffeat, vfeat)
        else:
            a = coef[col]
            pair_force(i, j, a * g0, a * g1, a * g2, d0, d1, d2, forces, virial)

    @numba.njit(cache=True, nogil=True, inline="always")
    def pair_vector(pos, cell, SS, p, i, j):
        """d = x_j - x_i + S_p . cell of pair p of a half list (i, j, shifts SS)."""
        return (pos[j, 0] - pos[i, 0] + SS[p, 0] * cell[0, 0] + SS[p, 1] * cell[1, 0] + SS[p, 2] * cell[2, 0],
                pos[j, 1] - pos[i, 1] + SS[p, 0] * cell[0, 1] + SS[p, 1] * cell[1, 1] + SS[p, 2] * cell[2, 1],
                pos[j, 2] - pos[i, 2] + SS[p, 0] * cell[0, 2] + SS[p, 1] * cell[1, 2] + SS[p, 2] * cell[2, 2])

    return bspline, pair_rows, pair_force, pair_add, pair_vector


@lazy_kernel(remember_missing=False)
def _kernel(numba):
    bspline, pair_rows, pair_force, _, pair_vector = require_kernel(kernel_helpers())

    @numba.njit(cache=True, nogil=True, inline="always")
    def basis(r, u0, u1, u2, r0, h, kap, tz, nr, pmax, ex, bv, bd, px, py, pz, mv):
        """One neighbour's radial splines (bv, bd per unit t) and the monomials of its
        unit vector (mv), from the power tables px, py, pz. Returns dt/dr: the spline
        coordinate is t = (r - r0) / h (kap = 0) or the transformed distance
        t = (nr + 3) (1 - exp(-kap (r - r0))) / tz (kap > 0, tz = 1 - exp(-kap (rc - r0)))."""
        if kap > 0.0:
            ek = math.exp(-kap * (r - r0))
            t = (nr + 3) * (1.0 - ek) / tz
            dtdr = (nr + 3) * kap * ek / tz
        else:
            t = (r - r0) / h
            dtdr = 1.0 / h
        for k in range(nr):
            bv[k], bd[k] = bspline(t - k)
        px[0] = 1.0
        py[0] = 1.0
        pz[0] = 1.0
        for e in range(1, pmax + 1):
            px[e] = px[e - 1] * u0
            py[e] = py[e - 1] * u1
            pz[e] = pz[e - 1] * u2
        for m in range(ex.shape[0]):
            mv[m] = px[ex[m, 0]] * py[ex[m, 1]] * pz[ex[m, 2]]
        return dtdr

    @numba.njit(cache=True, nogil=True, inline="always")
    def _mono_grad(ex, deg, px, py, pz, mv, u0, u1, u2, r, mg):
        """d u_m / d d for every monomial u_m of the unit vector u = d / r:
        (grad_u u_m - deg_m u_m u) / r (u_m is homogeneous of degree deg_m)."""
        for m in range(ex.shape[0]):
            a = ex[m, 0]
            b = ex[m, 1]
            c = ex[m, 2]
            g0 = a * px[a - 1] * py[b] * pz[c] if a > 0 else 0.0
            g1 = b * px[a] * py[b - 1] * pz[c] if b > 0 else 0.0
            g2 = c * px[a] * py[b] * pz[c - 1] if c > 0 else 0.0
            pd = deg[m] * mv[m]
            mg[m, 0] = (g0 - pd * u0) / r
            mg[m, 1] = (g1 - pd * u1) / r
            mg[m, 2] = (g2 - pd * u2) / r

    @numba.njit(cache=True, nogil=True, fastmath=True)
    def kernel(pos, cell, ii, jj, SS, types, nsp, mask, off, r0t, rc, nr, pmax, kap, ex,
               deg, wm, low, coef, fit, efeat, ffeat, vfeat, forces, virial):
        n = pos.shape[0]
        nm = ex.shape[0]
        # radial range [r0t[a, b], rc] per element pair (symmetric table)
        ht = np.empty((nsp, nsp))
        tzt = np.ones((nsp, nsp))
        for a in range(nsp):
            for b in range(nsp):
                ht[a, b] = (rc - r0t[a, b]) / (nr + 3)
                if kap > 0.0:
                    tzt[a, b] = 1.0 - math.exp(-kap * (rc - r0t[a, b]))
        # ---- full neighbour lists (CSR) of the allowed channels, r0 < r < rc
        npair = ii.shape[0]
        dv = np.empty((npair, 4))
        cnt = np.zeros(n + 1, np.int64)
        for p in range(npair):
            i = ii[p]
            j = jj[p]
            d0, d1, d2 = pair_vector(pos, cell, SS, p, i, j)
            r = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
            dv[p, 0] = d0
            dv[p, 1] = d1
            dv[p, 2] = d2
            dv[p, 3] = r
            if r <= r0t[types[i], types[j]] or r >= rc:
                continue
            if mask[types[i], types[j]]:
                cnt[i + 1] += 1
            if mask[types[j], types[i]]:
                cnt[j + 1] += 1
        for i in range(n):
            cnt[i + 1] += cnt[i]
        tot = cnt[n]
        nbj = np.empty(tot, np.int64)
        nbd = np.empty((tot, 4))
        fill = cnt[:n].copy()
        for p in range(npair):
            r = dv[p, 3]
            if r <= r0t[types[ii[p]], types[jj[p]]] or r >= rc:
                continue
            i = ii[p]
            j = jj[p]
            if mask[types[i], types[j]]:
                q = fill[i]
                nbj[q] = j
                nbd[q, 0] = dv[p, 0]
                nbd[q, 1] = dv[p, 1]
                nbd[q, 2] = dv[p, 2]
                nbd[q, 3] = r
                fill[i] = q + 1
            if mask[types[j], types[i]]:
                q = fill[j]
                nbj[q] = i
                nbd[q, 0] = -dv[p, 0]
                nbd[q, 1] = -dv[p, 1]
                nbd[q, 2] = -dv[p, 2]
                nbd[q, 3] = r
                fill[j] = q + 1
        # degree ranges of the monomials
        mstart = np.zeros(pmax + 2, np.int64)
        for m in range(nm):
            mstart[deg[m] + 1] = m + 1
        A = np.zeros((nsp, nr, nm))
        gA = np.zeros((nsp, nr, nm))
        energy = 0.0
        maxnb = 1
        for i in range(n):
            if cnt[i + 1] - cnt[i] > maxnb:
                maxnb = cnt[i + 1] - cnt[i]
        # fit: per-neighbour derivatives of R_k * u_m wrt d = x_j - x_i
        D = np.zeros((maxnb if fit else 1, nr, nm, 3))
        # evaluation: each neighbour's radial values, dR/dr and monomials, kept from the
        # pass that builds A for the force pass of the same centre
        nkeep = 1 if fit else maxnb
        kb = np.empty((nkeep, nr))
        kd = np.empty((nkeep, nr))
        km = np.empty((nkeep, nm))
        present = np.zeros(nsp, np.int64)
        px = np.empty(pmax + 1)
        py = np.empty(pmax + 1)
        pz = np.empty(pmax + 1)
        mv = np.empty(nm)
        mg = np.empty((nm, 3))  # d u_m / d d
        bv = np.empty(nr)
        bd = np.empty(nr)
        for i in range(n):
            c = types[i]
            lo = cnt[i]
            hi = cnt[i + 1]
            if hi == lo:
                continue
            for s in range(nsp):
                present[s] = 0
            A[:, :, :] = 0.0
            for x in range(hi - lo):
                q = lo + x
                s = types[nbj[q]]
                present[s] = 1
                r = nbd[q, 3]
                u0 = nbd[q, 0] / r
                u1 = nbd[q, 1] / r
                u2 = nbd[q, 2] / r
                dtdr = basis(r, u0, u1, u2, r0t[c, s], ht[c, s], kap, tzt[c, s], nr, pmax,
                             ex, bv, bd, px, py, pz, mv)
                for k in range(nr):
                    b = bv[k]
                    if b != 0.0:
                        for m in range(nm):
                            A[s, k, m] += b * mv[m]
                if not fit:
                    for k in range(nr):
                        kb[x, k] = bv[k]
                        kd[x, k] = bd[k] * dtdr
                    for m in range(nm):
                        km[x, m] = mv[m]
                if fit:
                    _mono_grad(ex, deg, px, py, pz, mv, u0, u1, u2, r, mg)
                    for k in range(nr):
                        b = bv[k]
                        db = bd[k] * dtdr
                        for m in range(nm):
                            D[x, k, m, 0] = db * u0 * mv[m] + b * mg[m, 0]
                            D[x, k, m, 1] = db * u1 * mv[m] + b * mg[m, 1]
                            D[x, k, m, 2] = db * u2 * mv[m] + b * mg[m, 2]
            # ---- invariants, energy (and dE/dA for the evaluation)
            if not fit:
                gA[:, :, :] = 0.0
            for s1 in range(nsp):
                if present[s1] == 0:
                    continue
                for s2 in range(s1, nsp):
                    if present[s2] == 0:
                        continue
                    o = off[c, s1, s2]
                    if o < 0:
                        continue
                    col = o
                    for n1 in range(nr):
                        for n2 in range(n1 if s1 == s2 else 0, nr):
                            for p in range(pmax + 1):
                                Bv = 0.0
                                for m in range(mstart[p], mstart[p + 1]):
                                    Bv += wm[m] * A[s1, n1, m] * A[s2, n2, m]
                                if fit:
                                    efeat[col] += Bv
                                else:
                                    cf = coef[col]
                                    energy += cf * Bv
                                    for m in range(mstart[p], mstart[p + 1]):
                                        gA[s1, n1, m] += cf * wm[m] * A[s2, n2, m]
                                        gA[s2, n2, m] += cf * wm[m] * A[s1, n1, m]
                                col += 1
            # ---- forces and virial: E depends on d = x_j - x_i (F_i += g, F_j -= g)
            for x in range(hi - lo):
                q = lo + x
                j = nbj[q]
                s = types[j]
                d0 = nbd[q, 0]
                d1 = nbd[q, 1]
                d2 = nbd[q, 2]
                if not fit:
                    # g = sum_km gA[s,k,m] d(R_k u_m)/dd with the kept R_k, dR_k/dr, u_m;
                    # u_m is homogeneous of degree deg_m in u = d / r, so
                    # d u_m / dd = (grad_u u_m - deg_m u_m u) / r
                    r = nbd[q, 3]
                    u0 = d0 / r
                    u1 = d1 / r
                    u2 = d2 / r
                    gr = 0.0  # radial part, along u
                    gd = 0.0  # sum_m G_m deg_m u_m
                    h0 = 0.0  # sum_m G_m grad_u u_m
                    h1 = 0.0
                    h2 = 0.0
                    for m in range(nm):
                        Gm = 0.0
                        Gd = 0.0
                        for k in range(nr):
                            gv = gA[s, k, m]
                            Gm += gv * kb[x, k]
                            Gd += gv * kd[x, k]
                        gr += Gd * km[x, m]
                        gd += Gm * deg[m] * km[x, m]
                        h0 += Gm * ex[m, 0] * km[x, low[m, 0]]
                        h1 += Gm * ex[m, 1] * km[x, low[m, 1]]
                        h2 += Gm * ex[m, 2] * km[x, low[m, 2]]
                    g0 = gr * u0 + (h0 - gd * u0) / r
                    g1 = gr * u1 + (h1 - gd * u1) / r
                    g2 = gr * u2 + (h2 - gd * u2) / r
                    pair_force(i, j, g0, g1, g2, d0, d1, d2, forces, virial)
                    continue
                # design rows: blocks that contain species s
                for so in range(nsp):
                    if present[so] == 0:
                        continue
                    s1 = s if s <= so else so
                    s2 = so if s <= so else s
                    o = off[c, s1, s2]
                    if o < 0:
                        continue
                    col = o
                    for n1 in range(nr):
                        for n2 in range(n1 if s1 == s2 else 0, nr):
                            for p in range(pmax + 1):
                                g0 = 0.0
                                g1 = 0.0
                                g2 = 0.0
                                for m in range(mstart[p], mstart[p + 1]):
                                    w = wm[m]
                                    if s1 == s:
                                        a2 = w * A[s2, n2, m]
                                        g0 += a2 * D[x, n1, m, 0]
                                        g1 += a2 * D[x, n1, m, 1]
                                        g2 += a2 * D[x, n1, m, 2]
                                    if s2 == s:
                                        a1 = w * A[s1, n1, m]
                                        g0 += a1 * D[x, n2, m, 0]
                                        g1 += a1 * D[x, n2, m, 1]
                                        g2 += a1 * D[x, n2, m, 2]
                                pair_rows(col, i, j, g0, g1, g2, d0, d1, d2, ffeat, vfeat)
                                col += 1
        return energy

    return kernel


def kernel():
    """The compiled kernel (numba is required: the ionic+delta potential has no numpy
    twin)."""
    return require_kernel(_kernel())


def require_kernel(k):
    if k is None:
        from viglas.errors import CalculatorError

        raise CalculatorError("the ionic+delta potential needs numba", field="calculator",
                              value="ionic (delta model)", allowed="pip install numba")
    return k
