#!/usr/bin/env python
"""Refit the ionic potential to the shipped DFT (PBE-D3(BJ)) labels and score it.

    python scripts/fit_dft.py [--out viglas/potentials/data/dft_pbe_d3.yaml]
                              [--report viglas/potentials/data/dft/fit_report.json]
                              [--reference-models chgnet,sevennet] [--crystal-ps 10]

1. Loads the labels (scripts/dft_labels.py), splits them by whole MD runs (plan
   ``split``), scores the plain ``chgnet-ionic`` set, CHGNet 0.3.0 and SevenNet-0 on the same
   frames (per composition: force RMSE and R², stress RMSE, pressure bias, energy
   differences).
2. Fits the ionic set to the training frames (forces, stress, energy differences),
   starting from ``chgnet-ionic`` (``--initial``), and scores it the same way.
3. Crystal checks of each set: LiAlCl4 and NaAlCl4 relaxed at 0 GPa (positions and
   cell) and held NPT at 300 K, 0 GPa; density and whether the structure is still the
   prototype's (pymatgen StructureMatcher).
4. Writes the fitted parameters and a JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def _rel(path) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _signed(x) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


from viglas.md import melt_quench, run_md  # noqa: E402
from viglas.units import density_g_cm3  # noqa: E402


def crystal_check(params, name: str, *, npt_ps: float, workdir: Path, seed: int = 0):
    """Relax + NPT(300 K, 0 GPa) of a prototype crystal with the ionic set ``params``."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    from viglas.potentials.delta import make_potential
    from viglas.potentials.dft_fit import crystal_matcher
    from viglas.structures import load_prototype

    proto = load_prototype(name)
    proto.info = {}
    mass = float(proto.get_masses().sum())

    def rho(a):
        return density_g_cm3(mass, a.get_volume())

    matcher = crystal_matcher()
    ref = AseAtomsAdaptor.get_structure(proto)
    out = {"prototype_density_g_cm3": round(rho(proto), 4)}
    a = proto.copy()
    a.calc = make_potential(params)
    e0 = a.get_potential_energy() / len(a)
    opt = FIRE(FrechetCellFilter(a), logfile=None)
    opt.run(fmax=0.01, steps=3000)
    out["relaxed"] = {
        "density_g_cm3": round(rho(a), 4),
        "density_change_pct": round(100 * (rho(a) / rho(proto) - 1), 2),
        "energy_change_meV_atom": round(1000 * (a.get_potential_energy() / len(a) - e0), 2),
        "same_structure": bool(matcher.fit(ref, AseAtomsAdaptor.get_structure(a))),
        "steps": int(opt.nsteps),
    }
    if npt_ps > 0:
        sc = proto.repeat((2, 2, 2))
        calc = make_potential(params)
        kw = dict(ensemble="npt", thermostat="langevin", temperature_K=300.0,
                  pressure_GPa=0.0, timestep_fs=2.0, save_every=50, seed=seed,
                  progress=False)
        eq = run_md(sc, calc, steps=1000, workdir=workdir / f"{name}_npt_eq", **kw)
        prod = run_md(eq.atoms, calc, steps=int(round(npt_ps * 500)),
                      workdir=workdir / f"{name}_npt", **kw)
        q = prod.atoms.copy()
        q.calc = calc
        FIRE(FrechetCellFilter(q), logfile=None).run(fmax=0.02, steps=3000)
        out["npt_300K"] = {
            "ps": npt_ps, "after_equilibration_ps": 2.0,
            "density_g_cm3": round(float(prod.mean_density_g_cm3), 4),
            "density_change_pct": round(100 * (prod.mean_density_g_cm3 / rho(proto) - 1), 2),
            "mean_temperature_K": round(float(prod.mean_temperature_K), 1),
            "same_structure_after_quench": bool(matcher.fit(
                AseAtomsAdaptor.get_structure(sc), AseAtomsAdaptor.get_structure(q))),
        }
    return out


