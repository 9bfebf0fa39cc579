#!/usr/bin/env bash
# Regenerate the shipped default ionic parameter set, its report and plots:
#   viglas/potentials/data/default.yaml, default_report.json, default_*.png
# Reference: CHGNet 0.3.0 (weights ship in the chgnet wheel, CPU is enough).
# Start: $DATA/default_start.yaml = initial_parameters(all 8 elements, three_body=True)
# with the Al and Ga angle strength held at k = 5 eV (see its description).
# Labels are cached in ~/.cache/viglas/labels, so a rerun only refits.
# Cost on a loaded 2-core machine: about 1 h for the labels, 20 min for fit + rounds,
# then check-potential (NVT 100 ps + melt-quench for 6 compositions) about 1 h.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
DATA=viglas/potentials/data
viglas fit-potential --reference chgnet --reference-params '{"model": "0.3.0"}' \
  --compositions LiAlCl4,LiAlCl2.5O0.75,NaAlCl2.5O0.75,LiGaCl2.5O0.75,LiInCl2.5O0.75,LiBCl2.5O0.75,NaAlCl4,Li0.5Na0.5Al0.5Ga0.5Cl3O0.5,Li0.5Na0.5In0.5B0.5Cl2.5O0.75,LiAl0.5Ga0.5Cl2O \
  --n-atoms 64 --seed 0 --rounds 2 --iter-steps 300 --validation-steps 1000 --threads 1 \
  --initial "$DATA/default_start.yaml" \
  --output "$DATA/default.yaml" --report "$DATA/default_report.json" --plots-dir "$DATA" \
  --plot-prefix default_
viglas check-potential "$DATA/default.yaml" --report "$DATA/default_report.json" \
  --compositions LiAlCl4,LiAlCl2.5O0.75,NaAlCl2.5O0.75,LiGaCl2.5O0.75,LiInCl2.5O0.75,LiBCl2.5O0.75 \
  --nvt-ps 100 --t-K 1000 --timestep-fs 2 --t-melt-K 1000 --workdir runs/check-default --seed 0
