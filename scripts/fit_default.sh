#!/usr/bin/env bash
# Regenerate the shipped default ionic parameter set, its report and plots:
#   viglas/potentials/data/default.yaml, default_report.json, default_*.png
# Reference: CHGNet 0.3.0 (weights ship in the chgnet wheel, CPU is enough).
# Labels are cached in ~/.cache/viglas/labels, so a rerun only refits.
# Cost on a loaded 2-core machine: about 1 h for the labels, 20 min for fit + rounds,
# then check-potential (NVT 100 ps + melt-quench for 6 compositions) about 1 h.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
DATA=viglas/potentials/data
if [[ "${VIGLAS_FIT_CANDIDATE:-0}" != "only" ]]; then
viglas fit-potential --reference chgnet --reference-params '{"model": "0.3.0"}' \
  --compositions LiAlCl4,LiAlCl2.5O0.75,NaAlCl2.5O0.75,LiGaCl2.5O0.75,LiInCl2.5O0.75,LiBCl2.5O0.75,NaAlCl4,Li0.5Na0.5Al0.5Ga0.5Cl3O0.5,Li0.5Na0.5In0.5B0.5Cl2.5O0.75,LiAl0.5Ga0.5Cl2O \
  --n-atoms 64 --seed 0 --rounds 2 --iter-steps 300 --validation-steps 1000 --threads 1 \
  --output "$DATA/default.yaml" --report "$DATA/default_report.json" --plots-dir "$DATA" \
  --plot-prefix default_
viglas check-potential "$DATA/default.yaml" --report "$DATA/default_report.json" \
  --compositions LiAlCl4,LiAlCl2.5O0.75,NaAlCl2.5O0.75,LiGaCl2.5O0.75,LiInCl2.5O0.75,LiBCl2.5O0.75 \
  --nvt-ps 100 --t-K 1000 --timestep-fs 2 --workdir runs/check-default --seed 0
fi

# Optional: regenerate the CANDIDATE set default_candidate_e50.yaml (not the default;
# see default_report.json "improvement_attempts"). Same round-0 training frames as above
# plus every kind=iter CHGNet-labelled ionic-MD frame in the label cache (189 on the
# machine that made it; the set depends on what earlier refit rounds left in the cache),
# energy_weight 50 instead of 10. About 1 min. VIGLAS_FIT_CANDIDATE=1 runs it after the
# default; VIGLAS_FIT_CANDIDATE=only runs only this block.
if [[ "${VIGLAS_FIT_CANDIDATE:-0}" != "0" ]]; then
python - <<'PY'
import glob, json
from datetime import datetime, timezone
from pathlib import Path
from ase.io import read
from viglas.potentials.fit import FitSettings, anion_bonds, fit_parameters, initial_parameters
from viglas.potentials.parameters import save_parameters
from viglas.potentials.reference import CHGNET_SPEC, DEFAULT_COMPOSITIONS, LabelCache
from viglas.potentials.validate import force_report
cache = LabelCache(Path.home() / ".cache" / "viglas" / "labels", CHGNET_SPEC)
frames = []
for comp in DEFAULT_COMPOSITIONS:
    for name, info in json.loads((cache.dir / f"done_{comp}_0_64_substitution.json").read_text()):
        a = read(cache.dir / f"{name}.extxyz"); a.info.update(info); frames.append(a)
it = [a for a in (read(p) for p in sorted(glob.glob(str(cache.dir / "*.extxyz"))))
      if a.info.get("kind") == "iter" and anion_bonds(a) == 0]
train = [a for a in frames if a.info["split"] == "train"] + it
valid = [a for a in frames if a.info["split"] == "valid"]
els = sorted({s for a in frames for s in a.get_chemical_symbols()})
res = fit_parameters(train, initial_parameters(els), FitSettings(energy_weight=50.0))
rep = force_report(valid, res.parameters)
print(len(train), "train frames,", len(it), "iter;", {k: round(v["force_r2"], 3) for k, v in rep["compositions"].items()})
p = res.parameters.model_copy(update={"provenance": {
    "reference": "chgnet-0.3.0", "command": "VIGLAS_FIT_CANDIDATE=only scripts/fit_default.sh",
    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "n_iter_frames": len(it),
    "status": "candidate, not the default"}})
save_parameters(p, "viglas/potentials/data/default_candidate_e50.yaml")
PY
fi
