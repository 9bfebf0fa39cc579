"""The numba kernels of the ionic potential (:mod:`viglas.potentials.ionic`), with
their numpy twins, compiled on first use and cached on disk (None without numba):

* :func:`numba_pair_kernel` — the fused pair loop (short range + DSF Coulomb: energy,
  forces, virial, shortest distance);
* :func:`numba_three_body_kernel` / :func:`three_body_numpy` — the three-body (angle)
  loop; :func:`three_body_kernel` picks one, :func:`three_body_tables` builds its
  per-type arrays;
* :func:`half_neighbour_list` — a cell-list half neighbour list (matscipy's
  ``neighbour_list`` without numba), pairs in the canonical order of
  :func:`canonical_pairs`; :func:`pair_vectors` gives their vectors.
"""

from __future__ import annotations

import math

import numpy as np

from viglas.jit import lazy_kernel

__all__ = ["numba_pair_kernel", "numba_three_body_kernel", "three_body_kernel",
           "three_body_tables", "three_body_numpy", "half_neighbour_list", "pair_vectors",
           "canonical_pairs"]


@lazy_kernel(remember_missing=False)
def numba_pair_kernel(numba):
    """Compile (once, cached on disk) the fused pair loop; None if numba is missing."""

    @numba.njit(cache=True, nogil=True)
    def kernel(pos, cell, i, j, S, tp, tA, tinv_rho, tC, tB, tshift, thas, tqq,
               alpha, rc, rsr, e_shift, f_shift, forces, virial):
        two_a_sqrtpi = 2.0 * alpha / math.sqrt(math.pi)
        a2 = alpha * alpha
        rc2 = rc * rc
        rsr2 = rsr * rsr
        e_sr = 0.0
        e_c = 0.0
        rmin2 = 1e300
        for k in range(forces.shape[0]):
            forces[k, 0] = 0.0
            forces[k, 1] = 0.0
            forces[k, 2] = 0.0
        for a in range(3):
            for b in range(3):
                virial[a, b] = 0.0
        for p in range(i.shape[0]):
            ii = i[p]
            jj = j[p]
            s0 = S[p, 0]
            s1 = S[p, 1]
            s2 = S[p, 2]
            dx = pos[jj, 0] - pos[ii, 0] + s0 * cell[0, 0] + s1 * cell[1, 0] + s2 * cell[2, 0]
            dy = pos[jj, 1] - pos[ii, 1] + s0 * cell[0, 1] + s1 * cell[1, 1] + s2 * cell[2, 1]
            dz = pos[jj, 2] - pos[ii, 2] + s0 * cell[0, 2] + s1 * cell[1, 2] + s2 * cell[2, 2]
            r2 = dx * dx + dy * dy + dz * dz
            if r2 < rmin2:
                rmin2 = r2
            if r2 >= rc2 and r2 >= rsr2:
                continue
            r = math.sqrt(r2)
            inv_r = 1.0 / r
            de = 0.0
            t = tp[p]
            if r2 < rc2:
                qq = tqq[t]
                erfc_ar = math.erfc(alpha * r)
                e_c += qq * (erfc_ar * inv_r - e_shift + f_shift * (r - rc))
                de += qq * (-erfc_ar * inv_r * inv_r - two_a_sqrtpi * math.exp(-a2 * r2) * inv_r
                            + f_shift)
            if r2 < rsr2 and thas[t]:
                expo = tA[t] * math.exp(-r * tinv_rho[t])
                ir2 = inv_r * inv_r
                ir6 = ir2 * ir2 * ir2
                c6 = tC[t] * ir6
                b12 = tB[t] * ir6 * ir6
                e_sr += expo - c6 + b12 - tshift[t]
                de += -expo * tinv_rho[t] + (6.0 * c6 - 12.0 * b12) * inv_r
            g = de * inv_r
            gx = g * dx
            gy = g * dy
            gz = g * dz
            forces[ii, 0] += gx
            forces[ii, 1] += gy
            forces[ii, 2] += gz
            forces[jj, 0] -= gx
            forces[jj, 1] -= gy
            forces[jj, 2] -= gz
            virial[0, 0] += dx * gx
            virial[0, 1] += dx * gy
            virial[0, 2] += dx * gz
            virial[1, 0] += dy * gx
            virial[1, 1] += dy * gy
            virial[1, 2] += dy * gz
            virial[2, 0] += dz * gx
            virial[2, 1] += dz * gy
            virial[2, 2] += dz * gz
        return e_sr, e_c, math.sqrt(rmin2)

    return kernel


