"""The default potential's report (viglas/potentials/data/default_report.json, written
by scripts/default_report.py) describes the shipped file and states its criteria
consistently (issue 12, item 5)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from viglas.potentials.delta import SHIPPED_DELTA

DATA = Path(__file__).resolve().parents[1] / "viglas" / "potentials" / "data"
def _strict(c):  # NaN or Infinity is not JSON: other readers refuse the file
    raise ValueError(f"default_report.json holds {c}")


REPORT = json.loads((DATA / "default_report.json").read_text(), parse_constant=_strict)


def test_report_is_of_the_shipped_default_file():
    assert SHIPPED_DELTA["default"] == SHIPPED_DELTA["dft-delta"]
    pot = REPORT["potential"]
    assert pot["name"] == "dft-delta"
    digest = hashlib.sha256(SHIPPED_DELTA["dft-delta"].read_bytes()).hexdigest()
    assert pot["sha256"] == digest, "dft_delta.json changed: rerun scripts/default_report.py"
    fit = json.loads(SHIPPED_DELTA["dft-delta"].read_text())["delta"]["meta"]["fit"]
    assert pot["n_coefficients"] == fit["n_coefficients"]
    assert pot["n_train_frames"] == len(fit["train_labels"])


def test_criteria_verdicts_follow_from_the_numbers():
    crit = REPORT["criteria"]
    assert {c["item"] for c in crit} == {3, 4}
    for c in crit:
        v, t = c["value"], c["threshold"]
        if t.startswith(">="):
            assert c["met"] == (v is not None and v >= float(t.split()[1])), c
        elif t.startswith("within +-"):
            lim = float(t.split("+-")[1].split()[0])
            ok = v is not None and abs(v) <= lim and c.get("same_structure", True)
            assert c["met"] == bool(ok), c
        else:
            assert c["met"] == (not c["failed"]), c
    assert REPORT["all_criteria_met"] == all(c["met"] for c in crit)
    # the loop: every own glass counts (the verdict rests on the one furthest from 0)
    loop = [c for c in crit if c["what"].startswith("PBE-D3 pressure")]
    assert len(loop) == 2
    cells = REPORT["loop_0GPa"]["cells"]
    for c in loop:
        comp = c["what"].split("300 K ")[1].split(" glasses")[0]
        glasses = {x["glass"] for x in cells if x["composition"] == comp}
        # one value per glass: the mean of PBE-D3 minus the model over its snapshots
        ps = [round(sum(x["pressure_error_GPa"] for x in cells if x["glass"] == g)
                    / sum(1 for x in cells if x["glass"] == g), 2) for g in glasses]
        assert len(c["all_values"]) == len(glasses) >= 2
        assert sorted(c["all_values"]) == pytest.approx(sorted(ps), abs=0.011)
        assert c["value"] == max(c["all_values"], key=abs)
    assert all("npt300" in x["label"] for x in cells)  # glasses, not crystal snapshots
    assert all(x["pressure_error_GPa"] == pytest.approx(
        x["dft_pressure_GPa"] - x["model_pressure_GPa"], abs=0.011) for x in cells)
    # the six required compositions each have a held-out force score
    forces = [c for c in crit if c["what"].startswith("held-out force R2")]
    assert len(forces) == 6 and all(c["n_frames"] >= 1 for c in forces)


def test_held_out_scores_cover_the_reference_models_on_the_same_frames():
    held = REPORT["held_out"]
    assert held["n_frames"] == len(held["labels"]) > 0
    sets = held["sets"]
    assert {"dft-delta", "chgnet-ionic"} <= set(sets)
    n = {s["all"]["n_frames"] for s in sets.values()}
    assert n == {held["n_frames"]}
    own = REPORT["own_glasses_not_trained_on"]
    fit = json.loads(SHIPPED_DELTA["dft-delta"].read_text())["delta"]["meta"]["fit"]
    assert own["labels"] and not set(own["labels"]) & set(fit["train_labels"])


def test_crystals_are_also_compared_with_pbe_d3s_own_relaxed_cells():
    """PBE-D3's own relaxed crystals (dft_relax.py run ... --cell) stay in the prototype's
    structure, and the default's relaxed crystal is compared with them by the same
    density arithmetic as with the prototype."""
    ref = REPORT["reference_crystals_pbe_d3"]
    assert set(ref) == {"LiAlCl4", "NaAlCl4"}
    for name, r in ref.items():
        assert r["same_structure"] and r["fmax_eV_A"] <= 0.03
        rel = REPORT["crystals"][name]["relaxed"]["density_g_cm3"]
        assert r["dft_delta_relaxed_vs_reference_pct"] == pytest.approx(
            100 * (rel / r["density_g_cm3"] - 1), abs=0.011)
        proto = REPORT["crystals"][name]["prototype_density_g_cm3"]
        assert r["density_change_pct"] == pytest.approx(
            100 * (r["density_g_cm3"] / proto - 1), abs=0.011)
