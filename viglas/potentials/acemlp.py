"""A nonlinear many-body correction: ACE invariants up to body order 4, read out by a
small neural network per element ("ACE-MLP"). Evaluator (numba) and model file.

Session 13 (docs/dft.md) found that only a correction *nonlinear* in its descriptors
lifts LiInCl2.5O0.75 above force R2 0.85 on frames it was not trained on; the
packages it used for that (python-ace, tensorpotential) are under the Academic
Software License. This module is the project's own, MIT-licensed form of that idea::

    A_i[n, m] = sum_j R_n^{t_i s_j}(r_ij) u_m(r^_ij)
        R_n^{ts}(r) = sum_k W[t, s, n, k] g_k(r),  g_k(r) = sin(k pi r / rc) / r * fc(r),
        fc(r) = (1 + cos(pi r / rc)) / 2,  u_m the Cartesian monomials of r^ (degree <= 3)
    D_i = [A[n, 0];  sum_{|m| = p} w_m A[n1, m] A[n2, m]  (p = 0..3, n1 <= n2);
           v_a . M_b . v_c  (c >= a);  Tr(M_a M_b M_c)  (a <= b <= c)]
        v_n, M_n: the degree-1 and degree-2 parts of A_i[n] as a vector and a 3x3 matrix
    E_i = bias_t + lin_t . x + w2_t . silu(w1_t^T x + b1_t),  x = (D_i - mean_t) / std_t

The model is trained with torch (``scripts/fs_ace_probe.py``, autograd forces and
stress); this evaluator computes the same energy with analytic forces and virial by
hand-written reverse-mode derivatives, so MD needs neither torch nor a GPU. Nothing in
the default potential uses it yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from viglas.errors import CalculatorError
from viglas.jit import lazy_kernel

SCHEMA = "viglas-acemlp/1"


def monomials(pmax: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponents (M, 3), degrees (M,) and multinomial weights (M,) of the Cartesian
    monomials of a unit vector up to degree ``pmax`` (the order the descriptors use)."""
    from viglas.potentials.delta_ace import monomials as mono

    return mono(pmax)


class ACEMLPModel:
    """The arrays of a fitted ACE-MLP correction (see the module docstring)."""

    def __init__(self, d: dict[str, Any]):
        if d.get("schema") != SCHEMA:
            raise CalculatorError("not an ACE-MLP correction", field="parameters.acemlp",
                                  value=d.get("schema"), allowed=f"schema {SCHEMA}")
        self.meta = d.get("meta", {})
        self.elements = list(d["elements"])
        self.rc = float(d["rc_A"])
        self.pmax = int(d.get("pmax", 3))
        arr = {k: np.ascontiguousarray(np.asarray(v, dtype=np.float64))
               for k, v in d["arrays"].items()}
        self.W, self.mean, self.std = arr["W"], arr["mean"], arr["std"]
        self.bias, self.lin = arr["bias"], arr["lin"]
        self.w1, self.b1, self.w2 = arr["w1"], arr["b1"], arr["w2"]
        ne, ne2, self.N, self.K = self.W.shape
        if ne != len(self.elements) or ne2 != ne:
            raise CalculatorError("ACE-MLP radial weights have the wrong shape",
                                  field="parameters.acemlp.arrays.W", value=self.W.shape,
                                  allowed="(elements, elements, nrad, nbessel)")
        self.ex, self.deg, self.wm = monomials(self.pmax)
        idx = {tuple(e): k for k, e in enumerate(self.ex.tolist())}
        eye = np.eye(3, dtype=int)
        self.v_idx = np.array([idx[tuple(eye[a])] for a in range(3)], np.int64)
        self.m_idx = np.array([[idx[tuple(eye[a] + eye[b])] for b in range(3)]
                               for a in range(3)], np.int64)
        N = self.N
        self.triu = np.array([(a, b) for a in range(N) for b in range(a, N)], np.int64)
        self.vmv = np.array([(a, b, c) for a in range(N) for b in range(N)
                             for c in range(a, N)], np.int64)
        self.t3 = np.array([(a, b, c) for a in range(N) for b in range(a, N)
                            for c in range(b, N)], np.int64)
        nd = N + (self.pmax + 1) * len(self.triu) + len(self.vmv) + len(self.t3)
        if self.mean.shape != (ne, nd) or self.w1.shape[:2] != (ne, nd):
            raise CalculatorError("ACE-MLP descriptor arrays do not match the radial basis",
                                  field="parameters.acemlp.arrays", value=self.mean.shape,
                                  allowed=f"({ne}, {nd}) for {N} radial functions")

    def identity(self) -> dict[str, Any]:
        """Schema, elements, cutoff and a hash of every array (run provenance)."""
        import hashlib

        h = hashlib.sha256()
        for a in (self.W, self.mean, self.std, self.bias, self.lin, self.w1, self.b1, self.w2):
            h.update(np.ascontiguousarray(a, np.float64).tobytes())
        return {"schema": SCHEMA, "elements": self.elements, "rc_A": self.rc,
                "arrays_sha256": h.hexdigest()[:20], "meta": self.meta}

    @classmethod
    def load(cls, path: str | Path) -> ACEMLPModel:
        import gzip

        p = Path(path)
        text = gzip.open(p, "rt").read() if p.suffix == ".gz" else p.read_text()
        return cls(json.loads(text))

    def types_of(self, symbols) -> np.ndarray:
        missing = sorted(set(symbols) - set(self.elements))
        if missing:
            raise CalculatorError("element not covered by the ACE-MLP correction",
                                  field="elements", value=missing, allowed=self.elements)
        return np.array([self.elements.index(s) for s in symbols], np.int64)


