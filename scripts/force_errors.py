"""Where a potential's force error sits: per composition and element, the reference
force scale, the error and each element's share of the squared error, on the shipped
DFT labels: the frames the set was fitted on (its recorded training labels) and the
held-out split.

    python scripts/force_errors.py                       # dft-delta, every composition
    python scripts/force_errors.py --composition LiInCl2.5O0.75 --split valid
    python scripts/force_errors.py --parameters chgnet-ionic --json out.json

Force R² of a composition is 1 - SSE/SST: it falls when the error grows *or* when the
reference forces are small (soft cells, low temperature). The table shows both, so a
low R² can be told apart from a large error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def element_table(frames, pred) -> list[dict]:
    """Per composition and element of ``frames``: the project's scores
    (:func:`viglas.potentials.dft_fit.score`: force R², RMSE, rms reference force) and,
    per element, atoms, rms reference force, RMSE, R² and share of the composition's
    squared force error. ``pred`` is called once."""
    from viglas.potentials.dft_fit import reference_arrays, score

    rows = []
    comps = dict.fromkeys(str(a.info.get("composition")) for a in frames)
    for comp in comps:
        sel = [a for a in frames if str(a.info.get("composition")) == comp]
        ref, p = reference_arrays(sel), pred(sel)
        m = score(sel, lambda _: p)["all"]
        sym = np.repeat(np.concatenate([a.get_chemical_symbols() for a in sel]), 3)
        fr = np.concatenate([r["forces"] for r in ref]).ravel()
        d = np.concatenate([x["forces"] for x in p]).ravel() - fr
        sse = float(np.sum(d ** 2))
        row = {"composition": comp, "n_frames": len(sel), "force_r2": m["force_r2"],
               "force_rms_ref_eV_A": m["force_rms_ref_eV_A"],
               "force_rmse_eV_A": m["force_rmse_eV_A"], "elements": {}}
        for el in sorted(set(sym)):
            k = sym == el
            row["elements"][el] = {
                "n_atoms": int(k.sum()) // 3,
                "rms_ref_eV_A": float(np.sqrt(np.mean(fr[k] ** 2))),
                "rmse_eV_A": m["force_rmse_by_element_eV_A"][el],
                "r2": 1.0 - float(np.sum(d[k] ** 2)) / float(np.sum((fr[k] - fr[k].mean()) ** 2)),
                "share_of_sse": float(np.sum(d[k] ** 2)) / sse}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parameters", default="dft-delta",
                    help="ionic parameter set to score (name or file; default dft-delta)")
    ap.add_argument("--composition", action="append", default=None,
                    help="only this composition (repeat for several; default: all)")
    ap.add_argument("--split", choices=("train", "valid", "all"), default="all",
                    help="which frames: those the set was fitted on (its recorded training "
                    "labels), the held-out split, or both")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)

    from viglas.potentials.delta import is_delta_file, load_delta_file
    from viglas.potentials.dft_fit import calculator_predictor, load_dataset, split

    frames = load_dataset()
    train, valid = split(frames)
    # the frames the set was fitted on, where its file records them (a dft-delta fit
    # does); labels added after the fit are neither its training nor its held-out set
    meta = (load_delta_file(args.parameters)["delta"].get("meta") or {}
            if is_delta_file(args.parameters) else {})
    fitted = set((meta.get("fit") or {}).get("train_labels")
                 or [a.info["label"] for a in train])
    train = [a for a in frames if a.info["label"] in fitted]
    valid = [a for a in valid if a.info["label"] not in fitted]
    splits = {"train": train, "valid": valid, "all": train + valid}
    known = sorted({str(a.info.get("composition")) for a in frames})
    for c in args.composition or []:
        if c not in known:
            ap.error(f"--composition: {c!r} has no labels; one of {', '.join(known)}")
    pred = calculator_predictor({"name": "ionic", "params": {"parameters": args.parameters}})
    out = {}
    for name in ((args.split,) if args.split != "all" else ("train", "valid")):
        fs = [a for a in splits[name]
              if args.composition is None or str(a.info.get("composition")) in args.composition]
        out[name] = element_table(fs, pred) if fs else []
        for r in out[name]:
            els = "  ".join(f"{el} {e['rms_ref_eV_A']:.2f}/{e['rmse_eV_A']:.2f} "
                            f"({e['share_of_sse']:.2f})" for el, e in r["elements"].items())
            print(f"{name:5s} {r['composition']:24s} {r['n_frames']:3d} frames  R2 "
                  f"{r['force_r2']:.3f}  rms ref {r['force_rms_ref_eV_A']:.2f}  RMSE "
                  f"{r['force_rmse_eV_A']:.2f}  | element rms ref/RMSE (share): {els}")
    if args.json:
        args.json.write_text(json.dumps({"parameters": args.parameters, "split": args.split,
                                         "command": "python scripts/force_errors.py "
                                         + " ".join(argv if argv is not None else sys.argv[1:]),
                                         "tables": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