@lazy_kernel(remember_missing=False)
def numba_three_body_kernel(numba):
    """Compile (once, cached on disk) the three-body (angle) loop; None without numba."""

    @numba.njit(cache=True, nogil=True)
    def kernel3(pos, cell, i, j, S, types, nbr, tk, tcos0, tgam, trc, forces, virial):
        """Adds the angle term to ``forces``/``virial``; returns its energy.

        ``nbr[ti * nt + tj]`` is True when type tj is a neighbour of centre type ti.
        """
        n = pos.shape[0]
        nt = tk.shape[0]
        npairs = i.shape[0]
        cnt = np.zeros(n + 1, dtype=np.int64)
        for sweep in range(2):
            if sweep == 1:
                for a in range(n):
                    cnt[a + 1] += cnt[a]
                nb = cnt[n]
                bj = np.empty(nb, dtype=np.int64)
                bd = np.empty((nb, 3))
                fill = cnt[:n].copy()
            for p in range(npairs):
                ii = i[p]
                jj = j[p]
                ti = types[ii]
                tj = types[jj]
                ci = nbr[ti * nt + tj]
                cj = nbr[tj * nt + ti]
                if not (ci or cj):
                    continue
                s0 = S[p, 0]
                s1 = S[p, 1]
                s2 = S[p, 2]
                dx = pos[jj, 0] - pos[ii, 0] + s0 * cell[0, 0] + s1 * cell[1, 0] + s2 * cell[2, 0]
                dy = pos[jj, 1] - pos[ii, 1] + s0 * cell[0, 1] + s1 * cell[1, 1] + s2 * cell[2, 1]
                dz = pos[jj, 2] - pos[ii, 2] + s0 * cell[0, 2] + s1 * cell[1, 2] + s2 * cell[2, 2]
                r2 = dx * dx + dy * dy + dz * dz
                if ci and r2 < trc[ti] * trc[ti]:
                    if sweep == 0:
                        cnt[ii + 1] += 1
                    else:
                        q = fill[ii]
                        bj[q] = jj
                        bd[q, 0] = dx
                        bd[q, 1] = dy
                        bd[q, 2] = dz
                        fill[ii] += 1
                if cj and r2 < trc[tj] * trc[tj]:
                    if sweep == 0:
                        cnt[jj + 1] += 1
                    else:
                        q = fill[jj]
                        bj[q] = ii
                        bd[q, 0] = -dx
                        bd[q, 1] = -dy
                        bd[q, 2] = -dz
                        fill[jj] += 1
        e = 0.0
        for c in range(n):
            s = cnt[c]
            t = cnt[c + 1]
            if t - s < 2:
                continue
            tc = types[c]
            k = tk[tc]
            c0 = tcos0[tc]
            gam = tgam[tc]
            rc = trc[tc]
            for a in range(s, t - 1):
                ax = bd[a, 0]
                ay = bd[a, 1]
                az = bd[a, 2]
                ra = math.sqrt(ax * ax + ay * ay + az * az)
                xa = ra - rc
                fa = math.exp(gam / xa)
                dfa = -gam / (xa * xa) * fa / ra  # f'(r)/r
                for b in range(a + 1, t):
                    bx = bd[b, 0]
                    by = bd[b, 1]
                    bz = bd[b, 2]
                    rb = math.sqrt(bx * bx + by * by + bz * bz)
                    xb = rb - rc
                    fb = math.exp(gam / xb)
                    dfb = -gam / (xb * xb) * fb / rb
                    irab = 1.0 / (ra * rb)
                    cs = (ax * bx + ay * by + az * bz) * irab
                    dl = cs - c0
                    ff = fa * fb
                    e += k * dl * dl * ff
                    w = 2.0 * k * dl * ff
                    ca = cs / (ra * ra)
                    cb = cs / (rb * rb)
                    sa = k * dl * dl * dfa * fb
                    sb = k * dl * dl * fa * dfb
                    # dE/d(bond a), dE/d(bond b)
                    gax = w * (bx * irab - ca * ax) + sa * ax
                    gay = w * (by * irab - ca * ay) + sa * ay
                    gaz = w * (bz * irab - ca * az) + sa * az
                    gbx = w * (ax * irab - cb * bx) + sb * bx
                    gby = w * (ay * irab - cb * by) + sb * by
                    gbz = w * (az * irab - cb * bz) + sb * bz
                    ja = bj[a]
                    jb = bj[b]
                    forces[c, 0] += gax + gbx
                    forces[c, 1] += gay + gby
                    forces[c, 2] += gaz + gbz
                    forces[ja, 0] -= gax
                    forces[ja, 1] -= gay
                    forces[ja, 2] -= gaz
                    forces[jb, 0] -= gbx
                    forces[jb, 1] -= gby
                    forces[jb, 2] -= gbz
                    virial[0, 0] += ax * gax + bx * gbx
                    virial[0, 1] += ax * gay + bx * gby
                    virial[0, 2] += ax * gaz + bx * gbz
                    virial[1, 0] += ay * gax + by * gbx
                    virial[1, 1] += ay * gay + by * gby
                    virial[1, 2] += ay * gaz + by * gbz
                    virial[2, 0] += az * gax + bz * gbx
                    virial[2, 1] += az * gay + bz * gby
                    virial[2, 2] += az * gaz + bz * gbz
        return e

    return kernel3


