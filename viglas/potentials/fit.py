"""Force matching of the ionic potential to reference (ML-potential) labels.

The model is exactly the one of :class:`viglas.potentials.IonicPotential`:
per pair ``A exp(-r/rho) - C/r^6 + B/r^12`` (energy shifted to 0 at
``short_range_cutoff``) plus damped-shifted-force Coulomb with charges
``charge_scale * formal``. For a fixed set of configurations the neighbour lists
(:func:`matscipy.neighbours.neighbour_list`) are built once; forces, stresses and
energies are then sums over pairs of a scalar per pair, so any parameter vector is
evaluated by a few vectorised passes and the Jacobian is analytic.

Objective (:func:`fit_parameters`, :func:`scipy.optimize.least_squares`, method
``trf`` with bounds):

* forces, every Cartesian component, in eV/Å, weight ``force_weight``;
* stresses, 6 Voigt components, in GPa, weight ``stress_weight``;
* energy differences per atom within a group of identical stoichiometry (the group
  mean is subtracted from prediction and reference, so the unknown energy zero of
  the reference drops out), in eV/atom, weight ``energy_weight``.

Free parameters are ``ln A`` and ``rho`` of every fitted pair, ``C`` of anion–anion
pairs and the global ``charge_scale``. ``B`` (a short-range wall that removes the
Buckingham/Coulomb collapse at r -> 0) keeps its starting value, set by a rule
(:func:`wall_B`) in :func:`initial_parameters`, and is reported as fixed. Pairs with fewer than ``min_pairs`` close contacts in the
training data, and all cation–cation pairs, are not fitted: they keep their starting
values (physical guesses, :func:`initial_parameters`) or have only Coulomb, and the
fit result says so with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from scipy.special import erfc

from viglas.chemistry import ANIONS, CATIONS, CONTACT_A, FORMAL_CHARGES
from viglas.errors import FitError
from viglas.potentials.parameters import (PAIR_FIELDS, THREE_BODY_FIELDS, IonicParameters,
                                          PairParameters, ThreeBodyParameters, pair_key)
from viglas.units import COULOMB_EV_A, EV_A3_TO_GPA



def is_cation_anion(key: str) -> bool:
    a, b = key.split("-")
    return (a in CATIONS) != (b in CATIONS)


def is_anion_anion(key: str) -> bool:
    a, b = key.split("-")
    return a in ANIONS and b in ANIONS


#: Cation–cation wall distances r_w (Å): the fixed repulsion ``B/r^12`` of a
#: cation–cation pair is 1 eV at r_w, about 0.6–0.7 × the shortest cation–cation
#: distance in the parent oxides/chlorides (Li2O, Na2O, Al2O3, LiAlO2, B2O3, ...), so it
#: is < 0.03 eV at normal distances. Without it, two cations with scaled charges can be
#: pushed onto each other by the anions (Na–Na at 1.6 Å was seen at 1000 K).
CATION_WALL_A: dict[str, float] = {"alkali-alkali": 1.6, "Na-Na": 1.9, "Li-Na": 1.75,
                                   "Li-former": 1.7, "Na-former": 1.95,
                                   "former-former": 1.9, "B-B": 1.6}


def cation_wall_distance(key: str) -> float:
    """r_w in Å of the fixed cation–cation wall of pair ``key`` (see CATION_WALL_A)."""
    a, b = key.split("-")
    alk = {"Li", "Na"}
    if key in CATION_WALL_A:
        return CATION_WALL_A[key]
    if a in alk and b in alk:
        return CATION_WALL_A["alkali-alkali"]
    if a in alk or b in alk:
        return CATION_WALL_A["Na-former" if "Na" in (a, b) else "Li-former"]
    return CATION_WALL_A["former-former"]


def wall_B(key: str, charge_scale: float, C: float = 0.0,
           charges: dict[str, float] | None = None) -> float:
    """Wall coefficient B (eV Å^12) of pair ``key``.

    The wall ``B/r^12`` equals twice the magnitude of the attractive terms (Coulomb
    between opposite charges, dispersion ``C/r^6``) at ``r_w = 0.55 * contact``
    distance, so the pair energy turns repulsive below ``r_w`` and a hot ion cannot
    fall into the other; at the contact distance it adds < 0.1 eV.
    """
    q = charges or FORMAL_CHARGES
    a, b = key.split("-")
    r_w = 0.55 * CONTACT_A.get(key, 2.5)
    attr = C / r_w**6
    if q[a] * q[b] < 0:
        attr += COULOMB_EV_A * abs(q[a] * q[b]) * charge_scale**2 / r_w
    return float(2.0 * attr * r_w**12)


#: Bond cutoffs (Å) of the three-body term per network former: ~1.3 x its longest
#: first-shell bond (Al-Cl 2.13-2.3, Ga-Cl 2.17, In-Cl 2.40, B-Cl 1.75 Å) and below the
#: second anion shell.
THREE_BODY_CUTOFF_A: dict[str, float] = {"Al": 3.4, "Ga": 3.4, "In": 3.7, "B": 2.9}
#: Screening length gamma (Å) of the three-body term (fixed in fits). With the cutoffs
#: above the screening product of two first-shell bonds is ~0.1 and a fifth ligand at
#: 2.6-2.9 Å (Al) still feels the term, which is what keeps AlX4 tetrahedral.
THREE_BODY_GAMMA_A: float = 1.5


def initial_three_body(elements: Sequence[str], k: float = 1.0) -> dict[str, ThreeBodyParameters]:
    """Starting angle terms: every network former present (Al, Ga, In, B) keeps its
    anion–former–anion angles near tetrahedral (``cos0 = -1/3``), screened at
    :data:`THREE_BODY_CUTOFF_A` with ``gamma = THREE_BODY_GAMMA_A``. Only ``k`` is
    fitted (``cos0``, ``gamma`` and ``cutoff`` are listed as fixed; remove ``cos0``
    from ``fixed`` to fit it too)."""
    anions = sorted(set(elements) & set(ANIONS))
    out = {}
    for m in sorted(set(elements) & set(THREE_BODY_CUTOFF_A)):
        if anions:
            out[m] = ThreeBodyParameters(k=k, cos0=-1.0 / 3.0, gamma=THREE_BODY_GAMMA_A,
                                         cutoff=THREE_BODY_CUTOFF_A[m], neighbours=anions,
                                         fixed=["cos0", "gamma", "cutoff"])
    return out


def initial_parameters(elements: Sequence[str] = tuple(FORMAL_CHARGES),
                       charge_scale: float = 0.75, alpha: float = 0.2,
                       coulomb_cutoff: float = 10.0,
                       short_range_cutoff: float = 7.0,
                       cation_walls: bool = True, three_body: bool = False) -> IonicParameters:
    """Physically sensible starting parameters for the elements given.

    Cation–anion and anion–anion pairs get ``rho = 0.30`` Å (0.22 Å for B–O) and the
    ``A`` that balances the Coulomb attraction of the pair at its contact distance
    ``d0`` (:data:`CONTACT_A`): ``A/rho exp(-d0/rho) = k |q_i q_j| s^2 / d0^2`` (for
    anion pairs the Coulomb repulsion is already there, so ``A`` gives 0.05 eV at
    ``d0``); anion–anion pairs start with ``C`` = 20 (O–O), 40 (Cl–O), 80 (Cl–Cl)
    eV Å^6. Cation–cation pairs get only a fixed wall ``B/r^12`` equal to 1 eV at
    :func:`cation_wall_distance` (``A = 0``, all fixed) when ``cation_walls``, else no
    short-range term. ``three_body`` adds :func:`initial_three_body` angle terms.
    """
    charges = {el: FORMAL_CHARGES[el] for el in elements}
    pairs: dict[str, PairParameters] = {}
    els = sorted(elements)
    for x in range(len(els)):
        for y in range(x, len(els)):
            key = pair_key(els[x], els[y])
            if els[x] in CATIONS and els[y] in CATIONS:
                if cation_walls:
                    pairs[key] = PairParameters(A=0.0, rho=0.3, C=0.0,
                                                B=cation_wall_distance(key) ** 12,
                                                fixed=["A", "rho", "C", "B"])
                continue
            if key not in CONTACT_A:
                continue
            d0 = CONTACT_A[key]
            a, b = key.split("-")
            if is_cation_anion(key):
                rho = 0.22 if key == "B-O" else 0.30
                force = COULOMB_EV_A * abs(charges[a] * charges[b]) * charge_scale**2 / d0**2
                A = force * rho * math.exp(d0 / rho)
                C = 0.0
            else:
                rho = 0.30
                A = 0.05 * math.exp(d0 / rho)
                C = {"O-O": 20.0, "Cl-O": 40.0, "Cl-Cl": 80.0}[key]
            B = wall_B(key, charge_scale, C, charges)
            pairs[key] = PairParameters(A=A, rho=rho, C=C, B=B)
    return IonicParameters(
        description="starting values for force matching (not fitted)",
        charges=charges, charge_scale=charge_scale,
        coulomb={"method": "dsf", "alpha": alpha, "cutoff": coulomb_cutoff},
        short_range_cutoff=short_range_cutoff, pairs=pairs,
        three_body=initial_three_body(elements) if three_body else {})


# ---------------------------------------------------------------------------------
# prepared data


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


# ---------------------------------------------------------------------------------
# the fit


@dataclass
class FitSettings:
    """Weights and choices of a force-matching fit.

    ``force_weight`` per eV/Å, ``stress_weight`` per GPa, ``energy_weight`` per
    eV/atom; ``min_pairs`` close contacts (r < 1.25 × contact distance) a pair needs in
    the training data to be fitted; ``fit_charge_scale`` lets the global charge scale
    vary within ``charge_scale_bounds``; ``rho_bounds`` in Å; ``fit_C`` fits the
    dispersion ``C`` of anion–anion pairs (cation–anion ``C`` is fixed at 0);
    ``kind_weights`` multiplies the force and stress residuals of frames by their
    ``info["kind"]`` (e.g. ``{"iter": 2.0}`` stresses configurations visited by MD with
    the fitted potential; default 1); ``composition_weights`` does the same by
    ``info["composition"]`` (e.g. ``{"LiBCl2.5O0.75": 3.0}``: a composition the pair
    form describes worst gets more say). ``three_body_k_bounds`` (eV) and
    ``cos0_bounds`` bound the angle-term parameters that are free.
    """

    force_weight: float = 1.0
    stress_weight: float = 0.5
    energy_weight: float = 10.0
    min_pairs: int = 30
    fit_charge_scale: bool = True
    charge_scale_bounds: tuple[float, float] = (0.4, 1.0)
    rho_bounds: tuple[float, float] = (0.12, 0.6)
    A_bounds: tuple[float, float] = (1.0, 1e7)
    C_bounds: tuple[float, float] = (0.0, 500.0)
    fit_C: bool = True
    max_nfev: int = 200
    kind_weights: dict[str, float] = field(default_factory=dict)
    three_body_k_bounds: tuple[float, float] = (0.0, 200.0)
    cos0_bounds: tuple[float, float] = (-1.0, 0.0)
    composition_weights: dict[str, float] = field(default_factory=dict)


@dataclass
class FitResult:
    """Outcome of :func:`fit_parameters`.

    ``parameters``: fitted :class:`IonicParameters`; ``free``: names of fitted
    parameters (``"Al-Cl.A"``, ``"charge_scale"``); ``fixed``: pair key -> reason for
    pairs not fitted; ``uncertainty``: one-sigma relative uncertainty of each free
    parameter from the Jacobian; ``train_metrics``: force RMSE (eV/Å) and R²,
    stress RMSE (GPa), energy RMSE (eV/atom) on the training data; ``cost`` final
    least-squares cost; ``nfev`` evaluations.
    """

    parameters: IonicParameters
    free: list[str]
    fixed: dict[str, str]
    uncertainty: dict[str, float]
    train_metrics: dict[str, float]
    cost: float
    nfev: int
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


def _group_center(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``values`` minus the mean of their group (along axis 0)."""
    counts = np.bincount(groups, minlength=n_groups).astype(float)
    if values.ndim == 1:
        mean = np.bincount(groups, weights=values, minlength=n_groups) / counts
        return values - mean[groups]
    out = np.empty_like(values)
    for k in range(values.shape[1]):
        mean = np.bincount(groups, weights=values[:, k], minlength=n_groups) / counts
        out[:, k] = values[:, k] - mean[groups]
    return out


