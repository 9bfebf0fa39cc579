"""The JSON Schemas of results.json (viglas-results/1) and of a published study
(viglas-study/1): a real results.json of a tiny run validates, corrupted copies are
refused with an ExportError that names the field, and the published studies under
docs/results/ validate."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from viglas.analysis.results_schema import (RESULTS_SCHEMA, RESULTS_SCHEMA_ID, STUDY_SCHEMA,
                                            STUDY_SCHEMA_ID, load_results_schema,
                                            load_study_schema, validate_results, validate_study)
from viglas.errors import ExportError

REPO = Path(__file__).resolve().parent.parent
STUDIES = ("laco-naco", "sweep-oxygen", "screen-formers", "finite-size", "laco-naco-dft")


@pytest.fixture(scope="module")
def results_doc(tmp_path_factory):
    """results.json of a real tiny run (42 atoms, 3 temperatures x 1 ps, ionic potential;
    a few seconds of CPU)."""
    from test_run_trust import FAST

    from viglas.config import parse_config
    from viglas.workflows.run import run_local

    wd = tmp_path_factory.mktemp("schema") / "w"
    run_local(parse_config(FAST), wd, progress=False, workers=1)
    return json.loads((wd / "results.json").read_text())


def _study(results: dict) -> dict:
    return {
        "schema": "viglas-study/1", "study": "laco-naco", "title": "LACO vs NACO",
        "command": "viglas study laco-naco", "configs": ["configs/study-laco-naco.yaml"],
        "viglas_version": "0.1.0", "git_commit": "a" * 40,
        "potential": {"name": "ionic", "params": {"parameters": "trial"}},
        "machine": {"cpu_count": 2, "platform": "Linux-6.1-x86_64", "jobs": 2},
        "wall_time_s": 1234.5,
        "invocations": [{"config": "configs/study-laco-naco.yaml",
                         "started": "2026-12-06T03:40:00+00:00", "wall_s": 600.0, "jobs": 2}],
        "published": "2026-12-06T05:00:00+00:00",
        "provenance": copy.deepcopy(results["provenance"]),
        "runs": [{"config": "configs/study-laco-naco.yaml", "name": "study-laco-naco",
                  "results": copy.deepcopy(results)}],
        "summary": {"columns": ["formula", "ea_eV", "sigma_300K_mS_cm"],
                    "rows": [{"formula": c["formula"], "ea_eV": c["ea_eV"],
                              "sigma_300K_mS_cm": c["sigma_300K_mS_cm"]}
                             for c in results["compositions"]],
                    "notes": ["uncertainties are one standard deviation"]},
    }


def _refused(validate, doc, field: str, schema: str) -> ExportError:
    with pytest.raises(ExportError) as info:
        validate(doc)
    err = info.value
    assert err.field == field, (err.field, str(err))
    assert schema in err.message and field in str(err)
    assert "error(s) in all" in (err.hint or "")
    return err


def test_schemas_load_and_are_valid_draft_2020_12():
    import jsonschema

    results, study = load_results_schema(), load_study_schema()
    for schema in (results, study):
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert results["$id"] == RESULTS_SCHEMA_ID and study["$id"] == STUDY_SCHEMA_ID
    assert results["properties"]["schema"]["const"] == RESULTS_SCHEMA
    assert study["properties"]["schema"]["const"] == STUDY_SCHEMA
    assert study["properties"]["runs"]["items"]["properties"]["results"]["$ref"] == RESULTS_SCHEMA_ID
    assert set(results["required"]) == {"schema", "provenance", "config", "compositions",
                                        "percolation", "structural_percolation", "ranking",
                                        "plots", "status"}

    def described(node, path=""):  # every typed property says its unit / meaning
        if isinstance(node, dict):
            for k, v in (node.get("properties") or {}).items():
                assert "description" in v, f"{path}/{k}"
            for k, v in node.items():
                described(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                described(v, f"{path}/{i}")

    described(results)
    described(study)


def test_real_results_json_validates(results_doc):
    assert results_doc["schema"] == RESULTS_SCHEMA
    validate_results(results_doc)
    # a partial composition (no build, no fits yet) and series fields filled in also pass
    doc = copy.deepcopy(results_doc)
    c = doc["compositions"][0]
    c.update(n_atoms=None, ea_eV=None, ea_err_eV=None, sigma_300K_mS_cm=None, complete=False,
             sigma_303K_mS_cm=None, sigma_303K_source=None, tg_K=None, haven_ratio=None,
             transference_number=None)
    c["fits"] = {k: None for k in ("d_arrhenius", "sigma_arrhenius", "d_vft", "sigma_vft",
                                   "preferred_model")}
    doc["percolation"] = {"p_c": 0.12, "p_c_err": 0.02, "t": 1.8, "t_err": 0.3}
    doc["ranking"] = [{"rank": 1, "formula": c["formula"], "sigma_300K_mS_cm": 0.1,
                       "sigma_300K_err_mS_cm": 0.01, "ea_eV": 0.3, "ea_err_eV": 0.02,
                       "tg_K": None, "tg_err_K": None}]
    doc["status"]["jobs_total"] = None
    doc["status"]["failed"] = [{"uuid": "u", "error": "MD: NaN"}]
    doc["provenance"]["git"] = None  # not a git checkout
    validate_results(doc)
    doc["percolation"] = {"error": "too few points"}
    validate_results(doc)


def test_corrupt_results_are_refused(results_doc):
    doc = copy.deepcopy(results_doc)
    del doc["provenance"]["created_utc"]
    _refused(validate_results, doc, "provenance/created_utc", RESULTS_SCHEMA)

    doc = copy.deepcopy(results_doc)
    del doc["provenance"]["versions"]
    _refused(validate_results, doc, "provenance/versions", RESULTS_SCHEMA)

    doc = copy.deepcopy(results_doc)
    doc["compositions"][0]["ea_eV"] = "0.3"
    _refused(validate_results, doc, "compositions/0/ea_eV", RESULTS_SCHEMA)

    doc = copy.deepcopy(results_doc)
    doc["compositions"][0]["temperatures"][1]["d_err_cm2_s"] = -1e-6
    _refused(validate_results, doc, "compositions/0/temperatures/1/d_err_cm2_s", RESULTS_SCHEMA)

    doc = copy.deepcopy(results_doc)
    doc["compositions"][0]["ea_err_eV"] = -0.01
    _refused(validate_results, doc, "compositions/0/ea_err_eV", RESULTS_SCHEMA)

    doc = copy.deepcopy(results_doc)
    doc["schema"] = "viglas-results/2"
    _refused(validate_results, doc, "schema", RESULTS_SCHEMA)

    doc = copy.deepcopy(results_doc)
    del doc["compositions"][0]["runs"][0]["seed"]
    _refused(validate_results, doc, "compositions/0/runs/0/seed", RESULTS_SCHEMA)

    doc = copy.deepcopy(results_doc)
    doc["compositions"][0]["sigma_303K_source"] = "guessed"
    _refused(validate_results, doc, "compositions/0/sigma_303K_source", RESULTS_SCHEMA)

    doc = copy.deepcopy(results_doc)
    del doc["status"]
    doc["compositions"][0]["complete"] = "yes"
    err = _refused(validate_results, doc, "status", RESULTS_SCHEMA)  # errors sorted by path
    assert err.hint == "2 error(s) in all"


def test_study_document_validates_and_corrupt_copies_are_refused(results_doc):
    study = _study(results_doc)
    validate_study(study)
    validate_study({**study, "git_commit": None})

    doc = copy.deepcopy(study)
    doc["summary"]["rows"][0]["bogus_K"] = 1.0
    err = _refused(validate_study, doc, "summary/rows/0/bogus_K", STUDY_SCHEMA)
    assert "summary.columns" in err.message

    doc = copy.deepcopy(study)
    doc["invocations"] = []
    _refused(validate_study, doc, "invocations", STUDY_SCHEMA)

    doc = copy.deepcopy(study)
    doc["wall_time_s"] = 0
    _refused(validate_study, doc, "wall_time_s", STUDY_SCHEMA)

    doc = copy.deepcopy(study)
    del doc["runs"][0]["results"]["compositions"][0]["formula"]
    _refused(validate_study, doc, "runs/0/results/compositions/0/formula", STUDY_SCHEMA)

    doc = copy.deepcopy(study)
    doc["runs"][0]["results"]["schema"] = "viglas-continuum/1"
    _refused(validate_study, doc, "runs/0/results/schema", STUDY_SCHEMA)

    doc = copy.deepcopy(study)
    del doc["provenance"]["git"]
    _refused(validate_study, doc, "provenance/git", STUDY_SCHEMA)

    doc = copy.deepcopy(study)
    doc["schema"] = "viglas-results/1"
    _refused(validate_study, doc, "schema", STUDY_SCHEMA)


@pytest.mark.parametrize("name", STUDIES)
def test_published_studies(name):
    """docs/results/<name>/ holds a results.json that validates as viglas-study/1 and a
    README.md. (Which plots were published is not checked here.)"""
    folder = REPO / "docs" / "results" / name
    assert folder.is_dir(), (f"study {name!r} is not published: folder {folder.relative_to(REPO)}/ "
                             f"is missing (run `viglas study {name}`)")
    path = folder / "results.json"
    assert path.is_file(), f"study {name!r}: {path.relative_to(REPO)} is missing"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        pytest.fail(f"study {name!r}: {path.relative_to(REPO)} is not JSON: {exc}")
    validate_study(doc)
    assert doc["study"] == name, f"{path.relative_to(REPO)}: study is {doc['study']!r}"
    prov = doc["provenance"]
    assert prov["versions"].get("viglas"), f"study {name!r}: no viglas version in provenance"
    assert "git" in prov and "git_commit" in doc and doc["viglas_version"]
    assert (folder / "README.md").is_file(), f"study {name!r}: README.md missing beside results.json"
    # every run behind the published numbers finished, and every file it lists is there
    for run in doc["runs"]:
        assert run["results"]["status"]["complete"], f"study {name!r}: {run['name']} incomplete"
        assert (REPO / run["config"]).is_file(), f"study {name!r}: config {run['config']} gone"
    for kind in ("tables", "plots"):
        for rel in doc.get("files", {}).get(kind, []):
            assert (folder / rel).is_file(), f"study {name!r}: {kind[:-1]} {rel} is missing"
    assert (folder / "summary.csv").is_file()
