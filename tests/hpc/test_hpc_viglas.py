"""A tiny viglas config through a real Slurm and a local shell worker (jobflow-remote).

Three flows are queued at once and run side by side (one runner):

* ``slurm``: ``viglas submit tests/hpc/data/tiny.yaml --worker slurm`` — MD jobs
  and analysis jobs get different Slurm resources; the numbers must equal a local
  ``viglas run`` of the same config;
* ``local``: the same config with another seed on the shell worker;
* ``failing``: another seed, with one production MD job given a calculator that does
  not exist: it ends FAILED, its error is readable (``jf job info``, ``viglas hpc
  status``, ``remote_results``), and the rest of the flow still completes.

These are the README's "Running on a cluster" steps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.hpc

TINY = Path(__file__).parent / "data" / "tiny.yaml"
BAD_CALC = "viglas_no_such_module:make_calculator"


def _config(tmp_path: Path, seed: int, name: str) -> Path:
    """tiny.yaml with another seed and a short melt-quench (these flows are not segmented)."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(seed=seed, name=name)
    cfg["melt_quench"].update(hold_ps=0.1, cool_rate_K_ps=5000)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def flows(jf_project, cluster, cli, tmp_path_factory):
    """Queue the three flows, wait for all; return their ids, statuses and timings."""
    from viglas.config import load_config
    from viglas.workflows.flows import build_flow
    from viglas.workflows.makers import ProductionMDMaker
    from viglas.workflows.submit import submit_config, submit_flow, wait_for_flow

    tmp = tmp_path_factory.mktemp("hpc-viglas")
    t0 = time.monotonic()
    # 1) through the CLI, exactly as the README says
    r = cli.viglas("submit", str(TINY), "--worker", "slurm", "--project", jf_project, "--json")
    slurm = json.loads(r.stdout.strip().splitlines()[-1])
    # 2) the API, shell worker
    local = submit_config(_config(tmp, 8, "hpc-tiny-local"), worker="local", project=jf_project)
    # 3) a flow with one broken MD job (bad calculator name inside the flow)
    bad_cfg = load_config(_config(tmp, 9, "hpc-tiny-failing"))
    flow = build_flow(bad_cfg)
    flow.update_maker_kwargs({"calculator": {"name": BAD_CALC, "params": {}}},
                             name_filter="900K", class_filter=ProductionMDMaker)
    failing = submit_flow(flow, worker="local", project=jf_project, config=bad_cfg)
    t_submit = time.monotonic() - t0
    ids = {"slurm": slurm["flow_id"], "local": local.flow_id, "failing": failing.flow_id}
    status, wall = {}, {}
    for key, fid in ids.items():
        status[key] = wait_for_flow(fid, jf_project, timeout_s=420, poll_s=2.0)
        wall[key] = time.monotonic() - t0
    print(f"\n[hpc] viglas flows: submitted in {t_submit:.1f} s; finished after "
          + ", ".join(f"{k} {v:.0f} s" for k, v in wall.items()))
    return {"ids": ids, "status": status, "slurm_cli": slurm, "tmp": tmp, "wall": wall}


def _md_rows(st):
    return [j for j in st["jobs"] if j["kind"] == "md"]


def test_slurm_flow_completes_with_per_kind_resources(flows, jf_project):
    st = flows["status"]["slurm"]
    assert st["state"] == "COMPLETED", [(j["name"], j["state"], j["error"]) for j in st["jobs"]]
    assert flows["slurm_cli"]["kinds"] == {"md": 3, "analysis": 4}
    assert all(j["worker"] == "slurm" and j["process_id"] for j in st["jobs"])
    # MD jobs asked Slurm for 4 CPUs, analysis jobs for 1 (metadata.viglas.slurm)
    for j in st["jobs"]:
        script = (Path(j["run_dir"]) / "submit.sh").read_text()
        want = 4 if j["kind"] == "md" else 1
        assert f"#SBATCH --cpus-per-task={want}" in script, (j["name"], script)