def pair_vectors(pos, cell, i, j, S) -> np.ndarray:
    """Vectors r_j + S @ cell - r_i (Å) of the pairs (i, j, S), shape (n_pairs, 3). Explicit
    broadcasting: a BLAS matmul with inner size 3 is slow under load."""
    return (np.take(pos, j, axis=0) - np.take(pos, i, axis=0)
            + S[:, 0:1] * cell[0] + S[:, 1:2] * cell[1] + S[:, 2:3] * cell[2])


def three_body_kernel():
    """The three-body (angle) loop ``kernel(pos, cell, i, j, S, types, nbr, tk, tcos0,
    tgam, trc, forces, virial) -> energy``: the compiled numba kernel, or
    :func:`three_body_numpy` when numba is not installed (same arguments, same sums)."""
    return numba_three_body_kernel() or three_body_numpy


def three_body_tables(three_body: dict, elements: list[str]) -> dict[str, np.ndarray]:
    """Per-type arrays of the angle term for type ``t`` = ``elements[t]``, as the kernels
    take them: ``nbr`` (flattened nt x nt, ``nbr[x * nt + y]``: y is a neighbour of
    centre x), ``k``, ``cos0``, ``gamma``, ``rc`` (0 for types that are no centre).
    ``three_body`` maps centre symbols to :class:`ThreeBodyParameters`."""
    nt = len(elements)
    nbr = np.zeros((nt, nt), dtype=bool)
    tk, tcos0, tgam, trc = (np.zeros(nt) for _ in range(4))
    for x, sx in enumerate(elements):
        tb = three_body.get(sx)
        if tb is None:
            continue
        tk[x], tcos0[x], tgam[x], trc[x] = tb.k, tb.cos0, tb.gamma, tb.cutoff
        for y, sy in enumerate(elements):
            nbr[x, y] = sy in tb.neighbours
    return {"nbr": nbr.ravel(), "k": tk, "cos0": tcos0, "gamma": tgam, "rc": trc}


def three_body_numpy(pos, cell, i, j, S, types, nbr, tk, tcos0, tgam, trc, forces, virial):
    """Vectorised numpy twin of the numba three-body kernel (same arguments/effect)."""
    nt = len(tk)
    if len(i) == 0:
        return 0.0
    D = pair_vectors(pos, cell, i, j, S)
    r2 = np.einsum("ij,ij->i", D, D)
    ti, tj = types[i], types[j]
    ci = nbr[ti * nt + tj] & (r2 < trc[ti] ** 2)
    cj = nbr[tj * nt + ti] & (r2 < trc[tj] ** 2)
    centre = np.concatenate([i[ci], j[cj]])
    other = np.concatenate([j[ci], i[cj]])
    vec = np.concatenate([D[ci], -D[cj]])
    if len(centre) < 2:
        return 0.0
    order = np.argsort(centre, kind="stable")
    centre, other, vec = centre[order], other[order], vec[order]
    nb = len(centre)
    start = np.searchsorted(centre, centre, side="left")
    end = np.searchsorted(centre, centre, side="right")
    n_after = end - np.arange(nb) - 1          # partners b > a in the same centre
    a_idx = np.repeat(np.arange(nb), n_after)
    first = np.repeat(np.cumsum(n_after) - n_after, n_after)
    b_idx = a_idx + 1 + (np.arange(len(a_idx)) - first)
    del start
    if len(a_idx) == 0:
        return 0.0
    c = centre[a_idx]
    tc = types[c]
    k, c0, gam, rc = tk[tc], tcos0[tc], tgam[tc], trc[tc]
    da, db = vec[a_idx], vec[b_idx]
    ra = np.sqrt(np.einsum("ij,ij->i", da, da))
    rb = np.sqrt(np.einsum("ij,ij->i", db, db))
    fa = np.exp(gam / (ra - rc))
    fb = np.exp(gam / (rb - rc))
    dfa = -gam / (ra - rc) ** 2 * fa / ra
    dfb = -gam / (rb - rc) ** 2 * fb / rb
    irab = 1.0 / (ra * rb)
    cs = np.einsum("ij,ij->i", da, db) * irab
    dl = cs - c0
    ff = fa * fb
    e = float(np.sum(k * dl * dl * ff))
    w = (2.0 * k * dl * ff)[:, None]
    ga = w * (db * irab[:, None] - (cs / ra**2)[:, None] * da) + (k * dl * dl * dfa * fb)[:, None] * da
    gb = w * (da * irab[:, None] - (cs / rb**2)[:, None] * db) + (k * dl * dl * fa * dfb)[:, None] * db
    n = len(pos)
    for x in range(3):
        forces[:, x] += (np.bincount(c, weights=ga[:, x] + gb[:, x], minlength=n)
                         - np.bincount(other[a_idx], weights=ga[:, x], minlength=n)
                         - np.bincount(other[b_idx], weights=gb[:, x], minlength=n))
    virial += np.einsum("pi,pj->ij", da, ga) + np.einsum("pi,pj->ij", db, gb)
    return e