def glass_check(params, comp: str, *, workdir: Path, seed: int = 0, n_atoms: int = 64,
                t_melt_K: float = 1000.0, hold_ps: float = 5.0,
                cool_rate_K_ps: float = 100.0) -> dict:
    """Melt-quench of ``comp`` at 0 GPa (NPT from ``t_melt_K`` to 300 K): does the melt
    hold together, and at which density does the glass end?"""
    from viglas.errors import ViglasError
    from viglas.potentials.delta import make_potential
    from viglas.structures import build_glass

    start = build_glass(comp, n_atoms, method="substitution", seed=seed)
    start.info = {}
    rho0 = density_g_cm3(start.get_masses().sum(), start.get_volume())
    try:
        mq = melt_quench(start, make_potential(params), t_melt_K=t_melt_K, t_final_K=300.0,
                         hold_ps=hold_ps, cool_rate_K_ps=cool_rate_K_ps, pressure_GPa=0.0,
                         timestep_fs=2.0, workdir=workdir / comp, seed=seed, progress=False)
    except ViglasError as exc:
        return {"boiled_or_failed": True, "error": str(exc), "start_density_g_cm3": rho0}
    a = mq.atoms
    rho = density_g_cm3(a.get_masses().sum(), a.get_volume())
    return {"boiled_or_failed": False, "start_density_g_cm3": round(rho0, 4),
            "glass_density_g_cm3": round(rho, 4), "t_melt_K": t_melt_K,
            "cool_rate_K_ps": cool_rate_K_ps, "n_atoms": len(a),
            "glass": str(Path(workdir / comp).relative_to(ROOT)) if Path(workdir).is_relative_to(ROOT) else str(workdir / comp)}


def score_delta_file(path, train, valid, report: dict) -> None:
    """Score an existing ionic+delta file (no refit) on the current labels."""
    from viglas.potentials.delta_fit import delta_file_predictor
    from viglas.potentials.dft_fit import score

    model, pred = delta_file_predictor(path)
    fit = dict(model.meta.get("fit", {}))
    fit.pop("lambda_scan", None)
    report["delta_fit"] = {**fit, "model_file": _rel(path), "scored_without_refit": True}
    report["scores"]["ionic_delta"] = {"train": score(train, pred),
                                       "valid": score(valid, pred) if valid else None}
    v = report["scores"]["ionic_delta"]["valid"]
    _log(f"ionic+delta {path}: held-out force R2 {v['all']['force_r2'] if v else 'n/a'}")


def _set_ident(prm) -> str:
    """A short content hash of a parameter set (file path or parameters object)."""
    from viglas.provenance import model_identity, stable_hash

    return (stable_hash(Path(prm).read_text(), length=12) if isinstance(prm, (str, Path))
            else stable_hash(model_identity(prm), length=12))


def _parse_charges(text: str) -> list[tuple[float, float]]:
    """``--delta-charges`` "SCALE:ALKALI,..." (e.g. "0.45:1,0.55:1.2") as pairs."""
    out = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        try:
            cs, qa = (float(v) for v in item.split(":"))
        except ValueError:
            raise SystemExit(f"--delta-charges: {item!r} is not SCALE:ALKALI_CHARGE (e.g. "
                             f"0.55:1.2, comma-separated)") from None
        out.append((cs, qa))
    if not out:
        raise SystemExit("--delta-charges: give at least one SCALE:ALKALI_CHARGE pair")
    return out