def fit_parameters(frames: Sequence[Atoms], initial: IonicParameters | None = None,
                   settings: FitSettings | None = None, *,
                   fix: dict[str, Sequence[str]] | None = None,
                   verbose: int = 0) -> FitResult:
    """Fit the ionic potential to labelled ``frames`` by force matching.

    ``initial``: starting (and fixed-value) parameters, default
    :func:`initial_parameters` for the elements present. ``fix``: extra
    ``{pair_key: [names]}`` to hold fixed (besides ``fixed`` lists in ``initial``).
    Returns a :class:`FitResult`; raises :class:`FitError` if no parameter can be fitted.
    """
    from scipy.optimize import least_squares

    settings = settings or FitSettings()
    frames = list(frames)
    if initial is None:
        els = sorted({s for a in frames for s in a.get_chemical_symbols()})
        initial = initial_parameters(els)
    data = PairData(frames, initial)
    ee, ef, es = zip(*(reference_labels(a) for a in frames))
    f_ref = np.concatenate(ef)
    has_s = np.array([s is not None for s in es])
    s_ref = np.array([s if s is not None else np.zeros(6) for s in es])
    e_ref = np.array(ee)
    gnames = sorted(set(data.formulas))
    groups = np.array([gnames.index(f) for f in data.formulas])
    n_groups = len(gnames)
    inv_n = 1.0 / data.n_atoms
    e_ref_c = _group_center(e_ref, groups, n_groups) * inv_n

    # ---- which parameters are free
    fixed_reason: dict[str, str] = {}
    free: list[tuple[str, str]] = []
    fix = {k: list(v) for k, v in (fix or {}).items()}
    for key in data.keys:
        p = initial.pairs[key]
        if set(p.fixed) >= {"A", "rho", "C", "B"}:
            fixed_reason[key] = "fixed by construction (cation-cation wall, not fitted)"
            continue
        n_close = data.close_contacts(key)
        if n_close < settings.min_pairs:
            fixed_reason[key] = (f"only {n_close} close contacts (< {settings.min_pairs}) in "
                                 "the training data: kept at the starting value")
            continue
        names = ["A", "rho"]
        if settings.fit_C and is_anion_anion(key):
            names.append("C")
        names = [n for n in names if n not in p.fixed and n not in fix.get(key, [])]
        free += [(key, n) for n in names]
    for m in data.centres:
        tb = initial.three_body[m]
        free += [("3b:" + m, n) for n in ("k", "cos0") if n not in tb.fixed
                 and n not in fix.get("three_body." + m, [])]
    if settings.fit_charge_scale:
        free.append(("", "charge_scale"))
    if not free:
        raise FitError("no parameter can be fitted with these data", field="frames",
                       value=len(frames), allowed="configurations with close contacts")

    def unpack(x: np.ndarray) -> IonicParameters:
        pairs = {k: v.model_copy() for k, v in initial.pairs.items()}
        cs = initial.charge_scale
        upd: dict[str, dict[str, float]] = {}
        upd3: dict[str, dict[str, float]] = {}
        for (key, name), val in zip(free, x):
            if key.startswith("3b:"):
                upd3.setdefault(key[3:], {})[name] = float(val)
            elif name == "charge_scale":
                cs = float(val)
            elif name == "A":
                upd.setdefault(key, {})["A"] = float(math.exp(val))
            else:
                upd.setdefault(key, {})[name] = float(val)
        for key, u in upd.items():
            pairs[key] = pairs[key].model_copy(update=u)
        tbs = {m: (t.model_copy(update=upd3[m]) if m in upd3 else t)
               for m, t in initial.three_body.items()}
        return initial.model_copy(update={"pairs": pairs, "charge_scale": cs,
                                          "three_body": tbs})

    x0, lo, hi = [], [], []
    for key, name in free:
        if key.startswith("3b:"):
            tb = initial.three_body[key[3:]]
            b = settings.three_body_k_bounds if name == "k" else settings.cos0_bounds
            x0.append(getattr(tb, name))
            lo.append(b[0])
            hi.append(b[1])
        elif name == "charge_scale":
            x0.append(initial.charge_scale)
            lo.append(settings.charge_scale_bounds[0])
            hi.append(settings.charge_scale_bounds[1])
        elif name == "A":
            x0.append(math.log(max(initial.pairs[key].A, settings.A_bounds[0] * 1.0001)))
            lo.append(math.log(settings.A_bounds[0]))
            hi.append(math.log(settings.A_bounds[1]))
        elif name == "rho":
            x0.append(initial.pairs[key].rho)
            lo.append(settings.rho_bounds[0])
            hi.append(settings.rho_bounds[1])
        elif name == "C":
            x0.append(initial.pairs[key].C)
            lo.append(settings.C_bounds[0])
            hi.append(settings.C_bounds[1])
    x0 = np.clip(np.array(x0), np.array(lo) + 1e-9, np.array(hi) - 1e-9)
    wf, ws, we = settings.force_weight, settings.stress_weight, settings.energy_weight
    kw = np.array([float(settings.kind_weights.get(str(a.info.get("kind", "")), 1.0))
                   * float(settings.composition_weights.get(str(a.info.get("composition", "")),
                                                            1.0))
                   for a in frames])
    s_mask = np.repeat((has_s * kw)[:, None], 6, axis=1).astype(float)
    wf = wf * np.repeat(kw, data.n_atoms)[:, None]

    def residual_parts(f, s, e):
        rf = (wf * (f - f_ref)).ravel()
        rs = (ws * EV_A3_TO_GPA * (s - s_ref) * s_mask).ravel()
        re = we * (_group_center(e, groups, n_groups) * inv_n - e_ref_c)
        return np.concatenate([rf, rs, re])

    def fun(x):
        p = unpack(x)
        return residual_parts(*data.evaluate(p))

    def jac(x):
        p = unpack(x)
        cols = []
        terms_cache: dict[str, dict[str, np.ndarray]] = {}
        for key, name in free:
            if key.startswith("3b:"):
                tb = p.three_body[key[3:]]
                f, s, e = data.three_body(key[3:], tb.k, tb.cos0, wrt=name)
            elif name == "charge_scale":
                cs = p.charge_scale
                f = 2 * cs * data.coul_forces
                s = 2 * cs * data.coul_stress
                e = 2 * cs * data.coul_energy
            else:
                if key not in terms_cache:
                    terms_cache[key] = data.pair_terms(key, p.pairs[key])
                t = terms_cache[key]
                suffix = "lnA" if name == "A" else name
                df, ds, de = data.assemble(t["g_" + suffix], t["u_" + suffix],
                                           data.slices[key])
                f, s, e = df, ds, de
            col = np.concatenate([
                (wf * f).ravel(), (ws * EV_A3_TO_GPA * s * s_mask).ravel(),
                we * _group_center(e, groups, n_groups) * inv_n])
            cols.append(col)
        return np.stack(cols, axis=1)

    res = least_squares(fun, x0, jac=jac, bounds=(lo, hi), method="trf",
                        x_scale="jac", max_nfev=settings.max_nfev, verbose=verbose,
                        tr_solver="exact")
    best = unpack(res.x)
    # record what was held fixed (B always: the wall is set by rule, not fitted)
    pairs = {}
    free_set = set(free)
    for key, p in best.pairs.items():
        fixed_names = sorted(n for n in PAIR_FIELDS if (key, n) not in free_set)
        pairs[key] = p.model_copy(update={"fixed": fixed_names})
    tbs = {m: t.model_copy(update={"fixed": [n for n in THREE_BODY_FIELDS
                                            if ("3b:" + m, n) not in free_set]})
           for m, t in best.three_body.items()}
    best = best.model_copy(update={"pairs": pairs, "three_body": tbs})

    # uncertainties from the Jacobian at the optimum: cov = s^2 (J^T J)^-1
    J = res.jac
    dof = max(1, J.shape[0] - J.shape[1])
    s2 = 2 * res.cost / dof
    try:
        cov = np.linalg.pinv(J.T @ J) * s2
        sig = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:  # pragma: no cover
        sig = np.full(len(free), np.nan)
    unc: dict[str, float] = {}
    def _label(key: str, name: str) -> str:
        if key.startswith("3b:"):
            return f"three_body.{key[3:]}.{name}"
        return "charge_scale" if name == "charge_scale" else f"{key}.{name}"

    for (key, name), x, sg in zip(free, res.x, sig):
        label = _label(key, name)
        # ln A: sigma is already relative; others relative to the value
        unc[label] = float(sg if name == "A" else sg / max(abs(x), 1e-12))

    f, s, e = data.evaluate(best)
    metrics = force_metrics(f, f_ref)
    metrics["stress_rmse_GPa"] = float(np.sqrt(np.mean(((s - s_ref)[has_s] * EV_A3_TO_GPA) ** 2))) \
        if has_s.any() else float("nan")
    metrics["energy_rmse_eV_atom"] = float(np.sqrt(np.mean(
        (_group_center(e, groups, n_groups) * inv_n - e_ref_c) ** 2)))
    free_labels = [_label(k, n) for k, n in free]
    return FitResult(parameters=best, free=free_labels, fixed=fixed_reason,
                     uncertainty=unc, train_metrics=metrics, cost=float(res.cost),
                     nfev=int(res.nfev), message=str(res.message))


