#!/usr/bin/env python
"""Score several ionic+delta fits on the same held-out DFT frames (issue 12, item 3).

Each fit is scored as ``fit_dft.py --delta-in FILE`` scores it (force R² per composition
and pooled, pressure bias and RMSE, energy-difference RMSE), but all of them on one
frame set, optionally without the frames of some rounds, so that fits made at
different times (with different held-out sets) compare like for like.

    python scripts/compare_fits.py NAME=FILE [NAME=FILE ...] [--exclude-rounds 12,13]
                                   [--json viglas/potentials/data/dft/samplers/compare.json]

``FILE`` is an ionic+delta JSON file or shipped name (``dft-delta``), or a plain ionic
parameter set (YAML file, or ``chgnet-ionic`` for the shipped CHGNet-fitted set). The held-out
split is the one ``fit_dft.py`` uses (plan split plus ``data/dft/split_overrides.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fits", nargs="+", metavar="NAME=FILE")
    p.add_argument("--exclude-rounds", default="", help="comma-separated plan rounds whose "
                   "held-out frames are left out (e.g. 12,13)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    pairs = []
    for item in args.fits:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"fits: '{item}' is not NAME=FILE (e.g. F4=dft-delta)")
        pairs.append((name, path))
    try:
        skip = {int(x) for x in args.exclude_rounds.split(",") if x.strip()}
    except ValueError:
        raise SystemExit(f"--exclude-rounds: '{args.exclude_rounds}' is not a list of "
                         "integers (e.g. 12,13)") from None

    from viglas.potentials.delta import is_delta_file
    from viglas.potentials.delta_fit import delta_file_predictor
    from viglas.potentials.dft_fit import ionic_predictor, load_dataset, score, split

    _, valid = split(load_dataset())
    frames = [a for a in valid if int(a.info.get("round", 0)) not in skip]
    out = {"n_frames": len(frames), "excluded_rounds": sorted(skip),
           "labels": [str(a.info.get("label")) for a in frames],
           "command": "python scripts/compare_fits.py " + " ".join(argv or sys.argv[1:]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fits": {}}
    for name, path in pairs:
        # an ionic+delta file (or "default" = dft-delta), or a plain ionic set
        pred = (delta_file_predictor(path)[1] if is_delta_file(path)
                else ionic_predictor(path))
        s = score(frames, pred)
        row = {"file": str(path),
               "force_r2_by_composition": {c: round(v["force_r2"], 3)
                                           for c, v in s["by_composition"].items()},
               **{k: round(s["all"][k], 3) for k in (
                   "force_r2", "force_rmse_eV_A", "pressure_bias_GPa", "pressure_rmse_GPa",
                   "energy_diff_rmse_meV_atom")}}
        out["fits"][name] = row
        print(f"{name}: force R2 {row['force_r2']:.3f} "
              + " ".join(f"{c} {v:.2f}" for c, v in row["force_r2_by_composition"].items())
              + f" | P bias {row['pressure_bias_GPa']:+.2f} GPa, E-diff "
              f"{row['energy_diff_rmse_meV_atom']:.0f} meV/atom", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
        print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