@lazy_kernel
def kernel(numba):
    njit = numba.njit(cache=True, nogil=True, fastmath=True)

    @njit
    def bessel(r, rc, g, dg):
        """g_k(r) and dg_k/dr (k = 1..K) into g, dg; sin(k x), cos(k x) by recurrence."""
        x = np.pi / rc
        fc = 0.5 * (1.0 + np.cos(x * r))
        dfc = -0.5 * x * np.sin(x * r)
        s1, c1 = np.sin(x * r), np.cos(x * r)
        sk, ck = s1, c1
        for k in range(g.shape[0]):
            a = (k + 1) * x
            g[k] = sk / r * fc
            dg[k] = (a * ck / r - sk / (r * r)) * fc + sk / r * dfc
            sk, ck = sk * c1 + ck * s1, ck * c1 - sk * s1

    @njit
    def radial(W, t, s, g, dg, out, dout):
        """R_n^{ts}(r) and dR/dr into out, dout (N,) from the Bessel values g, dg."""
        N, K = W.shape[2], W.shape[3]
        for n in range(N):
            acc = 0.0
            dacc = 0.0
            for k in range(K):
                acc += W[t, s, n, k] * g[k]
                dacc += W[t, s, n, k] * dg[k]
            out[n] = acc
            dout[n] = dacc

    @njit
    def bond(pos, cell, s, i, j, d, u):
        """d = r_j - r_i (+ the image shift s), u = d / |d|; returns |d|."""
        for c in range(3):
            d[c] = pos[j, c] - pos[i, c] + s[0] * cell[0, c] + s[1] * cell[1, c] \
                + s[2] * cell[2, c]
        r = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
        for c in range(3):
            u[c] = d[c] / r
        return r

    @njit
    def powers(u, ex, um, dum, pw):
        """u_m and du_m/du_c for the monomials ``ex`` of the unit vector u."""
        for c in range(3):
            pw[c, 0] = 1.0
            for e in range(1, pw.shape[1]):
                pw[c, e] = pw[c, e - 1] * u[c]
        for m in range(ex.shape[0]):
            a, b, c = ex[m, 0], ex[m, 1], ex[m, 2]
            um[m] = pw[0, a] * pw[1, b] * pw[2, c]
            dum[m, 0] = a * pw[0, a - 1] * pw[1, b] * pw[2, c] if a > 0 else 0.0
            dum[m, 1] = b * pw[0, a] * pw[1, b - 1] * pw[2, c] if b > 0 else 0.0
            dum[m, 2] = c * pw[0, a] * pw[1, b] * pw[2, c - 1] if c > 0 else 0.0

    @njit
    def run(pos, cell, ii, jj, S, types, rc, W, ex, deg, wm, v_idx, m_idx, triu, vmv, t3,
            mean, std, bias, lin, w1, b1, w2, forces, virial):
        n_at = pos.shape[0]
        N = W.shape[2]
        M = ex.shape[0]
        P = len(ii)
        pmax = deg.max()
        A = np.zeros((n_at, N, M))
        um = np.zeros(M)
        dum = np.zeros((M, 3))
        K = W.shape[3]
        gk = np.zeros((P, K))
        dgk = np.zeros((P, K))
        uu = np.zeros((P, 3))
        dd = np.zeros((P, 3))
        rr = np.zeros(P)
        pw = np.zeros((3, pmax + 1))
        # monomials are sorted by degree: [lo[p], lo[p + 1]) holds degree p
        lo = np.zeros(pmax + 2, np.int64)
        sgn = np.ones((2, M))  # u(-d) = (-1)^deg u(d): the sign each centre sees (i, j)
        for m in range(M):
            lo[deg[m] + 1] = m + 1
            if deg[m] % 2 == 1:
                sgn[1, m] = -1.0
        # the radial functions of both centres of every pair, kept for pass 3
        Rp = np.zeros((P, 2, N))
        dRp = np.zeros((P, 2, N))
        # pass 1: the atomic bases, both directions of every half-list pair
        for p in range(P):
            i, j = ii[p], jj[p]
            r = bond(pos, cell, S[p], i, j, dd[p], uu[p])
            rr[p] = r
            if r >= rc:
                continue
            powers(uu[p], ex, um, dum, pw)
            bessel(r, rc, gk[p], dgk[p])
            radial(W, types[i], types[j], gk[p], dgk[p], Rp[p, 0], dRp[p, 0])
            radial(W, types[j], types[i], gk[p], dgk[p], Rp[p, 1], dRp[p, 1])
            for nn in range(N):
                ri = Rp[p, 0, nn]
                rj = Rp[p, 1, nn]
                for m in range(M):
                    A[i, nn, m] += ri * um[m]
                    A[j, nn, m] += rj * um[m] * sgn[1, m]
        # pass 2: descriptors, energies, dE/dA per atom
        nd = mean.shape[1]
        H = w1.shape[2]
        G = np.zeros((n_at, N, M))
        D = np.zeros(nd)
        gD = np.zeros(nd)
        z = np.zeros(H)
        v = np.zeros((N, 3))
        Mm = np.zeros((N, 3, 3))
        gv = np.zeros((N, 3))
        gM = np.zeros((N, 3, 3))
        Mv = np.zeros((N, N, 3))
        MM = np.zeros((N, N, 3, 3))
        energy = 0.0
        for a in range(n_at):
            t = types[a]
            for nn in range(N):
                for c in range(3):
                    v[nn, c] = A[a, nn, v_idx[c]]
                    for c2 in range(3):
                        Mm[nn, c, c2] = A[a, nn, m_idx[c, c2]]
            k = 0
            for nn in range(N):
                D[k] = A[a, nn, 0]
                k += 1
            for pp in range(pmax + 1):
                for q in range(triu.shape[0]):
                    n1, n2 = triu[q, 0], triu[q, 1]
                    s = 0.0
                    for m in range(lo[pp], lo[pp + 1]):
                        s += wm[m] * A[a, n1, m] * A[a, n2, m]
                    D[k] = s
                    k += 1
            for y in range(N):  # Mv[y, w] = M_y v_w and MM[x, y] = M_x M_y
                for w in range(N):
                    for c in range(3):
                        s = 0.0
                        for c2 in range(3):
                            s += Mm[y, c, c2] * v[w, c2]
                        Mv[y, w, c] = s
                        for c3 in range(3):
                            s = 0.0
                            for c2 in range(3):
                                s += Mm[y, c, c2] * Mm[w, c2, c3]
                            MM[y, w, c, c3] = s
            k_vmv = k
            for q in range(vmv.shape[0]):
                x, y, w = vmv[q, 0], vmv[q, 1], vmv[q, 2]
                D[k] = v[x, 0] * Mv[y, w, 0] + v[x, 1] * Mv[y, w, 1] + v[x, 2] * Mv[y, w, 2]
                k += 1
            k_t3 = k
            for q in range(t3.shape[0]):
                x, y, w = t3[q, 0], t3[q, 1], t3[q, 2]
                s = 0.0
                for c in range(3):
                    for c3 in range(3):
                        s += MM[x, y, c, c3] * Mm[w, c3, c]
                D[k] = s
                k += 1
            # readout and its gradient with respect to D
            e = bias[t]
            for q in range(nd):
                D[q] = (D[q] - mean[t, q]) / std[t, q]
                e += lin[t, q] * D[q]
                gD[q] = lin[t, q]
            for h in range(H):
                z[h] = b1[t, h]
            for q in range(nd):  # w1[t] is (nd, H): the inner loop runs along memory
                dq = D[q]
                for h in range(H):
                    z[h] += w1[t, q, h] * dq
            for h in range(H):
                zz = z[h]
                sg = 1.0 / (1.0 + np.exp(-zz))
                e += w2[t, h] * zz * sg
                z[h] = w2[t, h] * sg * (1.0 + zz * (1.0 - sg))
            for q in range(nd):
                s = 0.0
                for h in range(H):
                    s += w1[t, q, h] * z[h]
                gD[q] = (gD[q] + s) / std[t, q]
            energy += e
            # dE/dA
            for nn in range(N):
                G[a, nn, 0] += gD[nn]
                for c in range(3):
                    gv[nn, c] = 0.0
                    for c2 in range(3):
                        gM[nn, c, c2] = 0.0
            k = N
            for pp in range(pmax + 1):
                for q in range(triu.shape[0]):
                    n1, n2 = triu[q, 0], triu[q, 1]
                    g = gD[k]
                    for m in range(lo[pp], lo[pp + 1]):
                        G[a, n1, m] += g * wm[m] * A[a, n2, m]
                        G[a, n2, m] += g * wm[m] * A[a, n1, m]
                    k += 1
            for q in range(vmv.shape[0]):  # M symmetric: v_x . M_y = M_y v_x
                x, y, w = vmv[q, 0], vmv[q, 1], vmv[q, 2]
                g = gD[k_vmv + q]
                for c in range(3):
                    gv[x, c] += g * Mv[y, w, c]
                    gv[w, c] += g * Mv[y, x, c]
                    for c2 in range(3):
                        gM[y, c, c2] += g * v[x, c] * v[w, c2]
            for q in range(t3.shape[0]):  # d Tr(XYZ)/dX = (YZ)^T, /dY = (ZX)^T, /dZ = (XY)^T
                x, y, w = t3[q, 0], t3[q, 1], t3[q, 2]
                g = gD[k_t3 + q]
                for c in range(3):
                    for c2 in range(3):
                        gM[x, c, c2] += g * MM[y, w, c2, c]
                        gM[y, c, c2] += g * MM[w, x, c2, c]
                        gM[w, c, c2] += g * MM[x, y, c2, c]
            for nn in range(N):
                for c in range(3):
                    G[a, nn, v_idx[c]] += gv[nn, c]
                    for c2 in range(3):
                        G[a, nn, m_idx[c, c2]] += gM[nn, c, c2]
        # pass 3: forces and virial from dE/dA through the pair terms
        gu = np.zeros(3)
        gR = np.zeros(M)
        gdR = np.zeros(M)
        for p in range(P):  # the bonds of pass 1, within the cutoff
            r = rr[p]
            if r >= rc:
                continue
            i, j = ii[p], jj[p]
            u = uu[p]
            d = dd[p]
            powers(u, ex, um, dum, pw)
            sr = 0.0
            for c in range(3):
                gu[c] = 0.0
            # centre i sees u(d); centre j sees u(-d) = (-1)^deg u(d), and d(-d)/dd = -1
            for m in range(M):
                gR[m] = 0.0
                gdR[m] = 0.0
            for side in range(2):
                a = i if side == 0 else j
                for nn in range(N):
                    rn = Rp[p, side, nn]
                    drn = dRp[p, side, nn]
                    for m in range(M):
                        g = G[a, nn, m] * sgn[side, m]
                        gR[m] += g * rn
                        gdR[m] += g * drn
            for m in range(M):
                sr += gdR[m] * um[m]
                for c in range(3):
                    gu[c] += gR[m] * dum[m, c]
            ug = gu[0] * u[0] + gu[1] * u[1] + gu[2] * u[2]
            for c in range(3):
                gd = sr * u[c] + (gu[c] - ug * u[c]) / r
                forces[i, c] += gd
                forces[j, c] -= gd
                for c2 in range(3):
                    virial[c2, c] += d[c2] * gd
        return energy

    return run


def evaluate(model: ACEMLPModel, atoms, nl=None, types=None):
    """Energy (eV), forces (eV/Å) and stress (Voigt, eV/Å³, ASE sign) of ``atoms``."""
    from viglas.potentials.ionic import half_neighbour_list

    pos = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    cell = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
    if types is None:
        types = model.types_of(atoms.get_chemical_symbols())
    i, j, S = nl if nl is not None else half_neighbour_list(pos, cell, model.rc)
    f = np.zeros((len(atoms), 3))
    v = np.zeros((3, 3))
    k = kernel()
    if k is None:
        raise CalculatorError("the ACE-MLP evaluator needs numba", field="numba",
                              value=None, allowed="pip install numba (a core dependency)")
    e = k(pos, cell, np.ascontiguousarray(i, np.int64), np.ascontiguousarray(j, np.int64),
          np.ascontiguousarray(S, dtype=np.int64), types, model.rc, model.W, model.ex,
          model.deg, model.wm, model.v_idx, model.m_idx, model.triu, model.vmv, model.t3,
          model.mean, model.std, model.bias, model.lin, model.w1, model.b1, model.w2, f, v)
    s = 0.5 * (v + v.T) / atoms.get_volume()
    return float(e), f, np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