@lazy_kernel(remember_missing=False)
def _numba_neighbours(numba):
    """Compile (once, cached) a cell-list half neighbour list builder; None without numba."""

    @numba.njit(cache=True, nogil=True)
    def build(sw, n_img, cell, nb, m, r2max, capacity):
        n = sw.shape[0]
        nb0, nb1, nb2 = nb[0], nb[1], nb[2]
        nbins = nb0 * nb1 * nb2
        bin_of = np.empty(n, dtype=np.int64)
        b3 = np.empty((n, 3), dtype=np.int64)
        counts = np.zeros(nbins + 1, dtype=np.int64)
        for a in range(n):
            for k in range(3):
                b = int(sw[a, k] * nb[k])
                if b >= nb[k]:
                    b = nb[k] - 1
                if b < 0:
                    b = 0
                b3[a, k] = b
            bb = (b3[a, 0] * nb1 + b3[a, 1]) * nb2 + b3[a, 2]
            bin_of[a] = bb
            counts[bb + 1] += 1
        for bb in range(nbins):
            counts[bb + 1] += counts[bb]
        fill = counts[:-1].copy()
        members = np.empty(n, dtype=np.int64)
        for a in range(n):
            members[fill[bin_of[a]]] = a
            fill[bin_of[a]] += 1
        out_i = np.empty(capacity, dtype=np.int64)
        out_j = np.empty(capacity, dtype=np.int64)
        out_s = np.empty((capacity, 3), dtype=np.int64)
        out_k = np.empty(capacity, dtype=np.int64)
        w = 2 * (max(m[0], max(m[1], m[2])) + 2) + 1  # |image| <= m + 1
        npairs = 0
        for i in range(n):
            start = npairs
            for o0 in range(-m[0], m[0] + 1):
                t0 = b3[i, 0] + o0
                im0 = t0 // nb0
                w0 = t0 - im0 * nb0
                for o1 in range(-m[1], m[1] + 1):
                    t1 = b3[i, 1] + o1
                    im1 = t1 // nb1
                    w1 = t1 - im1 * nb1
                    for o2 in range(-m[2], m[2] + 1):
                        t2 = b3[i, 2] + o2
                        im2 = t2 // nb2
                        w2 = t2 - im2 * nb2
                        bb = (w0 * nb1 + w1) * nb2 + w2
                        for q in range(counts[bb], counts[bb + 1]):
                            j = members[q]
                            if j < i:
                                continue
                            if j == i:
                                # one of S / -S for periodic self-images, never S = 0
                                if not (im0 > 0 or (im0 == 0 and (im1 > 0 or (im1 == 0 and im2 > 0)))):
                                    continue
                            f0 = sw[j, 0] + im0 - sw[i, 0]
                            f1 = sw[j, 1] + im1 - sw[i, 1]
                            f2 = sw[j, 2] + im2 - sw[i, 2]
                            dx = f0 * cell[0, 0] + f1 * cell[1, 0] + f2 * cell[2, 0]
                            dy = f0 * cell[0, 1] + f1 * cell[1, 1] + f2 * cell[2, 1]
                            dz = f0 * cell[0, 2] + f1 * cell[1, 2] + f2 * cell[2, 2]
                            if dx * dx + dy * dy + dz * dz >= r2max:
                                continue
                            if npairs < capacity:
                                out_i[npairs] = i
                                out_j[npairs] = j
                                # shift in the frame of the unwrapped positions
                                out_s[npairs, 0] = im0 - n_img[j, 0] + n_img[i, 0]
                                out_s[npairs, 1] = im1 - n_img[j, 1] + n_img[i, 1]
                                out_s[npairs, 2] = im2 - n_img[j, 2] + n_img[i, 2]
                                # (j, S) order within i == (j, image) order
                                out_k[npairs] = ((j * w + im0 + w // 2) * w + im1 + w // 2) * w \
                                    + im2 + w // 2
                            npairs += 1
            if npairs <= capacity and npairs - start > 1:
                order = np.argsort(out_k[start:npairs])
                tj = out_j[start:npairs].copy()
                ts = out_s[start:npairs].copy()
                for q in range(npairs - start):
                    out_j[start + q] = tj[order[q]]
                    out_s[start + q, 0] = ts[order[q], 0]
                    out_s[start + q, 1] = ts[order[q], 1]
                    out_s[start + q, 2] = ts[order[q], 2]
        return out_i, out_j, out_s, npairs

    return build


def half_neighbour_list(pos: np.ndarray, cell: np.ndarray, cutoff: float):
    """Half list ``(i, j, S)`` of all pairs closer than ``cutoff`` (Å) in a 3D-periodic cell,
    each pair once (i < j; for i == j one of the images S / -S), sorted by (i, j, S).

    ``pos[j] - pos[i] + S @ cell`` is the pair vector for the positions as given
    (unwrapped positions are fine). Uses the numba cell list when numba is installed,
    else matscipy.
    """
    build = _numba_neighbours()
    if build is None:
        from matscipy.neighbours import neighbour_list

        i, j, S = neighbour_list("ijS", positions=pos, cell=cell, pbc=[True] * 3,
                                 cutoff=cutoff)
        lexpos = (S[:, 0] > 0) | ((S[:, 0] == 0) & ((S[:, 1] > 0) | ((S[:, 1] == 0) & (S[:, 2] > 0))))
        keep = (i < j) | ((i == j) & lexpos)
        i, j, S = i[keep], j[keep], S[keep]
    else:
        frac = pos @ np.linalg.inv(cell)
        n_img = np.floor(frac)
        sw = frac - n_img
        edge = sw >= 1.0  # frac just below an integer rounds up: wrap it consistently
        sw[edge] = 0.0
        n_img[edge] += 1.0
        volume = abs(np.linalg.det(cell))
        heights = np.array([volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
                            for k in range(3)])
        nb = np.maximum(1, np.floor(2.0 * heights / cutoff)).astype(np.int64)  # bins >= rc/2
        m = np.ceil(cutoff / (heights / nb) - 1e-12).astype(np.int64)
        density = len(pos) / volume
        capacity = int(1.3 * 0.5 * len(pos) * density * 4.19 * cutoff**3) + 64
        while True:
            i, j, S, npairs = build(sw, n_img.astype(np.int64), np.ascontiguousarray(cell),
                                    nb, m, cutoff * cutoff, capacity)
            if npairs <= capacity:
                break
            capacity = int(npairs * 1.1) + 64
        return i[:npairs], j[:npairs], S[:npairs]  # already in canonical order
    return canonical_pairs(i, j, S)


def _canonical_order(i: np.ndarray, j: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Permutation sorting pairs by (i, j, S0, S1, S2)."""
    n = int(max(i.max(initial=0), j.max(initial=0))) + 1
    r = int(np.abs(S).max(initial=0))
    w = 2 * r + 1
    if float(n) * n * w**3 < 9e18:  # one int64 key is faster than a 5-key lexsort
        key = ((i.astype(np.int64) * n + j) * w + (S[:, 0] + r)) * w + (S[:, 1] + r)
        key = key * w + (S[:, 2] + r)
        return np.argsort(key, kind="stable")
    return np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))


def canonical_pairs(i: np.ndarray, j: np.ndarray, S: np.ndarray):
    """The pairs ``(i, j, S)`` sorted by (i, j, S0, S1, S2): summed in this order, the
    pairs inside a cutoff give the same sums whenever the list was built."""
    order = _canonical_order(i, j, S)
    return i[order], j[order], S[order]
