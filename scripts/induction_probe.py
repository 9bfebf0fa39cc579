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

It refits the whole linear system with and without these columns and scores both on
the held-out frames (plan split) plus the frames the fit was not trained on (its own
round-18 glasses and the last round-0 cells), per composition and per frame.
Nothing here is shipped; the report says what a polarisable term would buy.

    python scripts/induction_probe.py [--rc 10] [--b-tt 1.8] [--lambdas 3,1]
        [--json viglas/potentials/data/dft/samplers/induction_probe.json]

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


def check(frame, charges, rc, b) -> float:
    """Largest relative difference of the column forces from central differences."""
    a0 = frame.copy()
    a0.calc = None
    _, f0, _ = columns(a0, charges, SPECIES, rc, b)
    worst, h = 0.0, 1e-4
    for k in (0, len(a0) // 2, len(a0) - 1):
        for c in range(3):
            x = a0.copy(); x.positions[k, c] += h
            ep = columns(x, charges, SPECIES, rc, b)[0]
            x = a0.copy(); x.positions[k, c] -= h
            em = columns(x, charges, SPECIES, rc, b)[0]
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
    ap.add_argument("--check", action="store_true", help="finite-difference check only")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from viglas.potentials import load_parameters
    from viglas.potentials.delta import load_delta_file
    from viglas.potentials.delta_fit import (DeltaFitSettings, _baseline, _penalty,
                                             _row_weights, _solve, baseline_with_charges,
                                             frame_design, frame_targets, new_model)
    from viglas.potentials.dft_fit import load_dataset, split

    t0 = time.time()
    d = load_delta_file(args.model)
    rec = d["delta"]["meta"]["fit"]
    frames = load_dataset()
    by = {a.info["label"]: a for a in frames}
    train = [by[lab] for lab in rec["train_labels"]]
    base = baseline_with_charges(load_parameters(None), rec["charge_scale"],
                                 rec["alkali_charge"])
    charges = {s: base.charge_scale * q for s, q in base.charges.items()}
    if args.check:
        print(f"largest relative force error against finite differences: "
              f"{check(train[-1], charges, args.rc, args.b_tt):.2e}")
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
    P, S = model.n_coef, len(SPECIES)

    def system(frs):
        As = frame_design(model, frs, st)
        ys = frame_targets(frs, _baseline(frs, base), st)
        Is = []
        for a in frs:
            wE, wF, wS = _row_weights(len(a), st)
            e, f, s = columns(a, charges, SPECIES, args.rc, args.b_tt)
            Is.append(np.vstack([wE * e[None, :], wF * f.reshape(3 * len(a), -1), wS * s]))
        return As, ys, Is

    As, ys, Is = system(train)
    AtA = np.zeros((P + S, P + S))
    Aty = np.zeros(P + S)
    for A, y, I in zip(As, ys, Is):
        M = np.hstack([A, I])
        AtA += M.T @ M
        Aty += M.T @ y
    del As
    nf = len(train)
    R = np.zeros((P + S, P + S))
    R[:P, :P] = _penalty(model, st.ridge_eps, np.diag(AtA)[:P] / nf, st.ace_ridge,
                         st.ace_ridge_floor)
    R[np.arange(P, P + S), np.arange(P, P + S)] = args.ridge * np.maximum(
        np.diag(AtA)[P:] / nf, 1e-12)
    Tt = system(test)
    print(f"design built in {time.time() - t0:.0f} s ({P} + {S} columns, {nf} training, "
          f"{len(test)} scored frames)", flush=True)

    def scores(c, use):
        comp, frame = {}, {}
        for a, A, y, I in zip(test, *Tt):
            M = np.hstack([A, I]) if use else A
            n = len(a)
            r = (M @ c - y)[1:1 + 3 * n] / _row_weights(n, st)[1]
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
        return out, frame

    rows = []
    for lam in (float(x) for x in args.lambdas.split(",")):
        c0 = _solve(AtA[:P, :P], Aty[:P], R[:P, :P], lam)
        c1 = _solve(AtA, Aty, R, lam)
        for name, c, use in (("without", c0, False), ("with", c1, True)):
            comp, frame = scores(c, use)
            row = {"lambda": lam, "induction_columns": name, "force_r2_by_composition": comp,
                   "force_r2_by_frame": frame}
            if use:
                row["coefficients"] = dict(zip(SPECIES, np.round(c[P:], 3).tolist()))
            rows.append(row)
            print(f"lambda {lam:g}, {name} induction: "
                  + " ".join(f"{k} {v:.3f}" for k, v in comp.items()), flush=True)
    out = {"command": "python scripts/induction_probe.py " + " ".join(argv or sys.argv[1:]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "model": args.model, "model_sha256": _sha256(args.model),
           "rc_A": args.rc, "b_tt_per_A": args.b_tt,
           "n_train": nf, "scored_labels": [a.info["label"] for a in test], "rows": rows,
           "seconds": round(time.time() - t0)}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