def fit_delta_form(args, train, valid, report: dict) -> None:
    """Fit the ionic+delta form (issue 12: a new form when rigid ions cannot get there),
    score it like the others and write the model file."""
    from viglas.potentials import load_parameters
    from viglas.potentials.delta import save_delta_file
    from viglas.potentials.delta_fit import DeltaFitSettings, delta_predictor, fit_delta
    from viglas.potentials.dft_fit import score

    base = load_parameters(args.initial)
    st = DeltaFitSettings(h_A=args.delta_h, lmax=args.delta_lmax, rc_A=args.delta_rc,
                          sigma_E_eV_atom=args.delta_sigma_e, sigma_F_eV_A=args.delta_sigma_f,
                          sigma_S_GPa=args.delta_sigma_s, emb_kmin=args.delta_emb_kmin,
                          ace_rc_A=args.delta_ace_rc, ace_nr=args.delta_ace_nr,
                          ace_pmax=args.delta_ace_pmax, ace_pairs=args.delta_ace_pairs,
                          ace_ridge=args.delta_ace_ridge,
                          ace_min_support=args.delta_ace_min_support,
                          ace_kappa_per_A=args.delta_ace_kappa,
                          ace_r0_mode=args.delta_ace_r0_mode,
                          ace_r0_margin_A=args.delta_ace_r0_margin,
                          ace_ridge_floor=args.delta_ace_ridge_floor,
                          field_rc_A=args.delta_field_rc, field_b_per_A=args.delta_field_b,
                          cv_metric=args.delta_cv_metric,
                          **({"lambdas": tuple(float(x) for x in args.delta_lambdas.split(","))}
                             if args.delta_lambdas else {}))
    t0 = time.time()
    if args.delta_charges:
        from viglas.potentials.delta_fit import fit_delta_charges

        model, rec, base = fit_delta_charges(train, base, st, args.delta_charge_pairs,
                                             log=_log)
        _log(f"charges: scale {rec['charge_scale']:g}, alkali {rec['alkali_charge']:g} "
             f"(lowest CV {args.delta_cv_metric})")
    else:
        model, rec = fit_delta(train, base, st, log=_log)
    rec.update(reference="gpaw-pbe-d3bj", settings_hash=report["settings_hash"],
               n_valid_frames=len(valid), baseline=str(args.initial or "chgnet-ionic"),
               command="python scripts/fit_dft.py " + " ".join(sys.argv[1:]),
               date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               fit_seconds=round(time.time() - t0, 1))
    model.meta["fit"] = rec
    from viglas.potentials.delta import is_delta_file, load_delta_file

    if is_delta_file(args.delta_out) and load_delta_file(args.delta_out).get("acemlp"):
        # the correction was fitted to the old linear fit's residual: it does not carry over
        _log(f"{args.delta_out} carried an ACE-MLP correction fitted on top of the linear fit "
             "it held; the new file has the new linear fit only (scripts/ace_residual_probe.py "
             "and scripts/fs_ace_probe.py fit corrections to the linear fit named by their "
             "F14 constant: point it at the new file to fit one)")
    save_delta_file(model, base.to_yaml_dict(), args.delta_out)
    if args.learning_curve and valid:
        # held-out accuracy against the number of training frames (random subsets of
        # whole runs, same settings and lambda selection): how much more data would buy
        import numpy as np

        rng = np.random.default_rng(0)
        curve = []
        for frac in (0.25, 0.5, 0.75, 1.0):
            k = max(3, int(round(frac * len(train))))
            sub = [train[i] for i in sorted(rng.permutation(len(train))[:k])]
            m, r = (model, rec) if k == len(train) else fit_delta(
                sub, base, st, log=lambda *_: None, species=model.species)
            sc = score(valid, delta_predictor(m, base))["all"]
            curve.append({"n_train_frames": k, "lambda": r["lambda"],
                          "valid_force_r2": round(sc["force_r2"], 4),
                          "valid_force_rmse_eV_A": round(sc["force_rmse_eV_A"], 4),
                          "valid_pressure_bias_GPa": round(sc["pressure_bias_GPa"], 3)})
            _log(f"learning curve: {curve[-1]}")
        report["delta_learning_curve"] = curve
    report["delta_fit"] = {**rec, "model_file": _rel(args.delta_out)}
    pred = delta_predictor(model, base)
    report["scores"]["ionic_delta"] = {"train": score(train, pred),
                                       "valid": score(valid, pred) if valid else None}
    v = report["scores"]["ionic_delta"]["valid"]
    _log(f"ionic+delta: {model.n_coef} coefficients, lambda {rec['lambda']:g}, held-out force "
         f"R2 {v['all']['force_r2'] if v else 'n/a'}, pressure bias "
         f"{v['all']['pressure_bias_GPa'] if v else 'n/a'} GPa")


