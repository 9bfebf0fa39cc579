"""results.json, the CSV tables and report.md of a run, from whatever the job store
holds (partial runs too; HPC results pass the documents of the remote store)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

from viglas.analysis.export_schema import RESULTS_SCHEMA
from viglas.config import Config
from viglas.errors import ConfigError, ViglasError
from viglas.files import atomic_write_text
from viglas.serialize import clean
from viglas.workflows.store import docs_by_uuid, job_freshness, store_docs

__all__ = ["RESULTS_SCHEMA", "collect_results", "write_outputs", "write_table_csv",
           "report_markdown"]


def _plain(obj: Any) -> Any:
    """Job outputs as results.json wants them: monty ``@`` keys dropped, NaN/inf -> None."""
    return clean(obj, drop_meta=True)


def _rel(path: str | None, workdir: Path | None) -> str | None:
    if not path or workdir is None:
        return path
    try:
        return os.path.relpath(path, workdir) if Path(path).is_absolute() and \
            Path(path).resolve().is_relative_to(workdir.resolve()) else path
    except ValueError:
        return path


def collect_results(workdir: str | Path | None, config: Config | None = None,
                    failed: dict[str, str] | None = None,
                    expected: list[str] | None = None,
                    parents: dict[str, list[str]] | None = None, *,
                    docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Build the results.json dict from whatever the job store holds (partial runs too).

    ``docs``: the job documents (plain dicts), e.g. read from a remote job store; by
    default those of the run directory's store. Without a ``workdir`` (remote results)
    ``config`` is needed and paths stay as stored.

    ``expected`` are the job uuids of the config's flow and ``parents`` their parent
    uuids (both derived from the config when not given). Outputs of jobs whose inputs
    changed after they ran are left out (see :func:`job_freshness`); a composition is
    ``complete`` only when its summary used the output of every one of its MD runs.
    """
    from viglas.provenance import provenance, stable_hash

    workdir = Path(workdir).resolve() if workdir is not None else None
    if config is None:
        cfg_path = workdir / "config.json" if workdir is not None else None
        if cfg_path is None or not cfg_path.exists():
            raise ConfigError("not a viglas run directory (no config.json)", field="workdir",
                              value=str(workdir))
        config = Config.model_validate(json.loads(cfg_path.read_text()))
    cfg = config.to_dict()
    if docs is None:
        docs = store_docs(workdir)
    if expected is None:  # e.g. `viglas results DIR`: the jobs this config needs
        try:
            from viglas.workflows.flows import build_flow, ordered_jobs

            # only job ids are derived here; nothing of the config is imported or run
            order = ordered_jobs(build_flow(config, allow_import=True))
            expected = [j.uuid for j, _ in order]
            parents = {j.uuid: list(p) for j, p in order}
        except ViglasError:
            expected = None
    partial: set[str] = set()
    if expected is not None:
        keep = set(expected)
        docs = [d for d in docs if d.get("uuid") in keep]
        if parents is not None:
            fresh, partial, _outdated = job_freshness(
                [(u, parents.get(u, [])) for u in expected], docs_by_uuid(docs))
            docs = [d for d in docs if d.get("uuid") in fresh or d.get("uuid") in partial]
    series_partial = any((d.get("metadata") or {}).get("viglas_stage") == "series"
                         for d in docs if d.get("uuid") in partial)
    partial_formulas = {(d.get("output") or {}).get("formula") for d in docs
                        if d.get("uuid") in partial
                        and (d.get("metadata") or {}).get("viglas_stage") == "summary"}
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        stage = (d.get("metadata") or {}).get("viglas_stage", "?")
        by_stage.setdefault(stage, []).append(_plain(d.get("output") or {}))
    comps_out = []
    for comp in config.compositions():
        f = comp.formula
        summ = next((s for s in by_stage.get("summary", []) if s.get("formula") == f), None)
        build = next((s for s in by_stage.get("build", []) if s.get("formula") == f), None)
        glass = next((s for s in by_stage.get("melt_quench", []) if s.get("formula") == f), None)
        diffs = sorted((s for s in by_stage.get("diffusion", []) if s.get("formula") == f),
                       key=lambda s: (s["t_K"], s["replica"]))
        entry: dict[str, Any] = {
            "formula": f, "label": comp.label, "x": float(comp.x),
            "oxygen_fraction": float(comp.oxygen_fraction), "alkali": dict(comp.alkali),
            "former": dict(comp.former),
            "mobile_species": (comp.mobile_species if isinstance(comp.mobile_species, str)
                               else comp.mobile_species[0]),
            "n_atoms": build["n_atoms"] if build else None,
            "density_g_cm3": (glass or {}).get("density_g_cm3"),
            "number_density_per_cm3": None,
            "calculator": config.calculator.model_dump(mode="json"),
            "runs": [], "temperatures": [],
            "fits": {"d_arrhenius": None, "sigma_arrhenius": None, "d_vft": None,
                     "sigma_vft": None, "preferred_model": None},
            "ea_eV": None, "ea_err_eV": None, "sigma_300K_mS_cm": None,
            "sigma_300K_err_mS_cm": None, "d_300K_cm2_s": None, "d_300K_err_cm2_s": None,
            "tg_K": (glass or {}).get("tg_K"), "tg_err_K": (glass or {}).get("tg_err_K"),
            "haven_ratio": None, "haven_ratio_err": None, "haven_ratio_t_K": [],
            "transference_number": None, "transference_number_err": None,
            "transference_t_K": [], "tg_rates": [], "tg_lab_K": None, "tg_lab_err_K": None,
            "sigma_303K_mS_cm": None, "sigma_303K_err_mS_cm": None, "sigma_303K_source": None,
            "sigma_303K_model": None,
            "tg_rate_fit": None,
            "structure": {}, "plots": {}, "messages": [],
            "provenance": (glass or build or {}).get("provenance"),
            "complete": summ is not None,
        }
        if summ is not None:
            for k in list(entry):
                if k in summ and k not in ("calculator",):
                    entry[k] = summ[k]
            # complete = the summary used the output of every MD run of this composition
            entry["complete"] = f not in partial_formulas
        else:
            # replica averages by the summary's own rule (viglas.analysis.summary)
            from viglas.analysis.summary import d_estimate, temperature_points

            entry["runs"] = [{"t_K": d["t_K"], "replica": d["replica"], "seed": d["seed"],
                              "d_cm2_s": d.get("d_cm2_s"), "d_err_cm2_s": d.get("d_err_cm2_s"),
                              "d_estimate": d_estimate(d),
                              "sigma_mS_cm": d.get("sigma_mS_cm"),
                              "sigma_err_mS_cm": d.get("sigma_err_mS_cm"),
                              "haven_ratio": d.get("haven_ratio"),
                              "trajectory": d.get("trajectory"), "msd_plot": d.get("msd_plot")}
                             for d in diffs]
            entry["temperatures"] = temperature_points(entry["runs"])
            entry["number_density_per_cm3"] = next(
                (d.get("number_density_per_cm3") for d in diffs if d.get("number_density_per_cm3")),
                None)
        for r in entry["runs"]:
            r["trajectory"] = _rel(r.get("trajectory"), workdir)
            if r.get("msd_plot"):
                r["msd_plot"] = _rel(r["msd_plot"], workdir)
        entry["plots"] = {k: _rel(v, workdir) for k, v in (entry.get("plots") or {}).items()}
        comps_out.append(entry)
    series = next(iter(by_stage.get("series", [])), None)
    percolation = None
    ranking: list[dict[str, Any]] = []
    series_plots: dict[str, str] = {}
    structural: list[dict[str, Any]] = []
    if series is not None:
        percolation = series.get("percolation")
        ranking = series.get("ranking") or []
        structural = series.get("structural_percolation") or []
        series_plots = {k: _rel(v, workdir) for k, v in (series.get("plots") or {}).items()}
    elif config.kind != "composition":
        ranking = sorted(({"formula": c["formula"], "sigma_300K_mS_cm": c["sigma_300K_mS_cm"],
                           "sigma_300K_err_mS_cm": c["sigma_300K_err_mS_cm"], "ea_eV": c["ea_eV"],
                           "ea_err_eV": c["ea_err_eV"], "tg_K": c["tg_K"]}
                          for c in comps_out if c["complete"]),
                         key=lambda r: -(r["sigma_300K_mS_cm"] or -1.0))
    failed = failed or {}
    expected_n = len(expected) if expected is not None else None
    out = {
        "schema": RESULTS_SCHEMA,
        "provenance": provenance(cfg, config_hash=stable_hash(cfg)),
        "config": cfg,
        "compositions": comps_out,
        "percolation": percolation,
        "structural_percolation": structural,
        "ranking": ranking,
        "plots": series_plots,
        "status": {"complete": (not failed) and all(c["complete"] for c in comps_out) and
                   (config.kind == "composition" or (series is not None and not series_partial)),
                   "jobs_finished": len({d.get("uuid") for d in docs}), "jobs_total": expected_n,
                   "failed": [{"uuid": u, "error": e} for u, e in failed.items()]},
    }
    return _plain(out)


