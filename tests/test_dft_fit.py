"""Scoring and refitting against DFT-style labels (no DFT run: labels made here)."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.errors import FitError
from viglas.potentials.dft import DFTLabelStore, DFTResult
from viglas.potentials.dft_fit import (EV_A3_TO_GPA, ionic_predictor, load_dataset,
                                       score, split)
from viglas.potentials.dft_sampling import (ROUND0_ORDER, ROUND0_RECIPES, ROUND0_VALID,
                                            crystal_frames, read_frames, write_frames)


def _labelled(frames, params=None):
    pred = ionic_predictor(params)(frames)
    out = []
    for a, p in zip(frames, pred):
        b = a.copy()
        from ase.calculators.singlepoint import SinglePointCalculator

        b.calc = SinglePointCalculator(b, energy=p["energy"], forces=p["forces"],
                                       stress=p["stress"])
        out.append(b)
    return out


def test_crystal_plan_and_round_trip(tmp_path):
    fr = crystal_frames()
    assert len(fr) == 8 and {a.info["composition"] for a in fr} == {"LiAlCl4", "NaAlCl4"}
    vols = {a.info["label"]: a.get_volume() for a in fr}
    v0 = vols["r0/LiAlCl4/crystal/v1.00"]
    assert vols["r0/LiAlCl4/crystal_strain/v0.97"] == pytest.approx(0.97 * v0)
    assert vols["r0/LiAlCl4/crystal_strain/v1.03"] == pytest.approx(1.03 * v0)
    p = write_frames(fr[::-1], tmp_path / "plan.extxyz.gz")
    back = read_frames(p)
    assert [a.info["label"] for a in back] == [a.info["label"] for a in fr]  # by priority
    np.testing.assert_allclose(back[3].positions, fr[3].positions, atol=1e-8)
    # held-out recipe is labelled early and is the only 'valid' recipe
    assert ROUND0_ORDER.index(ROUND0_VALID) <= 2 and sorted(ROUND0_ORDER) == list(
        range(len(ROUND0_RECIPES)))


def test_score_is_exact_for_the_labelling_model_and_sees_errors():
    fr = crystal_frames()
    lab = _labelled(fr)
    s = score(lab, ionic_predictor(None))
    assert s["all"]["force_r2"] == pytest.approx(1.0)
    assert s["all"]["force_rmse_eV_A"] == pytest.approx(0.0, abs=1e-9)
    assert s["all"]["energy_diff_rmse_meV_atom"] == pytest.approx(0.0, abs=1e-9)
    assert set(s["by_composition"]) == {"LiAlCl4", "NaAlCl4"}

    # a constant energy offset per composition is not an error (no atomic references),
    # a uniform extra pressure of 1 GPa is a +1 GPa pressure bias
    def shifted(frames):
        out = ionic_predictor(None)(frames)
        for a, o in zip(frames, out):
            o["energy"] += 5.0 * len(a) if a.info["composition"] == "LiAlCl4" else -2.0
            o["stress"] = o["stress"] - np.array([1, 1, 1, 0, 0, 0]) / EV_A3_TO_GPA
        return out

    s2 = score(lab, shifted)
    assert s2["all"]["energy_diff_rmse_meV_atom"] == pytest.approx(0.0, abs=1e-6)
    assert s2["all"]["pressure_bias_GPa"] == pytest.approx(1.0)
    # another parameter set predicts worse forces than the labelling set
    s3 = score(lab, ionic_predictor("trial"))
    assert s3["all"]["force_rmse_eV_A"] > 0.05 and s3["all"]["force_r2"] < 0.99


def test_stacked_predictor_adds_its_parts():
    from ase.calculators.lj import LennardJones

    from viglas.potentials.dft_fit import ase_predictor, stacked_predictor

    fr = crystal_frames()[:2]
    ion, lj = ionic_predictor(None), ase_predictor(LennardJones(sigma=2.0, epsilon=0.01, rc=5.0))
    a, b, ab = ion(fr), lj(fr), stacked_predictor(ion, lj)(fr)
    for x, y, z in zip(a, b, ab):
        assert z["energy"] == pytest.approx(x["energy"] + y["energy"])
        assert np.allclose(z["forces"], x["forces"] + y["forces"])
        assert np.allclose(z["stress"], x["stress"] + y["stress"])
        assert abs(y["energy"]) > 1e-3 and np.abs(y["forces"]).max() > 1e-4  # LJ is not zero
    assert stacked_predictor(ion)(fr)[0]["energy"] == pytest.approx(a[0]["energy"])
    with pytest.raises(FitError, match="at least one"):
        stacked_predictor()


def test_load_dataset_reads_the_store_and_splits(tmp_path):
    with pytest.raises(FitError, match="no DFT labels"):
        load_dataset(tmp_path)
    fr = crystal_frames()
    store = DFTLabelStore(tmp_path / "labels", None, versions={"gpaw": "test"})
    for a, lab in zip(fr, _labelled(fr)):
        r = lab.calc.results
        store.put(a, DFTResult(energy=r["energy"], forces=r["forces"], stress=r["stress"],
                               cpu_s=0.0, kpts=store.mesh(a)))
    data = load_dataset(tmp_path)
    assert [a.info["label"] for a in data] == [a.info["label"] for a in fr]
    train, valid = split(data)
    assert len(valid) == 2 and all(a.info["kind"] == "crystal_rattle" for a in valid)
    assert len(train) == 6


def test_fit_script_refuses_out_for_a_delta_fit(tmp_path):
    """`--out` names the rigid-ion file; a delta fit given only `--out` used to write the
    shipped dft_delta.json (the --delta-out default) instead. It is now refused before
    any work, naming the right flag, and the shipped file is left alone."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shipped = root / "viglas/potentials/data/dft_delta.json"
    before = shipped.read_bytes() if shipped.exists() else None
    proc = subprocess.run([sys.executable, str(root / "scripts/fit_dft.py"), "--form", "delta",
                           "--out", str(tmp_path / "f.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "--delta-out" in proc.stderr and "--out" in proc.stderr
    assert (shipped.read_bytes() if shipped.exists() else None) == before
    assert not (tmp_path / "f.json").exists()


def test_fit_script_refuses_bad_charge_pairs_before_any_work(tmp_path):
    """`--delta-charges` takes SCALE:ALKALI pairs; a malformed one is refused at once,
    naming the flag and the format, and no model file is written."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for bad in ("0.55", "0.55:x", ","):
        proc = subprocess.run([sys.executable, str(root / "scripts/fit_dft.py"), "--form",
                               "delta", "--delta-charges", bad, "--delta-out",
                               str(tmp_path / "d.json")], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode != 0
        assert "--delta-charges" in proc.stderr and "SCALE:ALKALI" in proc.stderr
        assert "DFT frames" not in proc.stdout  # refused before loading the labels
    assert not (tmp_path / "d.json").exists()


def test_relaxation_script_counts_former_coordination():
    """scripts/dft_relax.py compares Al coordination before/after a DFT relaxation: on a
    Cl3Al-O-AlCl3 unit it must find two 4-coordinated Al, one bridging O, three Cl per Al
    and the bond lengths it was built with; moving a Cl out of the shell must show."""
    import importlib.util
    from pathlib import Path

    from ase import Atoms

    path = Path(__file__).resolve().parents[1] / "scripts" / "dft_relax.py"
    spec = importlib.util.spec_from_file_location("dft_relax", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    c = np.array([7.5, 7.5, 7.5])
    pos, sym = [c], ["O"]
    for sgn in (-1, 1):
        al = c + [sgn * 1.75, 0, 0]
        pos.append(al)
        sym.append("Al")
        for k in range(3):  # three Cl on the far side of each Al, 109.5 deg from the O
            phi = 2 * np.pi * k / 3
            u = np.array([sgn * 1 / 3, np.sqrt(8) / 3 * np.cos(phi), np.sqrt(8) / 3 * np.sin(phi)])
            pos.append(al + 2.13 * u)
            sym.append("Cl")
    a = Atoms(sym, positions=pos, cell=[15, 15, 15], pbc=True)
    s = mod._structure(a)
    assert s["al_coordination_mean"] == 4.0 and s["al_coordination_fraction"] == {"4": 1.0}
    assert s["al_o_per_al"] == 1.0 and s["al_cl_per_al"] == 3.0
    assert s["al_o_bond_A"] == pytest.approx(1.75, abs=1e-3)
    assert s["al_cl_bond_A"] == pytest.approx(2.13, abs=1e-3)
    assert s["o_by_al_neighbours_fraction"] == {"2": 1.0}
    a.positions[2] += 2.0 * (a.positions[2] - a.positions[1]) / 2.13  # one Cl leaves
    s = mod._structure(a)
    assert s["al_coordination_mean"] == 3.5
    assert s["al_coordination_fraction"] == {"3": 0.5, "4": 0.5}


def test_split_overrides_move_listed_labels_and_refuse_unknown_splits(tmp_path):
    """A failed loop's glasses are planned as held-out frames; the overrides file moves
    exactly the listed labels to training (the rest keep their plan split), and a
    split other than train/valid is refused by field name."""
    import json

    from ase import Atoms

    from viglas.errors import FitError
    from viglas.potentials.dft_fit import split, split_overrides

    frames = []
    for k, sp in enumerate(["train", "valid", "valid", None]):
        a = Atoms("H", positions=[[0, 0, 0]])
        a.info["label"] = f"r{k}/x"
        if sp:
            a.info["split"] = sp
        frames.append(a)
    p = tmp_path / "ov.json"
    p.write_text(json.dumps({"labels": {"r2/x": {"split": "train", "reason": "failed loop"}}}))
    ov = split_overrides(p)
    assert ov == {"r2/x": "train"}
    tr, va = split(frames, ov)
    assert [a.info["label"] for a in tr] == ["r0/x", "r2/x", "r3/x"]
    assert [a.info["label"] for a in va] == ["r1/x"]
    assert split(frames, {})[1] == frames[1:3]  # no overrides: the plan split
    assert split_overrides(tmp_path / "none.json") == {}
    p.write_text(json.dumps({"labels": {"r2/x": {"split": "test"}}}))
    with pytest.raises(FitError) as err:
        split_overrides(p)
    assert err.value.field == "split"


def test_compare_fits_scores_every_fit_on_one_frame_set(tmp_path):
    """scripts/compare_fits.py: the same file under two names scores identically, the
    excluded rounds leave the frame set, and a malformed argument is refused by name."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "compare_fits.py"
    spec = importlib.util.spec_from_file_location("compare_fits", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "c.json"
    mod.main(["A=dft-delta", "B=dft-delta", "--exclude-rounds", "12,13", "--json", str(out)])
    d = json.loads(out.read_text())
    assert d["fits"]["A"] == {**d["fits"]["B"], "file": "dft-delta"}
    assert d["n_frames"] == len(d["labels"]) > 0
    assert not [lab for lab in d["labels"] if lab.startswith(("r12/", "r13/"))]
    assert 0.5 < d["fits"]["A"]["force_r2"] < 1.0
    mod.main(["plain=chgnet-ionic", "--exclude-rounds", "12,13", "--json", str(out)])
    assert json.loads(out.read_text())["fits"]["plain"]["force_r2"] < d["fits"]["A"]["force_r2"]
    with pytest.raises(SystemExit, match="NAME=FILE"):
        mod.main(["dft-delta"])
    with pytest.raises(SystemExit, match="exclude-rounds"):
        mod.main(["A=dft-delta", "--exclude-rounds", "x"])


def test_loop_pressure_of_a_glass_is_dft_minus_model_over_its_snapshots():
    """Closing the loop (issue 12): a glass the model holds at 0 GPa has PBE-D3 pressure
    <P_dft - P_model> over its snapshots; the snapshots' own instantaneous pressure and
    the kinetic part cancel, an offset between DFT and the model does not."""
    from viglas.potentials.dft_fit import loop_cells, loop_glasses
    from viglas.potentials.ionic import IonicPotential

    fr = [a for a in crystal_frames() if a.info["composition"] == "LiAlCl4"][:4]
    offsets = [0.4, 0.6, 0.5, -0.3]  # GPa: three snapshots of glass A, one of glass B
    names = ["r9/X/npt300_0GPa/s1", "r9/X/npt300_0GPa/s1/1", "r9/X/npt300_0GPa/s1/2",
             "r9/X/npt300_0GPa/s2"]
    lab = _labelled(fr)
    for a, off, name in zip(lab, offsets, names):
        a.calc.results["stress"] = a.calc.results["stress"] - np.array(
            [1, 1, 1, 0, 0, 0]) * off / EV_A3_TO_GPA
        a.info.update(label=name, sampler="ionic:m.json@0GPa", kind="glass", t_K=300.0)
    lab.append(lab[0].copy())  # another sampler's cell is not in this loop
    lab[-1].calc = lab[0].calc
    lab[-1].info.update(sampler="ionic:other.json@0GPa")
    cells = loop_cells(lab, "m.json", IonicPotential(None))
    assert [c["glass"] for c in cells] == ["r9/X/npt300_0GPa/s1"] * 3 + ["r9/X/npt300_0GPa/s2"]
    for c, off in zip(cells, offsets):
        assert c["pressure_error_GPa"] == pytest.approx(off, abs=0.006)
        assert c["kinetic_pressure_GPa"] > 0
    g = {x["glass"]: x for x in loop_glasses(cells)}
    a, b = g["r9/X/npt300_0GPa/s1"], g["r9/X/npt300_0GPa/s2"]
    assert a["n_snapshots"] == 3 and a["pressure_GPa"] == pytest.approx(0.5, abs=0.006)
    assert a["pressure_se_GPa"] == pytest.approx(0.1 / np.sqrt(3), abs=0.006)
    assert b["pressure_GPa"] == pytest.approx(-0.3, abs=0.006) and b["pressure_se_GPa"] is None
    # the direct estimate keeps each snapshot's own pressure (here the crystals' strain)
    assert a["direct_GPa"] != pytest.approx(a["pressure_GPa"], abs=0.05)
    # without the sampler's calculator only the direct estimate exists
    assert "pressure_GPa" not in loop_glasses(loop_cells(lab, "m.json"))[0]