def print_tables(report_path: str | Path) -> None:
    """Markdown tables of a fit report: held-out force R² / RMSE and pressure bias per
    composition for every scored model, then the crystal and 0 GPa glass checks."""
    rep = json.loads(Path(report_path).read_text())
    models = [m for m, v in rep["scores"].items() if v.get("valid")]
    comps = list(dict.fromkeys(c for m in models
                               for c in rep["scores"][m]["valid"]["by_composition"]))
    print(f"Held-out frames: {rep['n_valid']} (training {rep['n_train']}); force R² "
          "(RMSE eV/Å) | pressure bias GPa\n")
    print("| composition | " + " | ".join(models) + " |")
    print("|---" * (len(models) + 1) + "|")
    for c in comps + ["all"]:
        row = []
        for m in models:
            v = rep["scores"][m]["valid"]
            x = v["all"] if c == "all" else v["by_composition"].get(c)
            row.append("—" if x is None else f"{x['force_r2']:.2f} ({x['force_rmse_eV_A']:.2f})"
                       f" \\| {x['pressure_bias_GPa']:+.1f}")
        print(f"| {c} (n={'' if c == 'all' else rep['scores'][models[0]]['valid']['by_composition'].get(c, {}).get('n_frames', '')}) | "
              + " | ".join(row) + " |")
    for label, cr in rep.get("crystals", {}).items():
        for name, r in cr.items():
            rl = r.get("relaxed", {})
            npt = r.get("npt_300K", {})
            print(f"- {label} {name}: relaxed {rl.get('density_change_pct')} % "
                  f"(same structure: {rl.get('same_structure')}); NPT 300 K "
                  f"{npt.get('density_change_pct', 'n/a')} %")
    loop = rep.get("loop_0GPa")
    if loop:
        print(f"\nDFT pressure on the cells `{loop['sampler']}` made itself at 0 GPa:\n")
        print("| snapshot | T (K) | density g/cm³ | PBE-D3 GPa (configurational) | "
              "model GPa | PBE-D3 − model GPa |")
        print("|---|---|---|---|---|---|")
        for r in loop["cells"]:
            print(f"| {r['label']} | {r['t_K']:.0f} | {r['npt_density_g_cm3']:.3f} | "
                  f"{r['dft_pressure_GPa']:+.2f} | {_signed(r.get('model_pressure_GPa'))} | "
                  f"{_signed(r.get('pressure_error_GPa'))} |")
        print("\nPressure of each 300 K glass, <PBE-D3 − model> over its snapshots (the "
              "model holds it at 0 GPa):\n")
        for g in loop.get("glasses", []):
            se = g.get("pressure_se_GPa")
            n = g["n_snapshots"]
            print(f"- {g['glass']}: {_signed(g.get('pressure_GPa'))} GPa"
                  + (f" ± {se:.2f}" if se is not None else "")
                  + f" ({n} snapshot{'s' if n > 1 else ''}; direct <PBE-D3> + kinetic "
                  f"{g['direct_GPa']:+.2f} GPa)")
    for label, gl in rep.get("glasses_0GPa", {}).items():
        for comp, r in gl.items():
            print(f"- {label} {comp} melt-quench at 0 GPa: "
                  + ("boiled/failed" if r.get("boiled_or_failed") else
                     f"{r['glass_density_g_cm3']} g/cm3 (start {r['start_density_g_cm3']})"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "viglas/potentials/data/dft_pbe_d3.yaml"))
    p.add_argument("--report", default=str(ROOT / "viglas/potentials/data/dft/fit_report.json"))
    p.add_argument("--initial", default=None, help="start parameters (default: shipped)")
    p.add_argument("--reference-models", default="chgnet,sevennet")
    p.add_argument("--crystal-ps", type=float, default=10.0)
    p.add_argument("--workdir", default=str(ROOT / "runs" / "fit-dft"))
    p.add_argument("--force-weight", type=float, default=1.0)
    p.add_argument("--stress-weight", type=float, default=0.5)
    p.add_argument("--energy-weight", type=float, default=10.0)
    p.add_argument("--no-fit", action="store_true", help="only score the existing sets")
    p.add_argument("--free-three-body", action="store_true",
                   help="fit the angle-term strengths too (the shipped set holds Al/Ga at 5 eV)")
    p.add_argument("--scan-stress-weights", default="",
                   help="comma-separated stress weights (per GPa): refit with each and "
                        "tabulate held-out force R2 against pressure bias (the trade-off)")
    p.add_argument("--form", choices=("ionic", "delta"), default="ionic",
                   help="ionic: refit the rigid-ion set; delta: fit the linear many-body "
                        "correction on the ionic baseline (--initial)")
    p.add_argument("--delta-out", default=str(ROOT / "viglas/potentials/data/dft_delta.json"))
    p.add_argument("--train-labels-from", default=None, metavar="MODEL.json",
                   help="train on exactly the frames a shipped ionic+delta fit used")
    p.add_argument("--delta-in", default=None,
                   help="score this ionic+delta file instead of fitting one")
    p.add_argument("--loop-sampler", default=None, metavar="FILE_NAME",
                   help="report the DFT pressure on the labelled cells this parameter file "
                        "(its file name in the plan's sampler field) made at 0 GPa")
    p.add_argument("--delta-emb-kmin", type=int, default=3,
                   help="first embedding spline kept (3: F(0) = 0, no constant part; 0: the "
                        "form of the shipped dft_delta.json)")
    p.add_argument("--delta-lambdas", default=None,
                   help="comma-separated regularisation strengths to cross-validate")
    p.add_argument("--delta-h", type=float, default=0.4, help="spline knot spacing (A)")
    p.add_argument("--delta-rc", type=float, default=5.5, help="pair cutoff (A)")
    p.add_argument("--delta-lmax", type=int, default=4)
    p.add_argument("--delta-sigma-e", type=float, default=0.01, help="eV/atom")
    p.add_argument("--delta-sigma-f", type=float, default=0.1, help="eV/A")
    p.add_argument("--delta-sigma-s", type=float, default=0.5, help="GPa")
    p.add_argument("--delta-ace-rc", type=float, default=0.0,
                   help="cutoff (A) of the body-order-3 ACE term (delta_ace); 0 = off")
    p.add_argument("--delta-ace-nr", type=int, default=4, help="ACE radial functions")
    p.add_argument("--delta-ace-pmax", type=int, default=3, help="ACE highest cos power")
    p.add_argument("--delta-ace-r0-mode", choices=("global", "pair"), default="global",
                   help="where the ACE radial range starts: 'global' (1 A for every pair) "
                        "or 'pair' (each pair's shortest training distance)")
    p.add_argument("--delta-ace-r0-margin", type=float, default=0.5,
                   help="'pair' mode: the ACE range starts this far (A) below the pair's "
                        "shortest training distance")
    p.add_argument("--delta-ace-ridge-floor", type=float, default=0.0,
                   help="floor of each ACE column's ridge scale, times the median ACE "
                        "column scale (0 = own scale only; rarely activated columns then "
                        "go unregularised)")
    p.add_argument("--delta-ace-kappa", type=float, default=0.0,
                   help="ACE radial transform (1/A): 0 = splines uniform in r; > 0 = "
                        "uniform in 1 - exp(-kappa (r - r0)), finer in the first shell")
    p.add_argument("--delta-field-rc", type=float, default=0.0,
                   help="cutoff (A) of the field-squared term (delta_field: one coefficient "
                        "per element times the squared field of formal charges); 0 = off")
    p.add_argument("--delta-field-b", type=float, default=1.8,
                   help="Tang-Toennies damping of the field term (1/A)")
    p.add_argument("--delta-ace-pairs", choices=("opposite", "all"), default="opposite",
                   help="ACE neighbour channels: opposite-class only, or all species")
    p.add_argument("--delta-ace-ridge", type=float, default=1.0,
                   help="ACE ridge relative to each column's own data scale (times lambda)")
    p.add_argument("--delta-charges", default=None,
                   help="baseline Coulomb charges to choose from by cross-validation: "
                        "comma-separated SCALE:ALKALI pairs (alkali charge q, formers 4-q, "
                        "Cl -1, O -2, all times SCALE), e.g. 0.45:1,0.55:1,0.55:1.2; "
                        "default: the baseline's own charges")
    p.add_argument("--delta-cv-metric", choices=("loss", "force"), default="loss",
                   help="what cross-validation minimises to pick lambda and the charges: the "
                        "weighted objective (energies, forces, stresses) or the force RMSE. "
                        "'force' picks weaker regularisation; check the refit's own 0 GPa "
                        "glasses (plan-next) before using it: F8 collapsed (docs/dft.md)")
    p.add_argument("--delta-ace-min-support", type=int, default=200,
                   help="ACE blocks need this many centre atoms in the training data")
    p.add_argument("--learning-curve", action="store_true",
                   help="delta: refit on 25/50/75 %% of the training frames and score each")
    p.add_argument("--glass-check", default="",
                   help="comma-separated compositions to melt-quench at 0 GPa with each set "
                        "(e.g. the six required ones)")
    p.add_argument("--print-tables", default=None, metavar="REPORT",
                   help="print the Markdown tables of a fit report and exit")
    args = p.parse_args(argv)
    if args.form == "delta" and args.out != p.get_default("out"):
        # --out names the rigid-ion parameter file; a delta fit given only --out used to
        # overwrite the shipped dft_delta.json (its --delta-out default) without a word
        p.error("--out is the rigid-ion parameter file of --form ionic; for --form delta "
                "give the model file with --delta-out (default: the shipped dft_delta.json)")
    # bad input is refused before minutes of loading and scoring
    args.delta_charge_pairs = _parse_charges(args.delta_charges) if args.delta_charges else None
    if args.print_tables:
        print_tables(args.print_tables)
        return 0
    if args.form == "delta" and args.report == str(ROOT / "viglas/potentials/data/dft/fit_report.json"):
        args.report = str(ROOT / "viglas/potentials/data/dft/fit_report_delta.json")

    from viglas.potentials import load_parameters, save_parameters
    from viglas.potentials.dft_fit import (calculator_predictor, fit_ionic_to_dft,
                                           ionic_predictor, load_dataset, score, split)
    from viglas.potentials.fit import FitSettings

    frames = load_dataset()
    train, valid = split(frames)
    if args.train_labels_from:
        # redo a shipped fit exactly: its training set is recorded in the model file
        keep = set(json.loads(Path(args.train_labels_from).read_text())["delta"]["meta"]
                   ["fit"]["train_labels"])
        missing = keep - {a.info.get("label") for a in train}
        if missing:
            raise SystemExit(f"--train-labels-from: {len(missing)} training labels are not in "
                             f"the dataset (e.g. {sorted(missing)[0]})")
        train = [a for a in train if a.info.get("label") in keep]
    if args.form == "delta" and args.delta_in:
        # a stacked file (ACE-MLP on the linear correction) saw more frames than the
        # split's training set: those are not held out for it, nor for the models
        # scored beside it on the same frames
        from viglas.potentials.delta import load_delta_file, training_labels

        seen = training_labels(load_delta_file(args.delta_in))
        moved = [a for a in valid if a.info.get("label") in seen]
        if moved:
            valid = [a for a in valid if a.info.get("label") not in seen]
            train = train + moved
            _log(f"{len(moved)} held-out frames were seen by {args.delta_in}'s fit: "
                 "scored with the training frames")
    _log(f"{len(frames)} DFT frames: {len(train)} train, {len(valid)} held out")
    report: dict = {"n_frames": len(frames), "n_train": len(train), "n_valid": len(valid),
                    "settings_hash": frames[0].info.get("dft_settings_hash"),
                    "scores": {}, "crystals": {}}
    default = load_parameters(None)
    report["scores"]["ionic_default_chgnet_fitted"] = {
        "train": score(train, ionic_predictor(default)),
        "valid": score(valid, ionic_predictor(default)) if valid else None}
    for name in [m for m in args.reference_models.split(",") if m]:
        spec = {"chgnet": {"name": "chgnet", "params": {"model": "0.3.0"}},
                "sevennet": {"name": "sevennet", "params": {"model": "7net-0"}}}[name]
        try:
            pred = calculator_predictor(spec)
        except Exception as exc:  # noqa: BLE001 - optional comparison
            _log(f"{name}: not scored ({exc})")
            continue
        report["scores"][name] = {"train": score(train, pred),
                                  "valid": score(valid, pred) if valid else None}
        _log(f"{name}: held-out force R2 "
             f"{report['scores'][name]['valid']['all']['force_r2'] if valid else 'n/a'}")
    fitted = None
    init = load_parameters(args.initial)
    if args.free_three_body:
        init = init.model_copy(update={"three_body": {
            m: t.model_copy(update={"fixed": []}) for m, t in init.three_body.items()}})
    scan = [float(x) for x in args.scan_stress_weights.split(",") if x]
    if scan:
        report["stress_weight_scan"] = []
        for sw in scan:
            r = fit_ionic_to_dft(train, init, FitSettings(
                force_weight=args.force_weight, stress_weight=sw,
                energy_weight=args.energy_weight, max_nfev=400))
            row = {"stress_weight_per_GPa": sw, "n_free": len(r.free),
                   "charge_scale": r.parameters.charge_scale,
                   "train": score(train, ionic_predictor(r.parameters))["all"],
                   "valid": score(valid, ionic_predictor(r.parameters)) if valid else None}
            report["stress_weight_scan"].append(row)
            v = row["valid"]["all"] if valid else row["train"]
            _log(f"stress weight {sw:g}: held-out force R2 {v['force_r2']:.3f}, pressure "
                 f"bias {v['pressure_bias_GPa']:+.2f} GPa")
    if args.loop_sampler:
        # closing the loop: DFT pressure on the cells the set made itself at 0 GPa, and
        # (where the sampler's file is kept under data/dft/samplers) the sampler's own
        # pressure on the same snapshots (dft_fit.loop_cells)
        from viglas.potentials.delta import make_potential
        from viglas.potentials.dft_fit import SAMPLERS, loop_cells, loop_glasses

        kept = SAMPLERS / args.loop_sampler
        rows = loop_cells(frames, args.loop_sampler,
                          make_potential(kept) if kept.is_file() else None)
        for r in rows:
            _log(f"loop: {r}")
        report["loop_0GPa"] = {"sampler": args.loop_sampler, "cells": rows,
                               "glasses": loop_glasses(rows)}
    if args.form == "delta" and args.delta_in:
        score_delta_file(args.delta_in, train, valid, report)
        args.delta_out = args.delta_in
    elif args.form == "delta" and not args.no_fit:
        fit_delta_form(args, train, valid, report)
    if args.form == "ionic" and not args.no_fit:
        settings = FitSettings(force_weight=args.force_weight, stress_weight=args.stress_weight,
                               energy_weight=args.energy_weight, max_nfev=300)
        t0 = time.time()
        res = fit_ionic_to_dft(train, init, settings)
        _log(f"fit: {res.nfev} evaluations, {time.time() - t0:.0f} s, {res.message}")
        fitted = res.parameters
        prov = dict(fitted.provenance)
        prov.update(reference="gpaw-pbe-d3bj", settings_hash=report["settings_hash"],
                    n_train_frames=len(train), n_valid_frames=len(valid),
                    free_parameters=res.free, fixed_pairs=res.fixed,
                    relative_uncertainty={k: round(v, 5) for k, v in res.uncertainty.items()},
                    command="python scripts/fit_dft.py " + " ".join(argv or sys.argv[1:]),
                    date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        fitted = fitted.model_copy(update={
            "provenance": prov,
            "description": "Buckingham + wall + DSF Coulomb + three-body angle term fitted by "
                           "force, stress and energy matching to GPAW PBE-D3(BJ) labels "
                           "(viglas/potentials/data/dft)"})
        save_parameters(fitted, args.out)
        report["fit"] = {"train_metrics": res.train_metrics, "free": res.free,
                         "charge_scale": fitted.charge_scale, "nfev": res.nfev,
                         "parameters_file": _rel(args.out)}
        report["scores"]["ionic_dft_fitted"] = {
            "train": score(train, ionic_predictor(fitted)),
            "valid": score(valid, ionic_predictor(fitted)) if valid else None}
        v = report["scores"]["ionic_dft_fitted"]["valid"]
        _log(f"fitted: charge scale {fitted.charge_scale:.3f}, held-out force R2 "
             f"{v['all']['force_r2'] if v else 'n/a'}")
    wd = Path(args.workdir)
    sets = [("ionic_default_chgnet_fitted", default), ("ionic_dft_fitted", fitted)]
    if "delta_fit" in report:
        sets.append(("ionic_delta", args.delta_out))
    for label, prm in sets:
        if prm is None:
            continue
        report["crystals"][label] = {}
        # one folder per parameter set: a checkpoint of another set never blocks
        ident = _set_ident(prm)
        for name in ("LiAlCl4", "NaAlCl4"):
            try:
                report["crystals"][label][name] = crystal_check(
                    prm, name, npt_ps=args.crystal_ps, workdir=wd / label / ident)
            except Exception as exc:  # noqa: BLE001 - report, keep going
                report["crystals"][label][name] = {"error": f"{type(exc).__name__}: {exc}"}
            _log(f"{label} {name}: {report['crystals'][label][name]}")
        comps = [c for c in args.glass_check.split(",") if c]
        if comps:
            report.setdefault("glasses_0GPa", {})[label] = {}
        for comp in comps:
            r = glass_check(prm, comp, workdir=wd / label / ident / "glass")
            report["glasses_0GPa"][label][comp] = r
            _log(f"{label} {comp} melt-quench at 0 GPa: {r}")
    Path(args.report).write_text(json.dumps(report, indent=1))
    _log(f"report -> {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
