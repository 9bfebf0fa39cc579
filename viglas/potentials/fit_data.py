"""The fitter's own evaluator of the ionic potential: reference labels of a frame and
:class:`PairData`, the neighbour lists and Coulomb terms of a fixed set of
configurations.

The model is exactly the one of :class:`viglas.potentials.IonicPotential`. For a fixed
set of configurations the neighbour lists (:func:`matscipy.neighbours.neighbour_list`)
are built once; forces, stresses and energies are then sums over pairs of a scalar per
pair, so any parameter vector is evaluated by a few vectorised passes and the
Jacobian of :func:`viglas.potentials.fit.fit_parameters` is analytic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from scipy.special import erfc

from viglas.chemistry import CONTACT_A
from viglas.errors import FitError
from viglas.potentials.parameters import IonicParameters, PairParameters
from viglas.units import COULOMB_EV_A

__all__ = ["reference_labels", "PairData", "predict"]


def reference_labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Reference energy (eV), forces (eV/Å, shape (n, 3)) and stress (eV/Å³, Voigt
    xx yy zz yz xz xy, or None) of a labelled configuration (its calculator's results).
    Raises :class:`FitError` when ``atoms`` carries no labels."""
    calc = atoms.calc
    if calc is None:
        raise FitError("configuration has no reference labels", field="frames",
                       value=atoms.get_chemical_formula(),
                       allowed="Atoms with a SinglePointCalculator (energy, forces, stress)")
    res = calc.results
    if "energy" not in res or "forces" not in res:
        raise FitError("configuration lacks energy or forces", field="frames",
                       value=atoms.get_chemical_formula())
    s = res.get("stress")
    if s is not None:
        s = np.asarray(s, float)
        if s.shape == (3, 3):
            s = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return float(res["energy"]), np.asarray(res["forces"], float), s


