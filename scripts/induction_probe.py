#!/usr/bin/env python
"""Probe (issue 12, item 3): would a polarisation term lift the shipped fit's accuracy?

Adds to the exact design of the shipped ``dft-delta`` fit (same training frames,
settings, baseline charges and λ) one column per element s:

    U_s = sum_{i in s} |E_i|^2,   E_i = sum_j q_j phi(r_ij) (r_i - r_j)

the squared electric field of the baseline point charges at each atom, Tang–Toennies
damped at short range (b, order 4) and shifted to zero at ``--rc``. With a negative
coefficient, -alpha_s/2 |E_i|^2 is the first-order induction energy of a polarisable
ion of species s (not self-consistent: the induced dipoles do not polarise each other).
Its forces and stress are exact (checked against finite differences with ``--check``).

``--term embedding`` probes instead a species-resolved embedding: per centre element t
and neighbour element s, F_ts(rho_i^s) of the partial density rho_i^s = sum_{j of s}
(1 - r_ij/rc)^3 (cubic B-splines without a constant part, as the shipped embedding's,
which sees one density summed over all neighbours). ``--term none --ridge-scale EL:S``
adds no columns and only scales the regulariser of every coefficient involving element
EL (is an element under-fitted because the ridge holds it back?). ``--term scf-pol``
adds self-consistent induced point dipoles (one column per polarisability set), and
``--term bo4`` body-order-4 invariants of a centre's first shell (see their functions;
both need torch, the `ml` extra).

It refits the whole linear system with and without these columns and scores both on
the held-out frames (plan split) plus the frames the fit was not trained on (its own
round-18 glasses and the last round-0 cells), per composition and per frame.
Nothing here is shipped; the report says what a polarisable term would buy.

    python scripts/induction_probe.py [--rc 10] [--b-tt 1.8] [--lambdas 3,1]
        [--json viglas/potentials/data/dft/samplers/induction_probe.json]
    python scripts/induction_probe.py --term embedding [--emb-rc 5] [--emb-nk 8]
    python scripts/induction_probe.py --term none --ridge-scale In:0.1
    python scripts/induction_probe.py --term scf-pol [--pol-sets "base;Cl*1.5,O*1.5;In*3"]
    python scripts/induction_probe.py --term bo4 [--bo4-centres In,Ga,Al,B]
        [--bo4-channels Cl,O]

Cost: about 4 min and 4 GB on one core (the design of 259 frames x 7560 columns).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from math import erfc, pi, sqrt
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECIES = ["Li", "Na", "Al", "Ga", "In", "B", "Cl", "O"]


def phi(r: np.ndarray, a: float, rc: float, b: float) -> np.ndarray:
    """Radial factor of the field of a unit charge: shifted erfc field / r, TT-damped."""
    from scipy.special import erfc as verfc

    e = verfc(a * r) / r**2 + 2 * a / np.sqrt(pi) * np.exp(-(a * r) ** 2) / r
    ec = erfc(a * rc) / rc**2 + 2 * a / sqrt(pi) * np.exp(-(a * rc) ** 2) / rc
    br = b * r
    f = 1 - np.exp(-br) * (1 + br + br**2 / 2 + br**3 / 6 + br**4 / 24)
    return f * (e - ec) / r


def columns(atoms, charges: dict, species: list[str], rc: float, b: float, a: float = 0.2):
    """Energy (S,), forces (N, 3, S) and stress (6, S; eV/Å^3 per unit coefficient,
    ASE sign and Voigt order) of the columns U_s."""
    from ase.neighborlist import neighbor_list

    n = len(atoms)
    i, j, D = neighbor_list("ijD", atoms, rc)
    D = -D  # r_i - r_j
    r = np.linalg.norm(D, axis=1)
    sym = np.array(atoms.get_chemical_symbols())
    q = np.array([charges[s] for s in sym])
    h = 1e-5
    p = phi(r, a, rc, b)
    dp = (phi(r + h, a, rc, b) - phi(r - h, a, rc, b)) / (2 * h)
    E = np.zeros((n, 3))
    np.add.at(E, i, (q[j] * p)[:, None] * D)
    Ei = E[i]
    # dU_i/dD_ij = 2 J_ij E_i with J_ij = q_j (phi I + phi'/r D D^T)
    G = 2 * q[j][:, None] * (p[:, None] * Ei + (dp / r)[:, None] * D
                             * np.sum(D * Ei, 1)[:, None])
    U = np.sum(E * E, 1)
    vol = atoms.get_volume()
    ecol, fcol, scol = np.zeros(len(species)), np.zeros((n, 3, len(species))), \
        np.zeros((6, len(species)))
    for k, s in enumerate(species):
        m = sym[i] == s
        ecol[k] = U[sym == s].sum()
        F = np.zeros((n, 3))
        np.add.at(F, i[m], -G[m])
        np.add.at(F, j[m], G[m])
        fcol[:, :, k] = F
        W = np.einsum("pa,pb->ab", G[m], D[m]) / vol
        scol[:, k] = [W[0, 0], W[1, 1], W[2, 2], 0.5 * (W[1, 2] + W[2, 1]),
                      0.5 * (W[0, 2] + W[2, 0]), 0.5 * (W[0, 1] + W[1, 0])]
    return ecol, fcol, scol


def partial_densities(atoms, species: list[str], rc: float):
    """rho_i^s = sum_{j of species s, r_ij < rc} (1 - r_ij/rc)^3: (N, S), and the pairs."""
    from ase.neighborlist import neighbor_list

    i, j, D = neighbor_list("ijD", atoms, rc)
    D = -D  # r_i - r_j
    r = np.linalg.norm(D, axis=1)
    sym = np.array(atoms.get_chemical_symbols())
    sidx = np.array([species.index(x) for x in sym])
    rho = np.zeros((len(atoms), len(species)))
    np.add.at(rho, (i, sidx[j]), (1 - r / rc) ** 3)
    return rho, i, j, D, r, sidx


def _bsp(x: np.ndarray):
    """Uniform cubic B-spline on [0, 4) and its derivative (the shipped embedding's
    basis, scipy's basis element; 0 outside)."""
    from scipy.interpolate import BSpline

    b = BSpline.basis_element(np.arange(5.0), extrapolate=False)
    return np.nan_to_num(b(x)), np.nan_to_num(b.derivative()(x))


def embedding_columns(atoms, blocks: list, hi: dict, species: list[str], rc: float,
                      nk: int, kmin: int = 3):
    """Species-resolved embedding sum_{i of t} F_ts(rho_i^s), F_ts = sum_k c B_k(rho/he):
    columns (t, s, k) for each block (t, s) and k in [kmin, nk) (no constant part, so
    they cannot trade with the reference energies), he = hi[t, s] / nk. Energy, forces
    and stress as columns() gives them."""
    n = len(atoms)
    rho, i, j, D, r, sidx = partial_densities(atoms, species, rc)
    vol = atoms.get_volume()
    ncol = len(blocks) * (nk - kmin)
    ecol, fcol, scol = np.zeros(ncol), np.zeros((n, 3, ncol)), np.zeros((6, ncol))
    dphi = -3 * (1 - r / rc) ** 2 / rc
    for bi, (t, s) in enumerate(blocks):
        he = hi[(t, s)] / nk
        at = np.where(sidx == t)[0]
        pm = (sidx[i] == t) & (sidx[j] == s)
        for kk, k in enumerate(range(kmin, nk)):
            col = bi * (nk - kmin) + kk
            b, db = _bsp(rho[at, s] / he - (k - 3))
            ecol[col] = b.sum()
            _, dbp = _bsp(rho[i[pm], s] / he - (k - 3))
            G = ((dbp / he) * dphi[pm] / r[pm])[:, None] * D[pm]  # dE/dD_ij
            F = np.zeros((n, 3))
            np.add.at(F, i[pm], -G)
            np.add.at(F, j[pm], G)
            fcol[:, :, col] = F
            W = np.einsum("pa,pb->ab", G, D[pm]) / vol
            scol[:, col] = [W[0, 0], W[1, 1], W[2, 2], 0.5 * (W[1, 2] + W[2, 1]),
                            0.5 * (W[0, 2] + W[2, 0]), 0.5 * (W[0, 1] + W[1, 0])]
    return ecol, fcol, scol


#: polarisabilities (Å^3) of the free-ion-like set of the scf-pol probe: Cl-, O2- as in
#: polarisable-ion models of chloride melts and oxides, cations from Shannon & Fischer
#: (Phys. Rev. B 73, 235111 (2006)); the probe scales sets of them, it fits no alpha
POL_ALPHA = {"Li": 0.03, "Na": 0.18, "Al": 0.05, "Ga": 0.2, "In": 0.7, "B": 0.003,
             "Cl": 3.0, "O": 1.6}


def scf_pol_columns(atoms, charges: dict, alpha_sets: list[dict], rc: float, b: float):
    """Energy, forces and stress of self-consistent induced point dipoles, one column per
    polarisability set: E = -k_e/2 E0 . mu with (1/alpha - T) mu = E0, E0 the field of the
    point charges (Tang–Toennies damped, b), T the dipole tensor, both tapered by
    (1 - (r/rc)^2)^2. Exact derivatives by torch autograd (positions and strain)."""
    import torch
    from ase.neighborlist import neighbor_list

    k_e = 14.399645
    n = len(atoms)
    i, j, S = neighbor_list("ijS", atoms, rc)
    sym = atoms.get_chemical_symbols()
    q = torch.tensor([charges[x] for x in sym], dtype=torch.float64)
    pos = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    cell = torch.tensor(np.asarray(atoms.cell), dtype=torch.float64)
    eps = torch.zeros((3, 3), dtype=torch.float64, requires_grad=True)
    F = torch.eye(3, dtype=torch.float64) + 0.5 * (eps + eps.T)
    p_ = pos @ F
    c_ = cell @ F
    it, jt = torch.as_tensor(i), torch.as_tensor(j)
    D = p_[it] - p_[jt] - torch.as_tensor(S, dtype=torch.float64) @ c_  # r_i - r_j
    r = torch.linalg.norm(D, dim=1)
    tap = (1 - (r / rc) ** 2) ** 2
    br = b * r
    tt = 1 - torch.exp(-br) * (1 + br + br**2 / 2 + br**3 / 6 + br**4 / 24)
    E0 = torch.zeros((n, 3), dtype=torch.float64).index_add(
        0, it, (q[jt] * tt * tap / r**3)[:, None] * D)
    u = D / r[:, None]
    Tij = (3 * u[:, :, None] * u[:, None, :] - torch.eye(3, dtype=torch.float64)) \
        * (tap / r**3)[:, None, None]
    # dense dipole tensor, summed over periodic images of each pair
    Tf = torch.zeros((n * 3, n * 3), dtype=torch.float64)
    rows = (3 * it)[:, None, None] + torch.arange(3)[None, :, None]
    cols = (3 * jt)[:, None, None] + torch.arange(3)[None, None, :]
    Tf = Tf.index_put((rows.expand(-1, 3, 3).reshape(-1), cols.expand(-1, 3, 3).reshape(-1)),
                      Tij.reshape(-1), accumulate=True)
    vol = abs(float(np.linalg.det(atoms.cell)))
    e_out, f_out, s_out = [], [], []
    for al in alpha_sets:
        a = torch.tensor([al.get(x, 0.0) for x in sym], dtype=torch.float64).repeat_interleave(3)
        keep = a > 0
        A = torch.diag(1 / a[keep]) - Tf[keep][:, keep]
        mu = torch.linalg.solve(A, E0.reshape(-1)[keep])
        E = -0.5 * k_e * torch.dot(E0.reshape(-1)[keep], mu)
        gp, ge = torch.autograd.grad(E, (pos, eps), retain_graph=True)
        W = ge.numpy() / vol
        e_out.append(float(E.detach()))
        f_out.append(-gp.numpy())
        s_out.append([W[0, 0], W[1, 1], W[2, 2], W[1, 2], W[0, 2], W[0, 1]])
    return (np.array(e_out), np.stack(f_out, axis=2), np.array(s_out).T)


def bo4_invariants(channels: list[str], nr: int):
    """The channels (element, radial index) and the invariants of :func:`bo4_columns`,
    each (kind, channel indices), in column order."""
    import itertools

    chans = [(s_, k) for s_ in channels for k in range(nr)]
    C = len(chans)
    pairs = list(itertools.combinations_with_replacement(range(C), 2))
    kinds = ([("MMM", t) for t in itertools.combinations_with_replacement(range(C), 3)]
             + [("vMv", (a, b, c)) for (a, c) in pairs for b in range(C)]
             + [("TrTr", (a, b, c)) for a in range(C) for (b, c) in pairs])
    return chans, kinds


def bo4_columns(atoms, centres: list[str], channels: list[str], rc: float, nr: int = 2):
    """Body-order-4 invariants of each centre's first shell, one column per (centre
    element, invariant): with v_c = sum_j R_n(r_ij) u_ij and M_c = sum_j R_n(r_ij)
    u_ij u_ij^T over the neighbours j of element s (channel c = (s, n), R_n = (1 -
    r/rc)^(n+2)), the invariants Tr(M_a M_b M_c), v_a^T M_b v_c and Tr(M_a) Tr(M_b M_c)
    (three neighbours and the centre: one body order above the shipped ACE term).
    Exact derivatives by torch autograd (positions and strain)."""
    import torch
    from ase.neighborlist import neighbor_list

    n = len(atoms)
    sym = np.array(atoms.get_chemical_symbols())
    i, j, S = neighbor_list("ijS", atoms, rc)
    m = np.isin(sym[i], centres) & np.isin(sym[j], channels)
    i, j, S = i[m], j[m], S[m]
    chans, kinds = bo4_invariants(channels, nr)
    cmask = {t: torch.as_tensor(sym == t) for t in centres}
    it, jt = torch.as_tensor(i), torch.as_tensor(j)
    St = torch.as_tensor(S, dtype=torch.float64)
    cell = torch.tensor(np.asarray(atoms.cell), dtype=torch.float64)
    sel = {s_: torch.as_tensor(sym[j] == s_, dtype=torch.float64) for s_ in channels}

    def energies(pos, eps):
        F = torch.eye(3, dtype=torch.float64) + 0.5 * (eps + eps.T)
        D = (pos @ F)[jt] - (pos @ F)[it] + St @ (cell @ F)
        r = torch.linalg.norm(D, dim=1)
        u = D / r[:, None]
        v, M = [], []
        for s_, k in chans:
            w = (1 - r / rc) ** (k + 2) * sel[s_]
            v.append(torch.zeros((n, 3), dtype=torch.float64).index_add(0, it, w[:, None] * u))
            M.append(torch.zeros((n, 3, 3), dtype=torch.float64).index_add(
                0, it, w[:, None, None] * u[:, :, None] * u[:, None, :]))
        tr = [Mx.diagonal(dim1=1, dim2=2).sum(1) for Mx in M]
        feats = []
        for kind, (a, b, c) in kinds:
            if kind == "MMM":
                f = torch.einsum("nij,njk,nki->n", M[a], M[b], M[c])
            elif kind == "vMv":
                f = torch.einsum("ni,nij,nj->n", v[a], M[b], v[c])
            else:
                f = tr[a] * torch.einsum("nij,nji->n", M[b], M[c])
            feats.append(f)
        Fm = torch.stack(feats, 1)  # (n, K)
        return torch.cat([Fm[cmask[t]].sum(0) for t in centres])

    pos = torch.tensor(atoms.positions, dtype=torch.float64)
    eps = torch.zeros((3, 3), dtype=torch.float64)
    e = energies(pos, eps).numpy()
    jp, je = torch.autograd.functional.jacobian(energies, (pos, eps), vectorize=True)
    vol = abs(float(np.linalg.det(atoms.cell)))
    W = je.numpy() / vol  # (K, 3, 3)
    s_ = np.stack([W[:, 0, 0], W[:, 1, 1], W[:, 2, 2], W[:, 1, 2], W[:, 0, 2], W[:, 0, 1]])
    f = -np.transpose(jp.numpy(), (1, 2, 0))  # (n, 3, K)
    return e, f, s_


def check(frame, cols) -> float:
    """Largest relative difference of the column forces from central differences."""
    a0 = frame.copy()
    a0.calc = None
    _, f0, _ = cols(a0)
    worst, h = 0.0, 1e-4
    for k in (0, len(a0) // 2, len(a0) - 1):
        for c in range(3):
            x = a0.copy(); x.positions[k, c] += h
            ep = cols(x)[0]
            x = a0.copy(); x.positions[k, c] -= h
            em = cols(x)[0]
            fd = -(ep - em) / (2 * h)
            worst = max(worst, float(np.max(np.abs(fd - f0[k, c]))
                                     / max(1e-12, np.max(np.abs(fd)))))
    return worst


def _sha256(model: str) -> str:
    """SHA-256 of the model file (a shipped name resolves to its file): the name alone
    does not say which fit a probe ran on."""
    import hashlib

    from viglas.potentials.delta import SHIPPED_DELTA

    return hashlib.sha256(Path(SHIPPED_DELTA.get(model, model)).read_bytes()).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="dft-delta")
    ap.add_argument("--rc", type=float, default=10.0, help="field cutoff (Å)")
    ap.add_argument("--b-tt", type=float, default=1.8, help="Tang–Toennies b (1/Å)")
    ap.add_argument("--lambdas", default="3,1")
    ap.add_argument("--ridge", type=float, default=1e-3,
                    help="ridge of the new columns, relative to their data scale")
    ap.add_argument("--ridge-scale", default=None, metavar="EL:S",
                    help="scale the regulariser of every coefficient that involves element "
                    "EL by S in the second solve (with --term none: the only change)")
    ap.add_argument("--pol-sets", default="base;Cl*1.5,O*1.5;In*3",
                    help="scf-pol: polarisability sets, ';'-separated, each POL_ALPHA "
                    "with factors EL*F applied ('base': none); one column per set")
    ap.add_argument("--pol-rc", type=float, default=8.0, help="scf-pol cutoff (Å)")
    ap.add_argument("--bo4-centres", default="In,Ga,Al,B", help="bo4: centre elements")
    ap.add_argument("--bo4-channels", default="Cl,O", help="bo4: neighbour elements")
    ap.add_argument("--bo4-rc", type=float, default=4.0, help="bo4: first-shell cutoff (Å)")
    ap.add_argument("--term", default="field", choices=["field", "embedding", "none",
                                                         "scf-pol", "bo4"],
                    help="field: the squared field of the baseline charges per element; "
                    "embedding: a species-resolved embedding F_ts(rho_i^s) per centre t "
                    "and neighbour species s")
    ap.add_argument("--emb-rc", type=float, default=5.0, help="embedding cutoff (Å)")
    ap.add_argument("--emb-nk", type=int, default=8, help="embedding splines per block")
    ap.add_argument("--emb-min-support", type=int, default=200,
                    help="centre atoms with that neighbour species a block needs")
    ap.add_argument("--balance", default=None, metavar="POWER",
                    help="in the second solve, weight each training frame's rows by "
                    "(rms reference force of its composition / the mean of those)^-POWER: "
                    "1 makes each composition's force loss its SSE/SST, so the fit "
                    "maximises the sum of per-composition R^2 rather than pooled R^2")
    ap.add_argument("--extra-baseline", default=None, metavar="ACE_YAML",
                    help="add a pacemaker ACE potential (python-ace) to the baseline, so the "
                    "linear correction is refitted, stress rows included, on top of it "
                    "(scripts/ace_residual_probe.py fits one on forces only)")
    ap.add_argument("--check", action="store_true", help="finite-difference check only")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.ridge_scale:  # checked before the minutes of design building
        ridge_el, _, ridge_fac = args.ridge_scale.partition(":")
        try:
            float(ridge_fac)
        except ValueError:
            ap.error(f"--ridge-scale: {args.ridge_scale!r} is not EL:FACTOR (e.g. In:0.1)")

    from viglas.potentials import load_parameters
    from viglas.potentials.delta import load_delta_file
    from viglas.potentials.delta_fit import (DeltaFitSettings, _baseline, _penalty,
                                             _row_weights, _solve, baseline_with_charges,
                                             frame_design, frame_targets, new_model)
    from viglas.potentials.dft_fit import load_dataset, split
    from viglas.units import EV_A3_TO_GPA

    t0 = time.time()
    d = load_delta_file(args.model)
    rec = d["delta"]["meta"]["fit"]
    frames = load_dataset()
    by = {a.info["label"]: a for a in frames}
    train = [by[lab] for lab in rec["train_labels"]]
    base = baseline_with_charges(load_parameters(None), rec["charge_scale"],
                                 rec["alkali_charge"])
    charges = {s: base.charge_scale * q for s, q in base.charges.items()}
    if args.term == "field":
        names = SPECIES

        def cols(a):
            return columns(a, charges, SPECIES, args.rc, args.b_tt)
    elif args.term == "scf-pol":
        sets = []
        for spec in args.pol_sets.split(";"):
            al = dict(POL_ALPHA)
            for mod in (m for m in spec.split(",") if m.strip() not in ("", "base")):
                el, _, f = mod.partition("*")
                try:
                    al[el.strip()] *= float(f)
                except (KeyError, ValueError):
                    ap.error(f"--pol-sets: {mod!r} is not EL*FACTOR with EL one of "
                             f"{', '.join(POL_ALPHA)} (e.g. 'base;Cl*1.5,O*1.5;In*3')")
            sets.append(al)
        names = [f"scf-pol[{spec}]" for spec in args.pol_sets.split(";")]
        from viglas.potentials.delta_field import FORMAL_CHARGES

        def cols(a):
            return scf_pol_columns(a, FORMAL_CHARGES, sets, args.pol_rc, args.b_tt)
    elif args.term == "bo4":
        centres = args.bo4_centres.split(",")
        chans = args.bo4_channels.split(",")
        names = [f"bo4[{t}|{kind}{abc}]" for t in centres
                 for kind, abc in bo4_invariants(chans, 2)[1]]

        def cols(a):
            return bo4_columns(a, centres, chans, args.bo4_rc)
    elif args.term == "none":
        names = []

        def cols(a):
            return np.zeros(0), np.zeros((len(a), 3, 0)), np.zeros((6, 0))
    else:
        # blocks (t, s) with support in the training frames; range 40 % above the
        # largest partial density there (as the shipped embedding's)
        top, cnt = {}, {}
        for a in train:
            rho, *_, sidx = partial_densities(a, SPECIES, args.emb_rc)
            for t in set(sidx.tolist()):
                for sp in range(len(SPECIES)):
                    v = rho[sidx == t, sp]
                    top[(t, sp)] = max(top.get((t, sp), 0.0), float(v.max()))
                    cnt[(t, sp)] = cnt.get((t, sp), 0) + int((v > 0).sum())
        blocks = sorted(k for k, c in cnt.items() if c >= args.emb_min_support)
        hi = {k: 1.4 * top[k] for k in blocks}
        names = [f"emb[{SPECIES[t]}<-{SPECIES[sp]}][{k}]" for t, sp in blocks
                 for k in range(3, args.emb_nk)]

        def cols(a):
            return embedding_columns(a, blocks, hi, SPECIES, args.emb_rc, args.emb_nk)
    if args.check:
        print(f"largest relative force error against finite differences: "
              f"{check(train[-1], cols):.2e}")
        return 0
    seen = set(rec["train_labels"])
    _, valid = split(frames)
    vl = {a.info["label"] for a in valid}
    test = valid + [a for a in frames if a.info["label"] not in seen | vl]
    g, w = rec["geometry"], rec["weights"]
    st = DeltaFitSettings(sigma_E_eV_atom=w["sigma_E_eV_atom"], sigma_F_eV_A=w["sigma_F_eV_A"],
                          sigma_S_GPa=w["sigma_S_GPa"],
                          **{k: v for k, v in g.items() if k in DeltaFitSettings.__dataclass_fields__})
    model = new_model(train, st)
    P, S = model.n_coef, len(names)

    def base_of(frs):
        return _baseline(frs, base)

    if args.extra_baseline:
        from pyace import PyACECalculator

        from viglas.potentials.dft_fit import ase_predictor, stacked_predictor

        base_of = stacked_predictor(base_of, ase_predictor(PyACECalculator(args.extra_baseline)))

    def system(frs):
        As = frame_design(model, frs, st)
        ys = frame_targets(frs, base_of(frs), st)
        Is = []
        for a in frs:
            wE, wF, wS = _row_weights(len(a), st)
            e, f, s = cols(a)
            Is.append(np.vstack([wE * e[None, :], wF * f.reshape(3 * len(a), -1), wS * s]))
        return As, ys, Is

    As, ys, Is = system(train)
    fw = np.ones(len(train))
    if args.balance is not None:
        comp_of = [a.info["label"].split("/")[1] for a in train]
        rms = {}
        for c in set(comp_of):
            F = np.concatenate([np.asarray(a.calc.results["forces"]) for a, cc in
                                zip(train, comp_of) if cc == c])
            rms[c] = float(np.sqrt((F ** 2).sum(1).mean()))
        mean = float(np.mean(list(rms.values())))
        fw = np.array([(rms[c] / mean) ** -float(args.balance) for c in comp_of])
        print("frame weights by composition: " + ", ".join(
            f"{c} {(rms[c] / mean) ** -float(args.balance):.2f}" for c in sorted(rms)))
    AtA = np.zeros((P + S, P + S))
    Aty = np.zeros(P + S)
    AtA0 = np.zeros((P, P))
    Aty0 = np.zeros(P)
    for A, y, I, wf in zip(As, ys, Is, fw):
        M = np.hstack([A, I])
        AtA += wf ** 2 * (M.T @ M)
        Aty += wf ** 2 * (M.T @ y)
        AtA0 += A.T @ A
        Aty0 += A.T @ y
    del As
    nf = len(train)
    R = np.zeros((P + S, P + S))
    R[:P, :P] = _penalty(model, st.ridge_eps, np.diag(AtA0) / nf, st.ace_ridge,
                         st.ace_ridge_floor)
    R[np.arange(P, P + S), np.arange(P, P + S)] = args.ridge * np.maximum(
        np.diag(AtA)[P:] / nf, 1e-12)
    R0 = R.copy()
    if args.ridge_scale:
        import re

        el, fac = ridge_el, ridge_fac
        hit = np.array([bool(re.search(rf"(?<![A-Za-z]){el}(?![a-z])", lab))
                        for lab in model.labels()] + [True] * S)
        d = np.where(hit, np.sqrt(float(fac)), 1.0)
        R = R * d[:, None] * d[None, :]
        print(f"regulariser of {int(hit.sum())} coefficients with {el} scaled by {fac}")
    Tt = system(test)
    print(f"design built in {time.time() - t0:.0f} s ({P} + {S} columns, {nf} training, "
          f"{len(test)} scored frames)", flush=True)

    def scores(c, use):
        comp, frame, press = {}, {}, {}
        for a, A, y, I in zip(test, *Tt):
            M = np.hstack([A, I]) if use else A
            n = len(a)
            full = M @ c - y
            r = full[1:1 + 3 * n] / _row_weights(n, st)[1]
            dp = -float(np.mean(full[1 + 3 * n:1 + 3 * n + 3])) / _row_weights(n, st)[2] \
                * EV_A3_TO_GPA
            press.setdefault(a.info["label"].split("/")[1], []).append(dp)
            F = np.asarray(a.calc.results["forces"])
            lab, cname = a.info["label"], a.info["label"].split("/")[1]
            frame[lab] = round(1 - float(r @ r) / float(((F - F.mean(0)) ** 2).sum()), 3)
            acc = comp.setdefault(cname, [0.0, []])
            acc[0] += float(r @ r)
            acc[1].append(F)
        out = {}
        for cname, (se, Fs) in comp.items():
            F = np.concatenate(Fs)
            out[cname] = round(1 - se / float(((F - F.mean(0)) ** 2).sum()), 3)
        return out, frame, {k: round(float(np.mean(v)), 2) for k, v in press.items()}

    rows = []
    for lam in (float(x) for x in args.lambdas.split(",")):
        c0 = _solve(AtA0, Aty0, R0[:P, :P], lam)
        c1 = _solve(AtA, Aty, R, lam)
        for name, c, use in (("without", c0, False), ("with", c1, True)):
            comp, frame, pbias = scores(c, use)
            row = {"lambda": lam, "induction_columns": name, "force_r2_by_composition": comp,
                   "pressure_bias_GPa_by_composition": pbias,
                   "force_r2_by_frame": frame}
            if use:
                row["coefficients"] = dict(zip(names, np.round(c[P:], 3).tolist()))
            rows.append(row)
            print(f"lambda {lam:g}, {name} the new columns: "
                  + " ".join(f"{k} {v:.3f}" for k, v in comp.items()), flush=True)
            print("  pressure bias (model - PBE-D3, GPa): " + " ".join(
                f"{k} {v:+.2f}" for k, v in pbias.items()), flush=True)
    out = {"command": "python scripts/induction_probe.py " + " ".join(argv or sys.argv[1:]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "model": args.model, "model_sha256": _sha256(args.model),
           "extra_baseline": args.extra_baseline,
           "term": args.term, **({"rc_A": args.rc, "b_tt_per_A": args.b_tt}
                                 if args.term == "field" else
                                 {"pol_sets": args.pol_sets, "pol_rc_A": args.pol_rc,
                                  "b_tt_per_A": args.b_tt, "alpha_A3": POL_ALPHA}
                                 if args.term == "scf-pol" else
                                 {"bo4_centres": args.bo4_centres,
                                  "bo4_channels": args.bo4_channels, "bo4_rc_A": args.bo4_rc,
                                  "n_columns": S}
                                 if args.term == "bo4" else
                                 {"emb_rc_A": args.emb_rc, "emb_nk": args.emb_nk,
                                  "n_columns": S}),
           "n_train": nf, "scored_labels": [a.info["label"] for a in test], "rows": rows,
           "seconds": round(time.time() - t0)}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