def test_cluster_results_equal_a_local_run(flows, jf_project, tmp_path):
    """Same config and seed through Slurm (jobflow-remote + MongoDB store) and through
    ``viglas run`` (local file store): the same results.json numbers."""
    from viglas.workflows.run import run_local
    from viglas.workflows.submit import remote_results

    remote = remote_results(jf_project, flows["ids"]["slurm"])
    local = run_local(TINY, tmp_path / "run", progress=False)
    rc, lc = remote["compositions"][0], local["compositions"][0]
    assert rc["complete"] and lc["complete"]
    assert len(rc["runs"]) == len(lc["runs"]) == 2
    for a, b in zip(rc["runs"], lc["runs"]):
        assert a["t_K"] == b["t_K"]
        assert a["d_cm2_s"] == pytest.approx(b["d_cm2_s"], rel=1e-9)
        assert a["sigma_mS_cm"] == pytest.approx(b["sigma_mS_cm"], rel=1e-9)
        assert Path(a["trajectory"]).is_absolute() and Path(a["trajectory"]).exists()
    assert rc["ea_eV"] == pytest.approx(lc["ea_eV"], rel=1e-9)
    assert remote["status"]["complete"] is True and remote["status"]["failed"] == []
    assert remote["remote"]["state"] == "COMPLETED"
    assert remote["config"]["seed"] == 7


def test_cli_results_and_status(flows, jf_project, cli, tmp_path):
    fid = flows["ids"]["slurm"]
    out = tmp_path / "results.json"
    cli.viglas("hpc", "results", fid, "--project", jf_project, "-o", str(out))
    res = json.loads(out.read_text())
    assert res["schema"] == "viglas-results/1"
    comp = res["compositions"][0]
    assert comp["formula"] == "LiAlCl2.5O0.75"
    assert [t["t_K"] for t in comp["temperatures"]] == [700.0, 900.0]
    assert all(t["d_cm2_s"] > 0 and t["d_err_cm2_s"] > 0 for t in comp["temperatures"])
    # tiny runs may have no diffusive regime: each temperature is a fit point or a bound
    # (analysis rules 3), and Ea exists exactly when two are fit points
    fit = comp["fits"]["d_arrhenius"]
    assert (fit["n_points"] if fit else 0) + len(comp["fits"]["bounds"]) == 2
    assert (comp["ea_eV"] is not None) == (fit is not None)
    txt = cli.viglas("hpc", "status", fid, "--project", jf_project).stdout
    assert "COMPLETED" in txt and "summary" in txt
    # submitting the same config again is refused with a clear message
    r = cli.viglas("submit", str(TINY), "--worker", "slurm", "--project", jf_project, check=False)
    assert r.returncode == 2 and "already in the queue" in r.stderr


def test_local_shell_worker_runs_the_same_flow(flows, jf_project):
    from viglas.workflows.submit import remote_results

    st = flows["status"]["local"]
    assert st["state"] == "COMPLETED", [(j["name"], j["state"], j["error"]) for j in st["jobs"]]
    assert all(j["worker"] == "local" for j in st["jobs"])
    res = remote_results(jf_project, flows["ids"]["local"])
    comp = res["compositions"][0]
    assert comp["complete"] and res["config"]["seed"] == 8
    assert all(r["d_cm2_s"] > 0 for r in comp["runs"])


def test_failing_job_is_reported_and_the_rest_survives(flows, jf_project, cli):
    from viglas.workflows.submit import remote_results

    st = flows["status"]["failing"]
    states = {j["name"]: j["state"] for j in st["jobs"]}
    bad = next(j for j in st["jobs"] if j["name"].startswith("md ") and "900K" in j["name"])
    assert bad["state"] == "FAILED"
    assert "viglas_no_such_module" in bad["error"]
    assert st["n_failed"] == 1 and st["finished"] is True
    # everything that does not need the broken run finished; the jobs after it wait
    # (fix the cause and `jf job retry` the failed job to let them run)
    for name, state in states.items():
        if "900K" in name and name.startswith("diffusion") or name.startswith("summary"):
            assert state in ("WAITING", "COMPLETED"), (name, state)
        elif name != bad["name"]:
            assert state == "COMPLETED", (name, state)
    assert st["state"] in ("FAILED", "COMPLETED")
    # the error is visible through jf ...
    info = cli.jf("job", "info", bad["db_id"]).stdout
    assert "FAILED" in info and "viglas_no_such_module" in info
    # ... and through the results helper, with the finished 700 K run kept
    res = remote_results(jf_project, flows["ids"]["failing"])
    assert any("viglas_no_such_module" in (f["error"] or "") for f in res["status"]["failed"])
    rows = {j["name"]: j for j in res["remote"]["jobs"]}
    assert rows[bad["name"]]["state"] == "FAILED"
    comp = res["compositions"][0]
    done = [r for r in comp["runs"] if r.get("d_cm2_s") is not None]
    assert [r["t_K"] for r in done] == [700.0]
    assert done[0]["d_cm2_s"] > 0
    assert res["status"]["complete"] is False
    txt = cli.viglas("hpc", "status", flows["ids"]["failing"], "--project", jf_project).stdout
    assert "job(s) failed" in txt and "viglas_no_such_module" in txt