def _fmt(v: Any, err: Any = None, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    s = format(v, spec)
    if err is not None:
        s += " ± " + format(err, spec)
    return s


def write_table_csv(path: str | Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    """``rows`` as CSV with the columns ``fields`` (other keys ignored, None -> empty)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})


def write_outputs(results: dict[str, Any], workdir: str | Path) -> None:
    """Write results.json, CSV tables, copies of the plots and report.md into workdir."""
    workdir = Path(workdir)
    atomic_write_text(workdir / "results.json", json.dumps(results, indent=2, allow_nan=False))
    comps = results["compositions"]

    def write_csv(name: str, rows: list[dict[str, Any]], fields: list[str]) -> None:
        write_table_csv(workdir / name, rows, fields)

    write_csv("runs.csv", [{"formula": c["formula"], **r} for c in comps for r in c["runs"]],
              ["formula", "t_K", "replica", "seed", "d_cm2_s", "d_err_cm2_s", "d_estimate",
               "sigma_mS_cm", "sigma_err_mS_cm", "haven_ratio", "trajectory"])
    write_csv("temperatures.csv", [{"formula": c["formula"], **t} for c in comps
                                   for t in c["temperatures"]],
              ["formula", "t_K", "n_replicas", "d_estimate", "n_bound_replicas", "d_cm2_s",
               "d_err_cm2_s", "sigma_mS_cm", "sigma_err_mS_cm", "haven_ratio",
               "haven_ratio_err"])
    write_csv("compositions.csv", comps,
              ["formula", "x", "oxygen_fraction", "n_atoms", "density_g_cm3", "ea_eV", "ea_err_eV",
               "sigma_300K_mS_cm", "sigma_300K_err_mS_cm", "d_300K_cm2_s", "d_300K_err_cm2_s",
               "tg_K", "tg_err_K", "haven_ratio", "haven_ratio_err", "complete",
               "sigma_303K_mS_cm", "sigma_303K_err_mS_cm", "sigma_303K_source", "tg_lab_K",
               "tg_lab_err_K", "transference_number", "transference_number_err"])
    if results.get("ranking"):
        write_csv("ranking.csv", results["ranking"],
                  ["rank", "formula", "sigma_300K_mS_cm", "sigma_300K_err_mS_cm", "ea_eV",
                   "ea_err_eV", "tg_K", "tg_err_K", "oxygen_fraction"])
    # gather plots into workdir/plots
    plots_dir = workdir / "plots"
    plots_dir.mkdir(exist_ok=True)
    gathered: list[str] = []
    for c in comps:
        for k, p in (c.get("plots") or {}).items():
            src = workdir / p if not Path(p).is_absolute() else Path(p)
            if src.is_file():
                dst = plots_dir / f"{c['label']}_{k}.png"
                shutil.copyfile(src, dst)
                gathered.append(str(dst.relative_to(workdir)))
        for r in c.get("runs") or []:
            src = r.get("msd_plot")
            if src and (workdir / src if not Path(src).is_absolute() else Path(src)).is_file():
                dst = plots_dir / f"{c['label']}_msd_{r['t_K']:g}K_r{r['replica']}.png"
                shutil.copyfile(workdir / src if not Path(src).is_absolute() else Path(src), dst)
                gathered.append(str(dst.relative_to(workdir)))
    for k, p in (results.get("plots") or {}).items():
        src = workdir / p if not Path(p).is_absolute() else Path(p)
        if src.is_file():
            dst = plots_dir / f"{k}.png"
            shutil.copyfile(src, dst)
            gathered.append(str(dst.relative_to(workdir)))
    (workdir / "report.md").write_text(report_markdown(results, gathered))


def report_markdown(results: dict[str, Any], plots: list[str] | None = None) -> str:
    """A short human-readable report of a results dict."""
    cfg = results["config"]
    st = results.get("status", {})
    lines = [f"# viglas report: {cfg.get('name')} ({cfg.get('kind')})", ""]
    lines.append(f"Calculator: `{cfg['calculator']['name']}` {cfg['calculator'].get('params') or ''}; "
                 f"config hash `{results['provenance'].get('config_hash')}`; "
                 f"created {results['provenance'].get('created_utc')}.")
    prov = results.get("provenance") or {}
    versions = prov.get("versions") or {}
    git = prov.get("git") or {}
    lines.append(f"viglas {versions.get('viglas', '?')}"
                 + (f" (git {git.get('commit', '?')[:12]}{', modified' if git.get('dirty') else ''})"
                    if git else "")
                 + f"; config seed {cfg.get('seed')} (every job's seed derives from it; "
                 "per-run seeds below and in runs.csv).")
    lines.append(f"Status: {'complete' if st.get('complete') else 'PARTIAL'} "
                 f"({st.get('jobs_finished')} of {st.get('jobs_total')} jobs finished).")
    for f in st.get("failed", []):
        lines.append(f"- failed job {f['uuid'][:8]}: {f['error']}")
    lines.append("")
    lines.append("Uncertainties are one standard deviation. sigma is Nernst-Einstein "
                 f"(Haven ratio {cfg['analysis'].get('haven_ratio')}); 300 K values are "
                 "Arrhenius extrapolations with the fit's covariance band.")
    lines.append("")
    for c in results["compositions"]:
        lines.append(f"## {c['formula']}  (x = {c['x']:g}, O fraction p = {c['oxygen_fraction']:.4f}, "
                     f"{c.get('n_atoms') or '?'} atoms)")
        lines.append("")
        lines.append(f"- Ea = {_fmt(c['ea_eV'], c['ea_err_eV'])} eV (Arrhenius fit of D(T))")
        lines.append(f"- sigma(300 K) = {_fmt(c['sigma_300K_mS_cm'], c['sigma_300K_err_mS_cm'])} mS/cm")
        lines.append(f"- D(300 K) = {_fmt(c['d_300K_cm2_s'], c['d_300K_err_cm2_s'])} cm²/s")
        tg = (f"Tg = {_fmt(c['tg_K'], c['tg_err_K'], '.0f')} K" if c.get("tg_K") is not None
              else "Tg not fitted (see notes)")
        lines.append(f"- {tg}; glass density {_fmt(c['density_g_cm3'])} g/cm³ (after the quench)")
        if c["fits"].get("preferred_model"):
            lines.append(f"- preferred model (AIC): {c['fits']['preferred_model']}")
        if c.get("structure"):
            s = ", ".join(f"{k} = {_fmt(v) if isinstance(v, float) else v}"
                          for k, v in c["structure"].items() if not isinstance(v, (list, dict)))
            lines.append(f"- structure: {s}")
        lines.append("")
        if c.get("haven_ratio") is not None:
            lines.append(f"- Haven ratio {_fmt(c['haven_ratio'], c.get('haven_ratio_err'))} "
                         f"(mean over {', '.join(f'{t:g}' for t in c.get('haven_ratio_t_K') or [])}"
                         " K)")
        seeds = [f"{r['t_K']:g} K r{r['replica']}: {r['seed']}" for r in c.get("runs") or []
                 if r.get("seed") is not None]
        if seeds:
            lines.append(f"- MD seeds: {'; '.join(seeds)}")
        lines.append("")
        if c["temperatures"]:
            lines.append("| T (K) | replicas | D (cm²/s) | sigma (mS/cm) |")
            lines.append("|---:|---:|---:|---:|")
            for t in c["temperatures"]:
                lines.append(f"| {t['t_K']:g} | {t['n_replicas']} | {_fmt(t['d_cm2_s'], t['d_err_cm2_s'])} | "
                             f"{_fmt(t['sigma_mS_cm'], t['sigma_err_mS_cm'])} |")
            lines.append("")
        for m in c.get("messages") or []:
            lines.append(f"- note: {m}")
        if c.get("messages"):
            lines.append("")
    perc = results.get("percolation")
    if perc:
        lines.append("## Percolation")
        if "error" in perc:
            lines.append(f"No percolation fit: {perc['error']}")
        else:
            lines.append(f"p_c = {_fmt(perc.get('p_c'), perc.get('p_c_err'))}, "
                         f"t = {_fmt(perc.get('t'), perc.get('t_err'))}")
        lines.append("")
    if results.get("ranking"):
        lines.append("## Ranking by sigma(300 K)")
        lines.append("| rank | formula | sigma(300 K) (mS/cm) | Ea (eV) | Tg (K) |")
        lines.append("|---:|---|---:|---:|---:|")
        for i, r in enumerate(results["ranking"], 1):
            lines.append(f"| {r.get('rank', i)} | {r['formula']} | "
                         f"{_fmt(r.get('sigma_300K_mS_cm'), r.get('sigma_300K_err_mS_cm'))} | "
                         f"{_fmt(r.get('ea_eV'), r.get('ea_err_eV'))} | {_fmt(r.get('tg_K'), None, '.0f')} |")
        lines.append("")
    if plots:
        lines.append("## Plots")
        lines += [f"- ![{Path(p).stem}]({p})" for p in plots]
        lines.append("")
    return "\n".join(lines)