def force_metrics(f_pred: np.ndarray, f_ref: np.ndarray) -> dict[str, float]:
    """Force RMSE (eV/Å, over Cartesian components), MAE and R² = 1 - SS_res/SS_tot
    (SS_tot about the mean reference component) of stacked force arrays."""
    d = np.asarray(f_pred) - np.asarray(f_ref)
    ss_res = float(np.sum(d**2))
    ss_tot = float(np.sum((f_ref - f_ref.mean()) ** 2))
    return {"force_rmse_eV_A": float(np.sqrt(np.mean(d**2))),
            "force_mae_eV_A": float(np.mean(np.abs(d))),
            "force_r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "n_force_components": int(d.size)}


# ---------------------------------------------------------------------------------
# the whole procedure: sample, label, fit, iterate


def anion_bonds(atoms: Atoms, limits: dict[str, float] | None = None) -> int:
    """Number of anion–anion pairs closer than a bond limit (Å; default Cl–Cl 2.4,
    Cl–O 2.0, O–O 1.8): molecular Cl2 / O2 / ClO that an ionic model cannot describe."""
    from matscipy.neighbours import neighbour_list

    lim = {"Cl-Cl": 2.4, "Cl-O": 2.0, "O-O": 1.8}
    lim.update(limits or {})
    i, j, d = neighbour_list("ijd", atoms, max(lim.values()))
    sym = np.array(atoms.get_chemical_symbols())
    n = 0
    for key, r in lim.items():
        a, b = key.split("-")
        m = (((sym[i] == a) & (sym[j] == b)) | ((sym[i] == b) & (sym[j] == a))) & (d < r)
        n += int(m.sum())
    return n // 2


def ionic_md_snapshots(start: Atoms, params: IonicParameters, *, temperature_K: float,
                       steps: int, n_snapshots: int, timestep_fs: float = 2.0,
                       seed: int = 0, min_contact_fraction: float = 0.7,
                       ) -> list[Atoms]:
    """Snapshots of Langevin NVT MD with the ionic potential ``params`` from ``start``.

    ``steps`` steps of ``timestep_fs`` fs at ``temperature_K``; ``n_snapshots`` frames
    evenly spaced over the second half. The run stops early on a non-finite force or
    when two atoms come closer than ``min_contact_fraction`` × their contact distance;
    such frames are not returned (the frames before are, they are the informative ones).
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from viglas.potentials.ionic import IonicPotential

    atoms = start.copy()
    atoms.info = {}
    atoms.calc = IonicPotential(params)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K,
                                 rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=temperature_K,
                   friction=0.01 / units.fs, fixcm=False,  # COM drift: harmless here
                   rng=np.random.default_rng(seed + 1))
    every = max(1, (steps // 2) // max(1, n_snapshots))
    out: list[Atoms] = []
    sym = np.array(atoms.get_chemical_symbols())
    from matscipy.neighbours import neighbour_list

    def ok(a: Atoms) -> bool:
        if not np.all(np.isfinite(a.positions)):
            return False
        i, j, d = neighbour_list("ijd", a, 2.5)
        lim = np.array([min_contact_fraction * CONTACT_A.get(pair_key(x, y), 2.6)
                        for x, y in zip(sym[i], sym[j])]) if len(i) else np.zeros(0)
        return bool(np.all(d >= lim))

    done = 0
    while done < steps:
        n = min(every, steps - done)
        dyn.run(n)
        done += n
        if not np.all(np.isfinite(atoms.get_forces())) or not ok(atoms):
            break
        if done > steps // 2 and len(out) < n_snapshots:
            snap = atoms.copy()
            snap.calc = None
            out.append(snap)
    return out


def fit_to_reference(compositions: Sequence[str], reference: Any = None, *,
                     cache_dir: str | Path | None = None, n_atoms: int = 64, seed: int = 0,
                     rounds: int = 3, iter_temperatures_K: Sequence[float] = (700.0, 1300.0),
                     iter_steps: int = 3000, iter_snapshots: int = 3,
                     settings: FitSettings | None = None, initial: IonicParameters | None = None,
                     num_threads: int | None = 1, command: str = "",
                     three_body: bool = False, log: Any = print) -> dict[str, Any]:
    """Sample, label, fit and iterate for ``compositions`` against ``reference``.

    1. :func:`viglas.potentials.reference.sample_composition` for each composition
       (relaxation, MD at 1500/1000/600 K, strains, rattles; the 1000 K frames are the
       held-out set), labels cached under ``cache_dir`` (default
       ``~/.cache/viglas/labels``).
    2. :func:`fit_parameters` on the training frames.
    3. Up to ``rounds`` times: MD with the fitted potential at ``iter_temperatures_K``
       (``iter_steps`` steps of 2 fs) from the last reference frame of each
       composition, ``iter_snapshots`` frames per run labelled by the reference and
       added to the training set, refit; stop when the held-out force RMSE improves by
       less than 1 %. The best parameters (lowest held-out RMSE) are returned.

    ``three_body`` starts from :func:`initial_three_body` angle terms (ignored when
    ``initial`` is given: its ``three_body`` entries are used as they are).

    Returns ``{"parameters", "history", "train", "valid", "fit"}`` (the last
    :class:`FitResult` under ``fit``).
    """
    from datetime import datetime, timezone

    from viglas.potentials.reference import (CHGNET_SPEC, label, make_calculator,
                                             parse_formula, sample_composition, spec_dict)

    reference = spec_dict(reference or CHGNET_SPEC)
    cache_dir = Path(cache_dir or Path.home() / ".cache" / "viglas" / "labels")
    for comp in compositions:
        parse_formula(comp)
    calc = None
    frames: list[Atoms] = []
    for k, comp in enumerate(compositions):
        fr = sample_composition(comp, reference, cache_dir, n_atoms=n_atoms, seed=seed,
                                num_threads=num_threads, calculator=calc, log=log)
        frames += fr
    sane = [a for a in frames if anion_bonds(a) == 0]
    n_rejected = len(frames) - len(sane)
    if n_rejected:
        log(f"{n_rejected} reference frames with anion-anion bonds (Cl2, O2, ClO) left out")
    train = [a for a in sane if a.info.get("split") == "train"]
    valid = [a for a in sane if a.info.get("split") == "valid"]
    if not valid:
        raise FitError("no held-out frames", field="frames", value=0)
    starts = {}
    for a in frames:
        if a.info.get("kind") == "md":
            starts[a.info["composition"]] = a
    els = sorted({s for a in frames for s in a.get_chemical_symbols()})
    params = initial or initial_parameters(els, three_body=three_body)
    if initial is not None:
        initial.check_elements(els)

    def valid_rmse(p: IonicParameters) -> float:
        data = PairData(valid, p)
        f, _, _ = data.evaluate(p)
        fr = np.concatenate([reference_labels(a)[1] for a in valid])
        return force_metrics(f, fr)["force_rmse_eV_A"]

    history = []
    res = fit_parameters(train, params, settings)
    best = (valid_rmse(res.parameters), res, 0)
    history.append({"round": 0, "n_train": len(train), "valid_force_rmse_eV_A": best[0],
                    "train": res.train_metrics, "charge_scale": res.parameters.charge_scale})
    log(f"round 0: {len(train)} train frames, held-out force RMSE {best[0]:.4f} eV/Å, "
        f"train R² {res.train_metrics['force_r2']:.3f}")
    current = res
    for rnd in range(1, rounds + 1):
        new = []
        for k, comp in enumerate(compositions):
            for t_K in iter_temperatures_K:
                snaps = ionic_md_snapshots(starts[comp], current.parameters,
                                           temperature_K=t_K, steps=iter_steps,
                                           n_snapshots=iter_snapshots,
                                           seed=seed + 1000 * rnd + 10 * k + int(t_K))
                for s in snaps:
                    s.info.update(composition=comp, kind="iter", t_K=float(t_K),
                                  split="train", seed=seed, round=rnd)
                new += snaps
        if calc is None and new:
            calc = make_calculator(reference, num_threads=num_threads)
        labelled = label(new, reference, cache_dir, calculator=calc, progress=False)
        labelled = [a for a in labelled if anion_bonds(a) == 0]
        train = train + labelled
        res = fit_parameters(train, current.parameters, settings)
        rmse = valid_rmse(res.parameters)
        history.append({"round": rnd, "n_train": len(train), "n_new": len(labelled),
                        "valid_force_rmse_eV_A": rmse, "train": res.train_metrics,
                        "charge_scale": res.parameters.charge_scale})
        log(f"round {rnd}: +{len(labelled)} frames, held-out force RMSE {rmse:.4f} eV/Å, "
            f"train R² {res.train_metrics['force_r2']:.3f}")
        improved = rmse < best[0] * 0.99
        if rmse < best[0]:
            best = (rmse, res, rnd)
        current = res
        if not improved:
            break
    rmse, res, rnd = best
    coulomb_only = {}
    for x in range(len(els)):
        for y in range(x, len(els)):
            key = pair_key(els[x], els[y])
            if key not in res.parameters.pairs:
                coulomb_only[key] = ("cation-cation pair: kept apart by Coulomb repulsion, "
                                     "no short-range term (as in Pedone/Teter-type potentials)"
                                     if key.split("-")[0] in CATIONS and key.split("-")[1]
                                     in CATIONS else "not in the parameter set")
    prov = {
        "reference": f"{reference['name']}-{reference['params'].get('model', '')}".rstrip("-"),
        "reference_spec": reference,
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "compositions": list(compositions),
        "n_train_frames": history[rnd]["n_train"],
        "n_valid_frames": len(valid),
        "n_rejected_frames": n_rejected,
        "rejected_because": "anion-anion bond (Cl-Cl < 2.4, Cl-O < 2.0, O-O < 1.8 A): "
                            "molecular Cl2/O2/ClO, outside an ionic model",
        "best_round": rnd,
        "valid_force_rmse_eV_A": round(rmse, 5),
        "free_parameters": res.free,
        "relative_uncertainty": {k: round(v, 5) for k, v in res.uncertainty.items()},
        "fixed_pairs": res.fixed,
        "coulomb_only_pairs": coulomb_only,
        "wall_rule": "B set so that B/r^12 = 2 x (Coulomb + C/r^6 attraction) at "
                     "0.55 x contact distance (not fitted)",
    }
    final = res.parameters.model_copy(update={
        "provenance": prov,
        "description": (f"Buckingham + wall + DSF Coulomb"
                        f"{' + three-body angle term' if res.parameters.three_body else ''}"
                        f" fitted by force matching to "
                        f"{prov['reference']} on {', '.join(compositions)}")})
    return {"parameters": final, "history": history, "train": train, "valid": valid,
            "fit": res}
