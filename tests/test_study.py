"""``viglas study``: run a (tiny) study, publish it, republish keeping the hand-written
README text, refuse incomplete runs and unknown names."""

from __future__ import annotations

import json

import pytest
import yaml

from viglas.errors import ConfigError, ExportError
from viglas.workflows import study as study_mod

TINY = {"kind": "screening", "name": "tiny-study", "seed": 3,
        "screening": {"compositions": ["LiAlCl2.5O0.75", "NaAlCl2.5O0.75"]},
        "structure": {"n_atoms": 42},
        "melt_quench": {"t_melt_K": 1000, "hold_ps": 0.5, "t_final_K": 600,
                        "cool_rate_K_ps": 400, "timestep_fs": 2.0},
        "production": {"temperatures_K": [600, 800], "replicas": 1, "duration_ps": 1,
                       "equilibration_ps": 0.2, "timestep_fs": 2.0, "save_every_fs": 20},
        "analysis": {"plots": True, "vft": False}}


def _tiny_study():
    return study_mod.Study("tiny", "a tiny screening", ("configs/tiny-study.yaml",),
                           study_mod._summary_screen, study_mod._plots_screen)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    (root / "configs").mkdir()
    (root / "configs" / "tiny-study.yaml").write_text(yaml.safe_dump(TINY))
    mp = pytest.MonkeyPatch()
    mp.setitem(study_mod.STUDIES, "tiny", _tiny_study())
    try:
        results = study_mod.run_study("tiny", runs_dir=root / "runs", jobs=1,
                                      progress=False, root=root)
    finally:
        mp.undo()
    return root, results


@pytest.fixture
def tiny_study(tiny_run, monkeypatch):
    """The finished tiny run, with the study registered for this test only."""
    monkeypatch.setitem(study_mod.STUDIES, "tiny", _tiny_study())
    return tiny_run


def test_run_records_each_invocation_and_publish_writes_a_valid_document(tiny_study):
    from viglas.analysis.results_schema import validate_study

    root, results = tiny_study
    assert results[0]["status"]["complete"], results[0]["status"]
    inv = json.loads((root / "runs" / "tiny-study" / study_mod.INVOCATIONS_FILE).read_text())
    assert len(inv) == 1 and inv[0]["wall_s"] > 0 and inv[0]["jobs"] == 1
    dest = study_mod.publish_study("tiny", runs_dir=root / "runs", out_dir=root / "pub",
                                   root=root)
    doc = json.loads((dest / "results.json").read_text())
    validate_study(doc)
    assert doc["schema"] == "viglas-study/1" and doc["study"] == "tiny"
    assert doc["command"] == "viglas study tiny"
    assert doc["wall_time_s"] == pytest.approx(inv[0]["wall_s"])
    assert doc["runs"][0]["results"]["schema"] == "viglas-results/1"
    assert doc["provenance"]["versions"]["viglas"] == doc["viglas_version"]
    # the key table: both compositions ranked by sigma(303 K), ranks 1, 2
    rows = doc["summary"]["rows"]
    assert [r["rank"] for r in rows] == [1, 2]
    assert {r["formula"] for r in rows} == {"LiAlCl2.5O0.75", "NaAlCl2.5O0.75"}
    # 1 ps runs rarely reach a diffusive regime: a sigma(303 K) is there only if some
    # temperature was diffusive (ordering: test_screen_summary_ranks_by_sigma303)
    s303 = [r["sigma_303K_mS_cm"] for r in rows]
    assert s303[1] is None or s303[0] >= s303[1] > 0
    for c in doc["runs"][0]["results"]["compositions"]:
        assert c["sigma_303K_mS_cm"] is not None or c["fits"]["bounds"]
    # files: the run's CSV tables, summary.csv, plots, README with the generated block
    for f in ("compositions.csv", "temperatures.csv", "runs.csv", "summary.csv", "README.md"):
        assert (dest / f).is_file(), f
    assert doc["files"]["plots"] and all((dest / p).is_file() for p in doc["files"]["plots"])
    readme = (dest / "README.md").read_text()
    assert study_mod.GENERATED_START in readme and "viglas study tiny" in readme
    assert "| rank | formula |" in readme
    # the Pareto columns and plots (two compositions: the faster one is always on the front)
    assert rows[0]["pareto_ea"] is True or rows[0]["ea_eV"] is None
    for name in ("pareto_sigma303_vs_ea.png", "pareto_sigma303_vs_tg.png"):
        assert f"plots/{name}" in doc["files"]["plots"] and (dest / "plots" / name).is_file()


