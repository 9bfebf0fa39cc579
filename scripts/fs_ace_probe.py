#!/usr/bin/env python
"""Probe (issue 12, item 3): a nonlinear many-body correction written here, MIT-licensed.

Session 13 found that a *nonlinear* ACE on F14's residual lifts LiInCl2.5O0.75 above
force R2 0.85 on frames it was not trained on, where every linear extension stayed at
0.76-0.79. Those fits used pacemaker/gracemaker (python-ace, tensorpotential), which
are under the Academic Software License: not something an MIT project can depend on.
This probe asks whether a model of that kind that the project owns does the same:

    A_i[n, m]  = sum_j R_n^{t_i s_j}(r_ij) u_m(r^_ij)      (trainable radial functions:
                 R_n^{ts}(r) = sum_k W[t, s, n, k] g_k(r), g_k Bessel functions times a
                 cosine cutoff; u_m the Cartesian monomials of r^ up to degree 3)
    D_i        = the rotation invariants of A_i up to body order 4:
                 A[n, 0];  sum_{|m|=p} w_m A[n1, m] A[n2, m] (p = 0..3, n1 <= n2);
                 v_n1 . M_n2 . v_n3  and  Tr(M_n1 M_n2 M_n3)
                 (v_n: the degree-1 part of A_i[n], M_n: the degree-2 part as a 3x3 matrix)
    E_i        = b_t + a_t . D~_i + MLP_t(D~_i)   (D~: D standardised per element; one
                 hidden layer of SiLU units: the nonlinear readout)

fitted with torch to PBE-D3 minus F14 (the residual ``ace_residual_probe.py prepare``
writes: the same 272 training frames, energies, forces and stress in the loss), forces
and stress by autograd, and scored as the stack F14 + model on the frames F14 was not
trained on, with ``dft_fit.score`` (the numbers of session 13's tables). Nothing here is
shipped; a model that passes would still need an evaluator in the MD kernels.

    python scripts/fs_ace_probe.py fit DIR --out MODEL.pt [--epochs 150] [--hidden 16]
    python scripts/fs_ace_probe.py score DIR MODEL.pt [--json REPORT]
    python scripts/fs_ace_probe.py export MODEL.pt --stack-on F14 --out STACK.json
    python scripts/fs_ace_probe.py loop STACK.json [--json REPORT]   # its own glasses
    python scripts/fs_ace_probe.py compare A.json B.json --rounds 28,29 [--json REPORT]

DIR is a folder written by ``python scripts/ace_residual_probe.py prepare DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from viglas.potentials.delta_ace import monomials  # noqa: E402

ELEMENTS = ["Li", "Na", "Al", "Ga", "In", "B", "Cl", "O"]
sys.path.insert(0, str(Path(__file__).parent))
from ace_residual_probe import F14, _write_report  # noqa: E402

from viglas.units import EV_A3_TO_GPA  # noqa: E402


class FSACE(torch.nn.Module):
    def __init__(self, rc=5.0, nbessel=8, nrad=6, hidden=16, pmax=3):
        super().__init__()
        self.rc, self.K, self.N, self.pmax = rc, nbessel, nrad, pmax
        ne = len(ELEMENTS)
        self.W = torch.nn.Parameter(torch.randn(ne, ne, nrad, nbessel) / math.sqrt(nbessel))
        ex, deg, w = monomials(pmax)
        self.register_buffer("ex", torch.tensor(ex))
        self.register_buffer("deg", torch.tensor(deg))
        self.register_buffer("wm", torch.tensor(w, dtype=torch.get_default_dtype()))
        N = nrad
        self.iu = torch.triu_indices(N, N)
        # degree-1 and degree-2 monomial positions
        idx = {tuple(e): k for k, e in enumerate(ex.tolist())}
        self.v_idx = [idx[(1, 0, 0)], idx[(0, 1, 0)], idx[(0, 0, 1)]]
        self.m_idx = [[idx[tuple(np.eye(3, dtype=int)[a] + np.eye(3, dtype=int)[b])]
                       for b in range(3)] for a in range(3)]
        t3 = [(a, b, c) for a in range(N) for b in range(a, N) for c in range(b, N)]
        self.register_buffer("t3", torch.tensor(t3))
        vmv = [(a, b, c) for a in range(N) for b in range(N) for c in range(a, N)]
        self.register_buffer("vmv", torch.tensor(vmv))
        self.ndesc = N + (pmax + 1) * len(self.iu[0]) + len(vmv) + len(t3)
        self.register_buffer("mean", torch.zeros(ne, self.ndesc))
        self.register_buffer("std", torch.ones(ne, self.ndesc))
        self.bias = torch.nn.Parameter(torch.zeros(ne))
        self.lin = torch.nn.Parameter(torch.zeros(ne, self.ndesc))
        self.w1 = torch.nn.Parameter(torch.randn(ne, self.ndesc, hidden) / math.sqrt(self.ndesc))
        self.b1 = torch.nn.Parameter(torch.zeros(ne, hidden))
        self.w2 = torch.nn.Parameter(torch.zeros(ne, hidden))

    def descriptors(self, rvec, i, t_i, s_j, natoms):
        r = rvec.norm(dim=1)
        u = rvec / r[:, None]
        k = torch.arange(1, self.K + 1, dtype=r.dtype)
        fc = 0.5 * (1 + torch.cos(math.pi * r / self.rc))
        g = torch.sin(k[None] * math.pi * r[:, None] / self.rc) / r[:, None] * fc[:, None]
        R = torch.einsum("pnk,pk->pn", self.W[t_i, s_j], g)          # (pairs, N)
        um = torch.prod(u[:, None, :] ** self.ex[None], dim=2)         # (pairs, M)
        A = torch.zeros(natoms, self.N, um.shape[1], dtype=r.dtype)
        A.index_add_(0, i, R[:, :, None] * um[:, None, :])
        parts = [A[:, :, 0]]
        for p in range(self.pmax + 1):
            sel = self.deg == p
            Ap = A[:, :, sel] * self.wm[sel].sqrt()
            P = torch.einsum("anm,aom->ano", Ap, Ap)
            parts.append(P[:, self.iu[0], self.iu[1]])
        v = A[:, :, self.v_idx]                                         # (atoms, N, 3)
        M = A[:, :, torch.tensor(self.m_idx).reshape(-1)].reshape(natoms, self.N, 3, 3)
        Mv = torch.einsum("kbxy,kcy->kbcx", M, v)                       # M_b v_c
        vMv = torch.einsum("kax,kbcx->kabc", v, Mv)                     # v_a M_b v_c
        parts.append(vMv[:, self.vmv[:, 0], self.vmv[:, 1], self.vmv[:, 2]])
        MM = torch.einsum("kaxy,kbyz->kabxz", M, M)                     # M_a M_b
        TrMMM = torch.einsum("kabxz,kczx->kabc", MM, M)                 # Tr(M_a M_b M_c)
        parts.append(TrMMM[:, self.t3[:, 0], self.t3[:, 1], self.t3[:, 2]])
        return torch.cat(parts, dim=1)

    def atomic_energy(self, D, t):
        Dn = (D - self.mean[t]) / self.std[t]
        h = torch.nn.functional.silu(torch.einsum("ad,adh->ah", Dn, self.w1[t]) + self.b1[t])
        return self.bias[t] + (Dn * self.lin[t]).sum(1) + (h * self.w2[t]).sum(1)


def frame_graph(atoms, rc):
    from ase.neighborlist import neighbor_list

    i, j, S = neighbor_list("ijS", atoms, rc)
    t = np.array([ELEMENTS.index(s) for s in atoms.get_chemical_symbols()])
    dt = torch.get_default_dtype()
    return {"pos": torch.tensor(atoms.positions, dtype=dt),
            "cell": torch.tensor(np.asarray(atoms.cell), dtype=dt),
            "i": torch.tensor(i), "j": torch.tensor(j), "S": torch.tensor(S, dtype=dt),
            "t": torch.tensor(t), "n": len(atoms), "vol": float(atoms.get_volume())}


def bond_vectors(g, pos, cell):
    """r_j - r_i (+ the image shift) of every neighbour pair of the frame graph ``g``."""
    return pos[g["j"]] - pos[g["i"]] + g["S"] @ cell


def targets(df):
    """(energy, forces, stress) tensors of the frames of a prepared DataFrame."""
    dt = torch.get_default_dtype()
    return [(float(e), torch.tensor(np.asarray(f), dtype=dt),
             torch.tensor(np.asarray(s), dtype=dt))
            for e, f, s in zip(df.energy, df.forces, df.stress)]


def squared_errors(E, F, S, tgt, graphs, weights=None):
    """Sums over a batch: squared per-atom energy errors, squared force components (each
    frame's times its force weight, 1 without ``weights``) and their count, and per-frame
    mean squared stress components."""
    se = sum(((E[q] - t[0]) / g["n"]) ** 2 for q, (t, g) in enumerate(zip(tgt, graphs)))
    w = [1.0] * len(tgt) if weights is None else weights
    sf = sum((w[q] * (F[q] - t[1]) ** 2).sum() for q, t in enumerate(tgt))
    nf = sum(t[1].numel() for t in tgt)
    ss = sum(((S[q] - t[2]) ** 2).mean() for q, t in enumerate(tgt))
    return se, sf, nf, ss


def composition_force_weights(df, fit_df) -> list[float]:
    """Force-loss weights that make the loss a sum of per-composition force R2 deficits:
    each frame's weight is the pooled mean square PBE-D3 force component over the mean
    square of its composition's (both over the frames ``fit_df`` trains on), so a
    composition with softer forces (In: about 25 % smaller) is not fitted to a looser
    relative error than the rest. Criterion: force R2 >= 0.85 per composition."""
    if "ref_force_ms" not in fit_df:
        sys.exit("--balance composition: this folder was prepared before the reference "
                 "force scale was stored; rerun ace_residual_probe.py prepare")
    n = fit_df.ase_atoms.map(len).astype(float)
    sq = fit_df.ref_force_ms * n  # each frame's summed square force (per component)
    pooled = float(sq.sum() / n.sum())
    per = sq.groupby(fit_df.composition).sum() / n.groupby(fit_df.composition).sum()
    w = {c: pooled / float(v) for c, v in per.items()}
    # a composition only in the validation runs takes the mean weight
    return [w.get(c, 1.0) for c in df.composition]


def predict(model, graphs, need_grad=False):
    """Energies, forces and stresses (eV, eV/A, eV/A^3 Voigt) of a batch of frames."""
    strains = [torch.zeros(3, 3, requires_grad=True) for _ in graphs]
    off, rvecs, I, T, S_j, batch = 0, [], [], [], [], []
    for k, (g, e) in enumerate(zip(graphs, strains)):
        F = torch.eye(3) + 0.5 * (e + e.T)
        pos = (g["pos"].requires_grad_(True) if not g["pos"].requires_grad else g["pos"])
        p = pos @ F
        cell = g["cell"] @ F
        rvecs.append(bond_vectors(g, p, cell))
        I.append(g["i"] + off)
        T.append(g["t"])
        S_j.append(g["t"][g["j"]])
        batch.append(torch.full((g["n"],), k))
        off += g["n"]
    rvec, I, T, S_j, batch = (torch.cat(x) for x in (rvecs, I, T, S_j, batch))
    D = model.descriptors(rvec, I, T[I], S_j, off)
    Ei = model.atomic_energy(D, T)
    E = torch.zeros(len(graphs), dtype=Ei.dtype).index_add(0, batch, Ei)
    grads = torch.autograd.grad(E.sum(), [g["pos"] for g in graphs] + strains,
                                create_graph=need_grad)
    n = len(graphs)
    forces = [-x for x in grads[:n]]
    stress = []
    for g, de in zip(graphs, grads[n:]):
        s = de / g["vol"]
        stress.append(torch.stack([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]))
    return E, forces, stress


def load(dir_, name):
    import pandas as pd

    return pd.read_pickle(Path(dir_) / f"grace_{name}.pkl.gz")


def fit(args) -> int:
    torch.set_default_dtype(torch.float32 if args.float32 else torch.float64)
    torch.manual_seed(args.seed)
    df = load(args.dir, "train")
    # validation frames for early stopping: whole MD runs (a label without its last
    # part) drawn from the training frames, never the scored frames
    runs = sorted({lab.rsplit("/", 1)[0] for lab in df.label})
    rng0 = np.random.default_rng(args.seed)
    val_runs = set(rng0.choice(runs, size=int(round(args.val_fraction * len(runs))),
                               replace=False)) if args.val_fraction > 0 else set()
    is_val = np.array([lab.rsplit("/", 1)[0] in val_runs for lab in df.label])
    val_df, df = df[is_val], df[~is_val]
    model = FSACE(rc=args.rc, nrad=args.nrad, hidden=args.hidden)
    graphs = [frame_graph(a, args.rc) for a in df.ase_atoms]
    vgraphs = [frame_graph(a, args.rc) for a in val_df.ase_atoms]
    vtgt, tgt = targets(val_df), targets(df)
    # force-loss weights: per frame (a float) or per atom (an (n, 1) tensor), normalised
    # below to a mean of 1 per force component of the training frames
    if args.balance == "composition":
        wf, vwf = composition_force_weights(df, df), composition_force_weights(val_df, df)
    else:
        wf, vwf = [1.0] * len(tgt), [1.0] * len(vtgt)
    if args.element_weights:  # per-atom force weights by element, times the frame's
        ew = {}
        for item in args.element_weights.split(","):
            el, _, val = item.partition("=")
            try:
                ew[el] = float(val)
            except ValueError:
                ew[el] = -1.0
            if el not in ELEMENTS or ew[el] <= 0:
                sys.exit(f"--element-weights: {item!r} is not ELEMENT=WEIGHT with an "
                         f"element of {ELEMENTS} and a positive weight")

        def atom_w(frames, w):
            return [x * torch.tensor([ew.get(e, 1.0) for e in a.get_chemical_symbols()])
                    [:, None] for a, x in zip(frames, w)]
        wf, vwf = atom_w(df.ase_atoms, wf), atom_w(val_df.ase_atoms, vwf)
    n_atoms = [len(a) for a in df.ase_atoms]
    scale = sum(n_atoms) / sum(float(x * k) if isinstance(x, float) else float(x.sum())
                               for x, k in zip(wf, n_atoms))
    wf, vwf = [x * scale for x in wf], [x * scale for x in vwf]
    if args.balance == "composition" or args.element_weights:  # per composition (atom mean)
        print(json.dumps({"force_weights": {
            c: round(x if isinstance(x, float) else float(x.mean()), 3)
            for c, x in zip(df.composition, wf)}}), flush=True)
    with torch.no_grad():  # standardise the descriptors per element at the initial radials
        Ds, Ts = [], []
        for g in graphs:
            Ds.append(model.descriptors(bond_vectors(g, g["pos"], g["cell"]), g["i"],
                                        g["t"][g["i"]], g["t"][g["j"]], g["n"]))
            Ts.append(g["t"])
        D, T = torch.cat(Ds), torch.cat(Ts)
        for e in range(len(ELEMENTS)):
            if (T == e).sum() > 1:
                model.mean[e] = D[T == e].mean(0)
                model.std[e] = D[T == e].std(0) + 1e-6
        # per-element energies by least squares on the element counts (the residual's
        # reference energies), so the first updates do not spend themselves on offsets
        counts = np.array([[int((g["t"] == e).sum()) for e in range(len(ELEMENTS))]
                           for g in graphs], float)
        mu = np.linalg.lstsq(counts, np.array([t[0] for t in tgt]), rcond=None)[0]
        model.bias.copy_(torch.tensor(mu))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    nb = math.ceil(len(graphs) / args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * nb,
                                                       eta_min=args.lr * 0.05)
    wE, wS = args.w_energy, args.w_stress
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    log = []
    best = None  # (validation loss, epoch, state): the state kept
    for ep in range(args.epochs):
        order = rng.permutation(len(graphs))
        tot = {"e": 0.0, "f": 0.0, "s": 0.0, "nf": 0}
        for b in range(nb):
            idx = order[b * args.batch:(b + 1) * args.batch]
            gs = [graphs[k] for k in idx]
            se, sf, nf, ss = squared_errors(*predict(model, gs, need_grad=True),
                                            [tgt[k] for k in idx], gs, [wf[k] for k in idx])
            le, lf, ls = se / len(idx), sf / nf, ss / len(idx)
            reg = args.l2 * sum((p ** 2).sum() for p in (model.w1, model.w2, model.lin, model.W))
            loss = wE * le + lf + wS * ls + reg
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tot["e"] += float(se)
            tot["f"] += float(sf)
            tot["nf"] += nf
            tot["s"] += float(ss)
        row = {"epoch": ep + 1, "E_rmse_meV_atom": 1e3 * math.sqrt(tot["e"] / len(graphs)),
               "F_rmse_eV_A": math.sqrt(tot["f"] / tot["nf"]),
               "S_rmse_GPa": EV_A3_TO_GPA * math.sqrt(tot["s"] / len(graphs)),
               "seconds": round(time.time() - t0)}
        if vgraphs:  # the same loss on the validation runs
            ve, vf, vn, vs = 0.0, 0.0, 0, 0.0
            for k in range(0, len(vgraphs), args.batch):
                gs = vgraphs[k:k + args.batch]
                se, sf, nf, ss = squared_errors(*predict(model, gs), vtgt[k:k + args.batch], gs,
                                                vwf[k:k + args.batch])
                ve, vf, vn, vs = ve + float(se), vf + float(sf), vn + nf, vs + float(ss)
            nv = len(vgraphs)
            row.update({"val_E_rmse_meV_atom": 1e3 * math.sqrt(ve / nv),
                        "val_F_rmse_eV_A": math.sqrt(vf / vn),
                        "val_S_rmse_GPa": EV_A3_TO_GPA * math.sqrt(vs / nv),
                        "val_loss": wE * ve / nv + vf / vn + wS * vs / nv})
            if best is None or row["val_loss"] < best[0]:
                best = (row["val_loss"], ep + 1,
                        {k: v.detach().clone() for k, v in model.state_dict().items()})
        log.append(row)
        print(json.dumps(row), flush=True)
        if (ep + 1) % 10 == 0 or ep + 1 == args.epochs:
            keep = best[2] if best is not None else model.state_dict()
            torch.save({"state": keep, "args": vars(args), "log": log,
                        "epoch_kept": best[1] if best is not None else ep + 1,
                        "validation_runs": sorted(val_runs)}, args.out)
    return 0


def score(args) -> int:
    torch.set_default_dtype(torch.float64)
    from ace_residual_probe import _base_predictor, _frames, _scored

    from viglas.potentials.dft_fit import score as r2_score
    from viglas.potentials.dft_fit import stacked_predictor

    ck = torch.load(args.model, weights_only=False)
    a = ck["args"]
    model = FSACE(rc=a["rc"], nrad=a["nrad"], hidden=a["hidden"])
    model.load_state_dict({k: v.to(torch.float64) if v.is_floating_point() else v
                           for k, v in ck["state"].items()})
    meta = json.loads((Path(args.dir) / "probe.json").read_text())
    frames, seen, shipped = _frames(meta["compositions"])
    test = _scored(frames, seen, meta)
    base = _base_predictor(meta["residual"], shipped)

    def mine(frames_):
        out = []
        for f in frames_:
            g = frame_graph(f, a["rc"])
            E, F, S = predict(model, [g])
            out.append({"energy": float(E[0].detach()), "forces": F[0].detach().numpy(),
                        "stress": S[0].detach().numpy()})
        return out

    rows = {}
    keep = ("force_r2", "force_rmse_eV_A", "force_rms_ref_eV_A", "pressure_bias_GPa",
            "pressure_rmse_GPa", "energy_diff_rmse_meV_atom")
    for name, pred in (("without", base), ("with", stacked_predictor(base, mine))):
        s = r2_score(test, pred)
        rows[name] = {"all": {k: round(s["all"][k], 4) for k in keep},
                      "by_composition": {c: {k: round(m[k], 4) for k in keep}
                                         for c, m in s["by_composition"].items()}}
        print(f"{name}: all {s['all']['force_r2']:.3f} P {s['all']['pressure_bias_GPa']:+.2f} "
              f"dE {s['all']['energy_diff_rmse_meV_atom']:.1f}  " + "  ".join(
                  f"{c} {m['force_r2']:.3f}/{m['pressure_bias_GPa']:+.2f}"
                  for c, m in s["by_composition"].items()), flush=True)
    report = {"command": "python scripts/fs_ace_probe.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "fit_args": a, "fit_log_last": ck["log"][-1],
              "epoch_kept": ck.get("epoch_kept"), "n_parameters":
              sum(p.numel() for p in model.parameters()), "n_descriptors": model.ndesc,
              "scored_labels": [f.info["label"] for f in test], "scores": rows}
    return _write_report(report, args.json)


def model_arrays(state, digits: int | None = 9) -> dict:
    """The arrays of a ``viglas-acemlp/1`` file from an :class:`FSACE` state dict (the
    numba evaluator's input). float32-trained weights: 9 significant digits hold them
    exactly; ``digits=None`` keeps every bit (tests)."""
    def conv(v):
        x = v.detach().double().numpy()
        return (np.vectorize(lambda y: float(f"{y:.{digits}g}"))(x) if digits else x).tolist()

    return {k: conv(v) for k, v in state.items()
            if k in ("W", "mean", "std", "bias", "lin", "w1", "b1", "w2")}


def export(args) -> int:
    """Write a torch checkpoint as a ``viglas-acemlp/1`` model file (numba evaluator:
    :mod:`viglas.potentials.acemlp`)."""
    import gzip

    ck = torch.load(args.model, weights_only=False)
    a = ck["args"]
    st = model_arrays(ck["state"])
    # every frame the fit saw (its training frames and its early-stopping runs): a
    # report scores the stack as held out only on frames outside this list
    seen = sorted(load(a["dir"], "train").label)
    d = {"schema": "viglas-acemlp/1", "elements": ELEMENTS, "rc_A": a["rc"], "pmax": 3,
         "arrays": st,
         "meta": {"fit_args": a, "fit_log_last": ck["log"][-1],
                  "epoch_kept": ck.get("epoch_kept"),
                  "residual_of": "F14 (samplers/dft_delta_f14.json)",
                  "train_labels": seen, "validation_runs": ck.get("validation_runs", []),
                  "command": "python scripts/fs_ace_probe.py " + " ".join(sys.argv[1:])}}
    if args.stack_on:  # one ionic+delta file that carries the correction: a registry set
        from viglas.potentials.delta import load_delta_file

        stack = load_delta_file(F14 if args.stack_on == "F14" else args.stack_on)
        stack["acemlp"] = d
        Path(args.out).write_text(json.dumps(stack))
    else:
        with gzip.open(args.out, "wt") as fh:
            json.dump(d, fh)
    print(f"-> {args.out}")
    return 0


def _score_table(name, frames, pred, digits=None) -> dict:
    """Force R2, RMSEs, pressure bias and energy-difference RMSE of ``pred`` on ``frames``,
    pooled and per composition (``dft_fit.score``); prints one line."""
    from viglas.potentials.dft_fit import score as r2_score

    keep = ("force_r2", "force_rmse_eV_A", "force_rms_ref_eV_A", "pressure_bias_GPa",
            "energy_diff_rmse_meV_atom")

    def pick(m):
        return {k: m[k] if digits is None else round(m[k], digits) for k in keep}

    sc = r2_score(frames, pred)
    print(f"{name}: all {sc['all']['force_r2']:.3f}  " + "  ".join(
        f"{c} {m['force_r2']:.3f}" for c, m in sc["by_composition"].items()), flush=True)
    return {"all": pick(sc["all"]),
            "by_composition": {c: pick(m) for c, m in sc["by_composition"].items()}}


def loop(args) -> int:
    """The stack's own 0 GPa glasses (a ``plan-next`` round sampled with STACK): PBE-D3's
    pressure on them (``dft_fit.loop_glasses``: the mean of PBE-D3 - stack over each
    glass's snapshots) and the force R2 of the stack and of F14 on these frames, which
    no fit and no choice has seen."""
    from viglas.potentials.dft_fit import (calculator_predictor, load_dataset, loop_cells,
                                           loop_glasses)
    from viglas.potentials.reference import make_calculator

    name = Path(args.stack).name
    frames = [a for a in load_dataset() if a.info.get("sampler") == f"ionic:{name}@0GPa"]
    if not frames:
        sys.exit(f"no labelled frame was sampled with {name} (plan-next --params {args.stack})")
    spec = {"name": "ionic", "params": {"parameters": str(args.stack)}}
    cells = loop_cells(frames, name, sampler_calc=make_calculator(spec))
    glasses = loop_glasses(cells)
    scores = {}
    for label, pred in (("stack", calculator_predictor(spec)),
                        ("F14", calculator_predictor(
                            {"name": "ionic", "params": {"parameters": str(F14)}}))):
        scores[label] = _score_table(label, frames, pred)
    for g in glasses:
        print(f"{g['glass']}: {g['n_snapshots']} snapshots, PBE-D3 - stack "
              f"{g.get('pressure_GPa')} +- {g.get('pressure_se_GPa')} GPa "
              f"(direct {g['direct_GPa']})")
    report = {"command": "python scripts/fs_ace_probe.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "stack": str(args.stack), "n_frames": len(frames),
              "labels": [a.info["label"] for a in frames], "cells": cells,
              "glasses": glasses, "scores": scores}
    return _write_report(report, args.json)


def compare(args) -> int:
    """Several stacks (ionic+delta files) scored on the same labelled frames: those whose
    label starts with one of ``--rounds`` (e.g. r28/,r29/: glasses no stack was trained
    on), per composition; for probes of the loss and of the data (session 16)."""
    from viglas.potentials.dft_fit import calculator_predictor, load_dataset

    prefixes = tuple(f"r{k}/" for k in args.rounds.split(","))
    frames = [a for a in load_dataset() if a.info["label"].startswith(prefixes)]
    if not frames:
        sys.exit(f"--rounds {args.rounds}: no labelled frame in these rounds")
    scores = {str(st): _score_table(Path(st).name, frames, calculator_predictor(
        {"name": "ionic", "params": {"parameters": str(st)}}), digits=4) for st in args.stacks}
    report = {"command": "python scripts/fs_ace_probe.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "labels": [a.info["label"] for a in frames], "scores": scores}
    return _write_report(report, args.json)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fit")
    p.add_argument("dir")
    p.add_argument("--out", required=True)
    p.add_argument("--rc", type=float, default=5.0)
    p.add_argument("--nrad", type=int, default=6)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--l2", type=float, default=1e-6)
    p.add_argument("--w-energy", type=float, default=10.0,
                   help="weight of the per-atom energy MSE (eV^2) against the forces' (eV/A)^2")
    p.add_argument("--w-stress", type=float, default=308.0,
                   help="weight of the stress MSE ((eV/A^3)^2) against the forces'")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--float32", action="store_true", help="train in single precision")
    p.add_argument("--balance", choices=["none", "composition"], default="none",
                   help="force-loss weights: 'composition' divides each frame's by its "
                        "composition's mean square PBE-D3 force (the loss then follows "
                        "per-composition force R2; the logged force RMSEs are then "
                        "weighted)")
    p.add_argument("--element-weights", default=None, metavar="EL=W,...",
                   help="per-atom force-loss weights by element (e.g. In=2,B=2; others 1), "
                        "renormalised to a mean of 1 over the training force components")
    p.add_argument("--val-fraction", type=float, default=0.15,
                   help="share of the training MD runs held back for early stopping (the "
                        "state with the lowest validation loss is kept)")
    p = sub.add_parser("score")
    p.add_argument("dir")
    p.add_argument("model")
    p.add_argument("--json", default=None)
    p = sub.add_parser("export")
    p.add_argument("model")
    p.add_argument("--out", required=True,
                   help="a .json.gz model file, or with --stack-on an ionic+delta .json")
    p.add_argument("--stack-on", default=None, metavar="DELTA",
                   help="write DELTA (F14, or an ionic+delta file) with this correction in it: "
                        "a parameter set for the 'ionic' calculator")
    p = sub.add_parser("loop")
    p.add_argument("stack", help="the ionic+delta file with the correction that sampled them")
    p.add_argument("--json", default=None)
    p = sub.add_parser("compare")
    p.add_argument("stacks", nargs="+", help="ionic+delta files")
    p.add_argument("--rounds", required=True, help="labelling rounds, e.g. 28,29")
    p.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    return {"fit": fit, "score": score, "export": export, "loop": loop,
            "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