class PairData:
    """Neighbour lists and Coulomb terms of a fixed set of configurations.

    Built once per fit; :meth:`evaluate` then returns forces (eV/Å), stresses
    (eV/Å^3, Voigt) and energies (eV) for any parameters with the same pair keys.
    """

    def __init__(self, frames: Sequence[Atoms], params: IonicParameters,
                 keys: Sequence[str] | None = None) -> None:
        from matscipy.neighbours import neighbour_list

        if len(frames) == 0:
            raise FitError("no configurations to fit", field="frames", value=0,
                           allowed="at least one labelled configuration")
        self.params0 = params
        self.rsr = float(params.short_range_cutoff)
        self.alpha = float(params.coulomb.alpha)
        self.rc = float(params.coulomb.cutoff)
        self.keys = sorted(keys if keys is not None else params.pairs)
        key_index = {k: n for n, k in enumerate(self.keys)}
        rc, a = self.rc, self.alpha
        e_shift = erfc(a * rc) / rc
        f_shift = erfc(a * rc) / rc**2 + 2 * a / math.sqrt(math.pi) * math.exp(-(a * rc) ** 2) / rc
        self_coef = erfc(a * rc) / (2 * rc) + a / math.sqrt(math.pi)

        from ase.data import atomic_numbers

        table = np.full((120, 120), -1, dtype=np.int64)
        for key, n in key_index.items():
            za, zb = (atomic_numbers[x] for x in key.split("-"))
            table[za, zb] = n
            table[zb, za] = n
        n_atoms, offsets, volumes = [], [0], []
        sr_i, sr_c, sr_t, sr_r, sr_D = [], [], [], [], []
        fc, sc, ec = [], [], []
        for c, atoms in enumerate(frames):
            params.check_elements(set(atoms.get_chemical_symbols()))
            n = len(atoms)
            vol = abs(atoms.get_volume())
            q = np.array([params.charges[s] for s in atoms.get_chemical_symbols()], float)
            i, j, d, D = neighbour_list("ijdD", atoms, max(rc, self.rsr))
            # Coulomb with formal charges (scaled later by charge_scale^2), full list
            m = d < rc
            ii, jj, dd, DD = i[m], j[m], d[m], D[m]
            qq = COULOMB_EV_A * q[ii] * q[jj]
            phi = erfc(a * dd) / dd - e_shift + f_shift * (dd - rc)
            dphi = (-erfc(a * dd) / dd**2 - 2 * a / math.sqrt(math.pi)
                    * np.exp(-(a * dd) ** 2) / dd + f_shift)
            g = qq * dphi / dd
            f = np.stack([np.bincount(ii, weights=g * DD[:, k], minlength=n)
                          for k in range(3)], axis=1)
            s = 0.5 * np.array([np.sum(g * DD[:, x] * DD[:, y]) for x, y in _VOIGT]) / vol
            e = 0.5 * float(np.sum(qq * phi)) - COULOMB_EV_A * self_coef * float(np.sum(q**2))
            fc.append(f)
            sc.append(s)
            ec.append(e)
            # short-range pairs of fitted keys
            m = d < self.rsr
            kk = table[atoms.numbers[i[m]], atoms.numbers[j[m]]]
            keep = kk >= 0
            sr_i.append(i[m][keep] + offsets[-1])
            sr_c.append(np.full(int(keep.sum()), c))
            sr_t.append(kk[keep])
            sr_r.append(d[m][keep])
            sr_D.append(D[m][keep])
            n_atoms.append(n)
            volumes.append(vol)
            offsets.append(offsets[-1] + n)
        self.n_frames = len(frames)
        self.n_atoms = np.array(n_atoms)
        self.offsets = np.array(offsets)
        self.volumes = np.array(volumes)
        self.n_total = int(self.offsets[-1])
        t = np.concatenate(sr_t)
        order = np.argsort(t, kind="stable")
        self.t = t[order]
        self.i = np.concatenate(sr_i)[order]
        self.c = np.concatenate(sr_c)[order]
        self.r = np.concatenate(sr_r)[order]
        D = np.concatenate(sr_D)[order]
        # per pair: the 3 force weights D and the 6 stress weights 0.5 D_a D_b / V
        self.D = D
        self.DD = np.stack([0.5 * D[:, x] * D[:, y] for x, y in _VOIGT], axis=1) \
            / self.volumes[self.c][:, None]
        self.i3 = 3 * self.i[:, None] + np.arange(3)[None, :]
        self.c6 = 6 * self.c[:, None] + np.arange(6)[None, :]
        bounds = np.searchsorted(self.t, np.arange(len(self.keys) + 1))
        self.slices = {k: slice(int(bounds[n]), int(bounds[n + 1]))
                       for n, k in enumerate(self.keys)}
        self.coul_forces = np.concatenate(fc)
        self.coul_stress = np.array(sc)
        self.coul_energy = np.array(ec)
        self.formulas = [a.get_chemical_formula() for a in frames]
        self.centres = sorted(params.three_body)
        self.tb_bases = {m: self._three_body_bases(frames, params, m) for m in self.centres}

    def _three_body_bases(self, frames: Sequence[Atoms], params: IonicParameters,
                          centre: str) -> dict[str, np.ndarray]:
        """Energy, forces and stress of the angle term of ``centre`` split into the three
        sums it is made of: ``E3 = k (S2 - 2 cos0 S1 + cos0^2 S0)`` with
        ``Sn = sum cos^n f f`` (gamma and cutoff fixed). Each basis is exact: the kernel
        with k = 1 at cos0 = 0, 1, -1 gives S2, S2 - 2 S1 + S0, S2 + 2 S1 + S0."""
        from viglas.potentials.ionic import (half_neighbour_list, three_body_kernel,
                                             three_body_tables)

        kern = three_body_kernel()
        tb = params.three_body[centre]
        out = {"f": np.zeros((3, self.n_total, 3)), "s": np.zeros((3, self.n_frames, 6)),
               "e": np.zeros((3, self.n_frames))}
        for c, atoms in enumerate(frames):
            sym = atoms.get_chemical_symbols()
            if centre not in sym:
                continue
            els = sorted(set(sym))
            types = np.array([els.index(x) for x in sym], dtype=np.intp)
            pos = np.ascontiguousarray(atoms.positions, dtype=np.float64)
            cell = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
            i, j, S = half_neighbour_list(pos, cell, tb.cutoff)
            S = S.astype(np.float64)
            vals = []
            for c0 in (0.0, 1.0, -1.0):
                t3 = three_body_tables({centre: tb.model_copy(update={"k": 1.0, "cos0": c0})},
                                       els)
                f = np.zeros((len(atoms), 3))
                v = np.zeros((3, 3))
                e = kern(pos, cell, i, j, S, types, t3["nbr"], t3["k"], t3["cos0"],
                         t3["gamma"], t3["rc"], f, v)
                vals.append((e, f, v / abs(atoms.get_volume())))
            (e0, f0, v0), (ep, fp, vp), (em, fm, vm) = vals
            sl = slice(self.offsets[c], self.offsets[c + 1])
            for name, a0, ap, am in (("e", e0, ep, em), ("f", f0, fp, fm), ("s", v0, vp, vm)):
                if name == "s":
                    a0, ap, am = (np.array([a[x_, y_] for x_, y_ in _VOIGT]) for a in (a0, ap, am))
                s2 = a0
                s1 = (am - ap) / 4.0
                s0 = (ap + am) / 2.0 - a0
                for n_, b in enumerate((s2, s1, s0)):
                    if name == "f":
                        out["f"][n_, sl] = b
                    else:
                        out[name][n_, c] = b
        return out

    def three_body(self, centre: str, k: float, cos0: float, wrt: str | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forces, stresses, energies of the angle term of ``centre`` (or their
        derivative with respect to ``wrt`` = ``"k"`` or ``"cos0"``)."""
        b = self.tb_bases[centre]
        if wrt is None:
            w = (k, -2.0 * k * cos0, k * cos0 * cos0)
        elif wrt == "k":
            w = (1.0, -2.0 * cos0, cos0 * cos0)
        else:
            w = (0.0, -2.0 * k, 2.0 * k * cos0)
        return tuple(w[0] * b[x][0] + w[1] * b[x][1] + w[2] * b[x][2]  # type: ignore[return-value]
                     for x in ("f", "s", "e"))

    # -------------------------------------------------------------- assembly
    def assemble(self, g: np.ndarray, u: np.ndarray, sl: slice | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forces (n_total, 3), stresses (n_frames, 6), energies (n_frames,) of pair
        scalars ``g = U'(r)/r`` and energies ``u = U(r)`` (full list: each pair twice)."""
        sl = sl or slice(None)
        i3, c6 = self.i3[sl], self.c6[sl]
        f = np.bincount(i3.ravel(), weights=(g[:, None] * self.D[sl]).ravel(),
                        minlength=3 * self.n_total).reshape(-1, 3)
        s = np.bincount(c6.ravel(), weights=(g[:, None] * self.DD[sl]).ravel(),
                        minlength=6 * self.n_frames).reshape(-1, 6)
        e = 0.5 * np.bincount(self.c[sl], weights=u, minlength=self.n_frames)
        return f, s, e

    def pair_terms(self, key: str, p: PairParameters) -> dict[str, np.ndarray]:
        """U, g = U'/r and their derivatives w.r.t. ln A, rho, C, B for pair ``key``."""
        r = self.r[self.slices[key]]
        rs = self.rsr
        ex = np.exp(-r / p.rho)
        exs = math.exp(-rs / p.rho)
        ir = 1.0 / r
        ir6 = ir**6
        A, rho, C, B = p.A, p.rho, p.C, p.B
        u = A * (ex - exs) - C * (ir6 - rs**-6) + B * (ir6 * ir6 - rs**-12)
        du = -A / rho * ex + 6 * C * ir6 * ir - 12 * B * ir6 * ir6 * ir
        return {
            "u": u, "g": du * ir,
            "u_lnA": A * (ex - exs), "g_lnA": -A / rho * ex * ir,
            "u_rho": A * (r * ex - rs * exs) / rho**2,
            "g_rho": A * ex * (1.0 / rho**2 - r / rho**3) * ir,
            "u_C": -(ir6 - rs**-6), "g_C": 6 * ir6 * ir * ir,
            "u_B": ir6 * ir6 - rs**-12, "g_B": -12 * ir6 * ir6 * ir * ir,
        }

    def evaluate(self, params: IonicParameters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forces (eV/Å, all atoms stacked), stresses (eV/Å^3), energies (eV)."""
        s2 = params.charge_scale**2
        f = s2 * self.coul_forces
        s = s2 * self.coul_stress
        e = s2 * self.coul_energy
        for key in self.keys:
            p = params.pairs.get(key)
            if p is None:
                continue
            terms = self.pair_terms(key, p)
            df, ds, de = self.assemble(terms["g"], terms["u"], self.slices[key])
            f, s, e = f + df, s + ds, e + de
        for m in self.centres:
            tb = params.three_body.get(m)
            if tb is None:
                continue
            df, ds, de = self.three_body(m, tb.k, tb.cos0)
            f, s, e = f + df, s + ds, e + de
        return f, s, e

    def close_contacts(self, key: str, factor: float = 1.25) -> int:
        """Number of (unordered) pairs of ``key`` closer than ``factor`` × contact distance."""
        r = self.r[self.slices[key]]
        return int(np.sum(r < factor * CONTACT_A.get(key, 2.5)) // 2)


_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def predict(frames: Sequence[Atoms], params: IonicParameters,
            ) -> list[dict[str, Any]]:
    """Energy (eV), forces (eV/Å) and stress (eV/Å^3, Voigt) of each frame under
    ``params``, evaluated with the fitter's vectorised pair sums."""
    data = PairData(frames, params)
    f, s, e = data.evaluate(params)
    out = []
    for c in range(data.n_frames):
        out.append({"energy": float(e[c]),
                    "forces": f[data.offsets[c]:data.offsets[c + 1]].copy(),
                    "stress": s[c].copy()})
    return out