def test_republish_keeps_hand_written_text_and_adds_invocations(tiny_study):
    root, _ = tiny_study
    dest = study_mod.publish_study("tiny", runs_dir=root / "runs", out_dir=root / "pub2",
                                   root=root)
    readme = dest / "README.md"
    text = readme.read_text().replace("(write here: this text is kept when the study is "
                                      "republished)", "Our discussion of the numbers.")
    readme.write_text("Intro kept.\n" + text)
    # a second invocation (everything finished: resumes, skips, records its time)
    study_mod.run_study("tiny", runs_dir=root / "runs", jobs=1, progress=False, root=root)
    study_mod.publish_study("tiny", runs_dir=root / "runs", out_dir=root / "pub2", root=root)
    new = readme.read_text()
    assert new.startswith("Intro kept.") and "Our discussion of the numbers." in new
    assert new.count(study_mod.GENERATED_START) == 1
    doc = json.loads((dest / "results.json").read_text())
    assert len(doc["invocations"]) >= 2
    assert doc["wall_time_s"] == pytest.approx(sum(i["wall_s"] for i in doc["invocations"]))


def test_incomplete_run_is_not_published(tiny_study, tmp_path):
    root, _ = tiny_study
    runs = tmp_path / "runs"
    (runs / "tiny-study").mkdir(parents=True)
    res = json.loads((root / "runs" / "tiny-study" / "results.json").read_text())
    res["status"]["complete"] = False
    (runs / "tiny-study" / "results.json").write_text(json.dumps(res))
    with pytest.raises(ConfigError, match="not complete") as exc:
        study_mod.publish_study("tiny", runs_dir=runs, out_dir=tmp_path / "pub", root=root)
    assert "viglas study tiny" in exc.value.one_line()
    assert not (tmp_path / "pub" / "tiny" / "results.json").exists()


def test_broken_document_is_refused_before_writing(tiny_study, tmp_path, monkeypatch):
    root, _ = tiny_study

    def bad_summary(runs):
        return {"columns": ["formula"], "rows": [{"formula": "x", "not_a_column": 1}],
                "notes": []}

    monkeypatch.setitem(study_mod.STUDIES, "tiny", study_mod.Study(
        "tiny", "t", ("configs/tiny-study.yaml",), bad_summary))
    with pytest.raises(ExportError):
        study_mod.publish_study("tiny", runs_dir=root / "runs", out_dir=tmp_path / "pub",
                                root=root)
    assert not (tmp_path / "pub" / "tiny" / "results.json").exists()


def test_unknown_study_names_the_field_and_the_choices():
    with pytest.raises(ConfigError) as exc:
        study_mod.run_study("nope")
    line = exc.value.one_line()
    assert "study" in line and "laco-naco" in line and "finite-size" in line


def test_every_registered_study_config_exists_and_validates():
    from viglas.config import load_config

    root = study_mod._repo_root()
    for s in study_mod.STUDIES.values():
        for rel in s.configs:
            cfg = load_config(root / rel)
            assert cfg.name == (root / rel).stem, rel  # run dir runs/<stem> = config name


