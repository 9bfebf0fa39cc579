#!/usr/bin/env python
"""Which parts of the ionic+delta form buy held-out accuracy (issue 12, item 3)?

Fits several variants of the correction on the same DFT training frames (the dataset's
train split, λ chosen by cross-validation over whole runs as in ``fit_dft.py --form
delta``) and scores each on the held-out split: force R² and RMSE overall and per
composition, pressure bias, energy differences, training force R², coefficient count.

    python scripts/ace_ablation.py [--json viglas/potentials/data/dft/samplers/ace_ablation.json]
                                   [--variants no-ace,ace-opposite,ace-all]

Variants (all share σ_E 10 meV/atom, σ_F 0.1 eV/Å, σ_S 0.5 GPa, 0.4 Å pair knots,
5.5 Å pair cutoff, P₀…P₄ first-shell angles, embedding with no constant part):
- ``no-ace``: pair splines + first-shell angles + embedding (the F1 form);
- ``ace-opposite``: + ACE over opposite-class neighbours, 4 radial functions, every
  block present in the data;
- ``ace-all``: + ACE over all neighbours within 5 Å, 3 radial functions, blocks with
  at least 200 centre atoms (the settings of the shipped F4 `dft-delta`);
- ``ace-all-s100``: as ``ace-all`` with blocks of at least 100 centre atoms;
- ``ace-all-every``: as ``ace-all`` with every block present in the data. With a weak
  regularisation (``--variants ace-all-every --lambdas 0.001``) it measures the form's
  capacity: how far training and held-out accuracy go when nothing holds it back.
- ``ace-all-nr4``, ``ace-all-nr5``: as ``ace-all`` with 4 or 5 radial functions (finer
  radial resolution of the 1-5 Å shell).
- ``ace-all-k05``: as ``ace-all`` with the splines uniform in 1 - exp(-0.5 (r - r0))
  (finer in the first shell, coarser near the cutoff; same coefficient count);
- ``ace-all-k05-pair``: + each pair's radial range starting 0.6 Å below its shortest
  training distance (instead of 1 Å for every pair);
- ``ace-all-pair-floor``: pair ranges + the ACE ridge floored at 30 x the median column
  scale, uniform splines;
- ``ace-all-k05-pair-floor``: all three (the form of F9 and F10 in docs/dft.md).

``--charges 0.55:1.2`` puts the baseline's Coulomb charges where F7-F10 have them
(:func:`viglas.potentials.delta_fit.baseline_with_charges`); default: the shipped set's.
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

VARIANTS = {
    "no-ace": {},
    "ace-opposite": {"ace_rc_A": 5.0, "ace_nr": 4, "ace_pairs": "opposite",
                     "ace_min_support": 1},
    "ace-all": {"ace_rc_A": 5.0, "ace_nr": 3, "ace_pairs": "all", "ace_min_support": 200},
    "ace-all-s100": {"ace_rc_A": 5.0, "ace_nr": 3, "ace_pairs": "all",
                     "ace_min_support": 100},
    "ace-all-every": {"ace_rc_A": 5.0, "ace_nr": 3, "ace_pairs": "all",
                      "ace_min_support": 1},
    "ace-all-nr4": {"ace_rc_A": 5.0, "ace_nr": 4, "ace_pairs": "all", "ace_min_support": 200},
    "ace-all-nr5": {"ace_rc_A": 5.0, "ace_nr": 5, "ace_pairs": "all", "ace_min_support": 200},
    "ace-all-k05": {"ace_rc_A": 5.0, "ace_nr": 3, "ace_pairs": "all", "ace_min_support": 200,
                    "ace_kappa_per_A": 0.5},
    "ace-all-k05-pair": {"ace_rc_A": 5.0, "ace_nr": 3, "ace_pairs": "all",
                         "ace_min_support": 200, "ace_kappa_per_A": 0.5,
                         "ace_r0_mode": "pair", "ace_r0_margin_A": 0.6},
    "ace-all-pair-floor": {"ace_rc_A": 5.0, "ace_nr": 3, "ace_pairs": "all",
                           "ace_min_support": 200, "ace_r0_mode": "pair",
                           "ace_r0_margin_A": 0.6, "ace_ridge_floor": 30.0},
    "ace-all-k05-pair-floor": {"ace_rc_A": 5.0, "ace_nr": 3, "ace_pairs": "all",
                               "ace_min_support": 200, "ace_kappa_per_A": 0.5,
                               "ace_r0_mode": "pair", "ace_r0_margin_A": 0.6,
                               "ace_ridge_floor": 30.0},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=str(ROOT / "viglas/potentials/data/dft/samplers/"
                                         "ace_ablation.json"))
    p.add_argument("--variants", default="no-ace,ace-opposite,ace-all,ace-all-s100")
    p.add_argument("--lambdas", default="0.3,1,3,10")
    p.add_argument("--charges", default=None, metavar="SCALE:ALKALI",
                   help="baseline Coulomb charges (e.g. 0.55:1.2); default: the shipped set's")
    args = p.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: unknown {bad}; choose from {', '.join(VARIANTS)}")

    from viglas.potentials import load_parameters
    from viglas.potentials.delta_fit import DeltaFitSettings, delta_predictor, fit_delta
    from viglas.potentials.dft_fit import load_dataset, score, split

    frames = load_dataset()
    train, valid = split(frames)
    base = load_parameters(None)
    if args.charges:
        from viglas.potentials.delta_fit import baseline_with_charges

        cs, qa = (float(x) for x in args.charges.split(":"))
        base = baseline_with_charges(base, cs, qa, train)
    lambdas = tuple(float(x) for x in args.lambdas.split(","))
    out = {"n_train": len(train), "n_valid": len(valid),
           "settings_hash": frames[0].info.get("dft_settings_hash"),
           "command": "python scripts/ace_ablation.py " + " ".join(argv or sys.argv[1:]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "variants": {}}
    print(f"{len(train)} training, {len(valid)} held-out frames", flush=True)
    for name in names:
        st = DeltaFitSettings(h_A=0.4, rc_A=5.5, lmax=4, sigma_E_eV_atom=0.01,
                              sigma_F_eV_A=0.1, sigma_S_GPa=0.5, lambdas=lambdas,
                              **VARIANTS[name])
        t0 = time.time()
        model, rec = fit_delta(train, base, st, log=lambda *_: None)
        pred = delta_predictor(model, base)
        tr = score(train, pred)["all"]
        va = score(valid, pred)
        row = {"settings": VARIANTS[name], "n_coefficients": model.n_coef,
               "lambda": rec["lambda"], "fit_s": round(time.time() - t0, 1),
               "train_force_r2": round(tr["force_r2"], 4),
               "valid": {k: round(v, 4) for k, v in va["all"].items()
                         if isinstance(v, float)},
               "valid_force_r2_by_composition": {
                   c: round(v["force_r2"], 3) for c, v in va["by_composition"].items()}}
        out["variants"][name] = row
        print(f"{name:14s} {model.n_coef:5d} coef, λ {rec['lambda']:g}: train R² "
              f"{row['train_force_r2']:.3f}, held-out R² {row['valid']['force_r2']:.3f} "
              f"(RMSE {row['valid']['force_rmse_eV_A']:.3f} eV/Å), pressure bias "
              f"{row['valid']['pressure_bias_GPa']:+.2f} GPa", flush=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