def test_screen_summary_ranks_by_sigma303():
    """The screen's key table: ranked by sigma(303 K), compositions without one last,
    and the Pareto columns only on rows with both values."""
    comps = [{"formula": f, "alkali": {"Li": 1.0}, "former": {m: 1.0},
              "sigma_303K_mS_cm": s, "ea_eV": ea, "tg_K": None}
             for f, m, s, ea in (("LiBCl2.5O0.75", "B", None, None),
                                 ("LiAlCl2.5O0.75", "Al", 2.0, 0.30),
                                 ("LiGaCl2.5O0.75", "Ga", 5.0, 0.35),
                                 ("LiInCl2.5O0.75", "In", 1.0, 0.40))]
    comps[1]["fits"] = {"bounds": [{"t_K": 300.0, "d_estimate": "upper", "d_cm2_s": 1e-6,
                                    "fit_d_cm2_s": 3e-6, "fit_d_err_cm2_s": 1e-6,
                                    "contradicts": True}]}
    comps[2]["fits"] = {"bounds": [{"t_K": 300.0, "d_estimate": "upper", "d_cm2_s": 1e-6,
                                    "fit_d_cm2_s": 5e-7, "fit_d_err_cm2_s": 1e-7,
                                    "contradicts": False}]}
    out = study_mod._summary_screen([{"results": {"compositions": comps}}])
    rows = out["rows"]
    bound_notes = [n for n in out["notes"] if "estimate at" in n]
    assert bound_notes == ["LiAlCl2.5O0.75: the D fit lies above the upper estimate at 300 K "
                           "(3e-06 ± 1e-06 against 1e-06 cm2/s), so its sigma(300 K) is too "
                           "high"]
    assert [r["formula"][:4] for r in rows] == ["LiGa", "LiAl", "LiIn", "LiBC"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert [r["pareto_ea"] for r in rows] == [True, True, False, None]
    assert "LiGaCl2.5O0.75, LiAlCl2.5O0.75" in out["notes"][0]


def test_sweep_summary_notes_peak_bounds_and_a_failed_percolation_fit():
    comps = [{"formula": f"LiAlCl{4 - 2 * x:g}O{x:g}", "x": x, "oxygen_fraction": p,
              "sigma_300K_mS_cm": s, "sigma_300K_err_mS_cm": 1.0, "structure": {},
              "fits": {"bounds": []}} for x, p, s in ((0.0, 0.0, 5.0), (0.75, 0.23, 9.0))]
    err = "sigma: not enough points above threshold (got 2; allowed: >= 4 compositions)"
    out = study_mod._summary_sweep([{"results": {"compositions": comps,
                                                 "percolation": {"error": err}}}])
    assert out["notes"][0].startswith("sigma(300 K) peaks at x = 0.75")
    assert out["notes"][-1] == "percolation fit: not possible: " + err


def test_pareto_mask():
    from viglas.analysis.summary import pareto_mask

    # (sigma: higher better, Ea: lower better)
    v = [[10, 0.3], [5, 0.2], [4, 0.25], [10, 0.35], [1, 0.1]]
    assert pareto_mask(v, [True, False]) == [True, True, False, False, True]
    assert pareto_mask([[1, 1], [1, 1]], [True, True]) == [True, True]  # ties: both kept
    with pytest.raises(ValueError):
        pareto_mask([[1, 2, 3]], [True, False])


def test_finite_size_summary_ratio_and_error(tmp_path):
    def res(n, d, e):
        return {"results": {"compositions": [{
            "n_atoms": n, "ea_eV": 0.2, "ea_err_eV": 0.01, "sigma_300K_mS_cm": 1.0,
            "sigma_300K_err_mS_cm": 0.1, "density_g_cm3": 2.0,
            "temperatures": [{"t_K": 500.0, "d_cm2_s": d, "d_err_cm2_s": e}]}]}}

    s = study_mod._summary_finite_size([res(210, 1e-5, 1e-6), res(1008, 1.2e-5, 1e-6)])
    row = s["rows"][0]
    assert row["ratio_large_small"] == pytest.approx(1.2)
    assert row["ratio_large_small_err"] == pytest.approx(1.2 * ((0.1) ** 2 + (1 / 12) ** 2) ** 0.5)
    assert row["difference_in_sd"] == pytest.approx(2e-6 / (2e-12) ** 0.5)
    (tmp_path / "plots").mkdir()
    out = study_mod._plots_finite_size([res(210, 1e-5, 1e-6), res(1008, 1.2e-5, 1e-6)], s,
                                       tmp_path)
    assert out == ["plots/d_vs_cell_size.png"] and (tmp_path / out[0]).stat().st_size > 1000
    # a temperature where one size has only a bound (no diffusive regime) is no ratio
    bound = res(1008, 1.2e-5, 1e-6)
    bound["results"]["compositions"][0]["temperatures"][0]["d_estimate"] = "upper"
    s = study_mod._summary_finite_size([res(210, 1e-5, 1e-6), bound])
    assert s["rows"] == [] and any("left out" in n and "500 K" in n for n in s["notes"])


def test_markdown_key_table_pairs_values_with_their_errors():
    s = {"columns": ["formula", "ea_eV", "ea_err_eV", "tg_K", "ratio_large_small",
                     "ratio_large_small_err", "complete"],
         "rows": [{"formula": "A", "ea_eV": 0.19891, "ea_err_eV": 0.0075, "tg_K": None,
                   "ratio_large_small": 1.2, "ratio_large_small_err": None,
                   "complete": True}]}
    head, rule, row = study_mod._markdown_table(s).splitlines()
    assert head == "| formula | ea_eV | tg_K | ratio_large_small | complete |"
    assert row == "| A | 0.199 ± 0.0075 | - | 1.2 | True |"
