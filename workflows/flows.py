"""Flows built from a validated :class:`viglas.config.Config`.

``build_flow(config)`` returns a jobflow ``Flow`` for ``config.kind``:

- ``composition``: build -> melt-quench -> production MD (T x replica) -> diffusion
  per run -> composition summary;
- ``oxygen_sweep``: one such chain per x, then a series summary with the
  percolation fit sigma300 ~ (p - p_c)^t and the structural percolation;
- ``screening``: one chain per composition, then a ranking table and the plots
  sigma300 vs Ea and sigma300 vs Tg.

The flow is **deterministic**: every job's uuid is a UUID5 of what the job computes
(stage, maker settings, arguments, parent uuids). Building the same config twice
gives the same uuids, which is how ``run_local`` recognises finished jobs on a rerun;
changing a setting changes the uuid of the jobs it affects and of those downstream,
and only those rerun. Seeds are derived from ``config.seed`` the same way.
"""

from __future__ import annotations

import dataclasses

import uuid as _uuid
from dataclasses import asdict
from typing import Any

from jobflow import Flow, Job
from jobflow.core.reference import OnMissing

from viglas.config import Config
from viglas.provenance import stable_hash
from viglas.workflows.makers import (BuildGlassMaker, CompositionSummaryMaker,
                                     DiffusionAnalysisMaker, MeltQuenchMaker, ProductionMDMaker,
                                     SeriesSummaryMaker)

__all__ = ["build_flow", "composition_flow", "makers_from_config", "derive_seed", "FLOW_NAMESPACE"]

#: Namespace of the deterministic job uuids.
FLOW_NAMESPACE = _uuid.UUID("5d0b7a8e-6f1c-4c55-9a57-3c1d2f0e9b11")
_UNKEYED = ("progress", "name", "allow_import")


def derive_seed(base: int, *parts: Any) -> int:
    """A seed in [0, 2**31) determined by ``base`` and ``parts`` (stage, formula, T, replica)."""
    return int(stable_hash([int(base), *[str(p) for p in parts]], 12), 16) % (2 ** 31 - 1)


#: maker settings added after runs existed: left out of the job id while unset (None),
#: so runs made before them keep their ids
_KEYED_WHEN_SET = {"target_d_rel_err", "max_steps"}


def _settings(maker) -> dict[str, Any]:
    return {k: v for k, v in asdict(maker).items() if k not in _UNKEYED
            and not (k in _KEYED_WHEN_SET and v is None)}


def _fix(job: Job, stage: str, maker, args: dict[str, Any], parents: list[Job],
         metadata: dict[str, Any], name: str) -> Job:
    """Give ``job`` a deterministic uuid, a readable name and metadata."""
    key = {"stage": stage, "maker": type(maker).__name__, "settings": _settings(maker),
           "args": args, "parents": [p.uuid for p in parents]}
    job.set_uuid(str(_uuid.uuid5(FLOW_NAMESPACE, stable_hash(key, 32))))
    job.name = name
    job.metadata = {"viglas_stage": stage, **metadata}
    return job


def makers_from_config(config: Config, progress: bool = False,
                       allow_import: bool = False) -> dict[str, Any]:
    """The makers of one composition chain, with settings taken from ``config``.

    ``allow_import`` lets the MD makers build a ``package.module:factory`` calculator
    (the user trusts the config); it is not part of any job id."""
    calc = config.calculator.model_dump(mode="json")
    mq, prod, st, an = config.melt_quench, config.production, config.structure, config.analysis
    return {
        "build": BuildGlassMaker(n_atoms=st.n_atoms, method=st.method,
                                 density_g_cm3=st.density_g_cm3, min_distance_A=st.min_distance_A),
        "melt_quench": MeltQuenchMaker(calculator=calc, enabled=mq.enabled, t_melt_K=mq.t_melt_K,
                                       t_final_K=mq.t_final_K, hold_ps=mq.hold_ps,
                                       cool_rate_K_ps=mq.cool_rate_K_ps,
                                       pressure_GPa=mq.pressure_GPa, timestep_fs=mq.timestep_fs,
                                       tg_min_cooling_ps=mq.tg_min_cooling_ps, progress=progress,
                                       allow_import=allow_import),
        "production": ProductionMDMaker(calculator=calc, ensemble=prod.ensemble,
                                        thermostat=prod.thermostat, pressure_GPa=prod.pressure_GPa,
                                        timestep_fs=prod.timestep_fs,
                                        equilibration_steps=prod.equilibration_steps,
                                        equilibration_ensemble=prod.equilibration_ensemble,
                                        steps=prod.steps, save_every=prod.save_every,
                                        checkpoint_every=prod.checkpoint_every, progress=progress,
                                        allow_import=allow_import,
                                        target_d_rel_err=prod.target_d_rel_err,
                                        max_steps=prod.max_steps),
        "diffusion": DiffusionAnalysisMaker(species=an.species, skip_ps=an.skip_ps,
                                            haven_ratio=an.haven_ratio, plots=an.plots),
        "summary": CompositionSummaryMaker(report_temperature_K=an.report_temperature_K,
                                           vft=an.vft, structure_metrics=an.structure_metrics,
                                           plots=an.plots),
    }


def composition_flow(config: Config, composition, *, progress: bool = False,
                     provenance: dict[str, Any] | None = None,
                     allow_import: bool = False) -> tuple[Flow, Job]:
    """The chain of jobs for one composition; returns (flow, summary job)."""
    m = makers_from_config(config, progress=progress, allow_import=allow_import)
    comp_dict = {"alkali": dict(composition.alkali), "former": dict(composition.former),
                 "x": float(composition.x)}
    f = composition.formula
    prov = dict(provenance or {})
    meta = {"formula": f}
    seed_b = derive_seed(config.seed, "build", f)
    build = _fix(m["build"].make(comp_dict, seed=seed_b, provenance=prov), "build", m["build"],
                 {"composition": comp_dict, "seed": seed_b}, [], meta, f"build {f}")
    seed_m = derive_seed(config.seed, "melt_quench", f)
    mq = _fix(m["melt_quench"].make(build.output, seed=seed_m, provenance=prov), "melt_quench",
              m["melt_quench"], {"seed": seed_m}, [build], meta, f"melt-quench {f}")
    jobs: list[Job] = [build, mq]
    diffusion_outputs, diffusion_jobs = [], []
    mobile = composition.mobile_species
    species = mobile if isinstance(mobile, str) else mobile[0]
    for t_K in config.production.temperatures_K:
        for r in range(config.production.replicas):
            seed = derive_seed(config.seed, "production", f, f"{t_K:g}", r)
            pm = m["production"]
            cap_t = config.production.max_steps_at(t_K)
            if cap_t != pm.max_steps:  # a per-temperature cap
                pm = dataclasses.replace(pm, max_steps=cap_t)
            md = _fix(pm.make(mq.output, t_K=t_K, replica=r, seed=seed, provenance=prov),
                      "production", pm, {"t_K": t_K, "replica": r, "seed": seed}, [mq],
                      {**meta, "t_K": t_K, "replica": r}, f"md {f} {t_K:g}K r{r}")
            an = _fix(m["diffusion"].make(md.output, species=species, provenance=prov), "diffusion",
                      m["diffusion"], {"species": species}, [md],
                      {**meta, "t_K": t_K, "replica": r}, f"diffusion {f} {t_K:g}K r{r}")
            jobs += [md, an]
            diffusion_outputs.append(an.output)
            diffusion_jobs.append(an)
    # extra quenches at other cooling rates for Tg(q) (issue 16 item 4)
    tg_outputs, tg_jobs = [], []
    for rate in config.melt_quench.tg_cooling_rates_K_ps:
        maker = dataclasses.replace(m["melt_quench"], name="tg quench",
                                    cool_rate_K_ps=float(rate))
        seed_t = derive_seed(config.seed, "tg_quench", f, f"{rate:g}")
        tq = _fix(maker.make(build.output, seed=seed_t, provenance=prov), "tg_quench", maker,
                  {"seed": seed_t, "cool_rate_K_ps": float(rate)}, [build],
                  {**meta, "cool_rate_K_ps": float(rate)}, f"tg quench {f} {rate:g}K/ps")
        jobs.append(tq)
        tg_outputs.append(tq.output)
        tg_jobs.append(tq)
    calc = config.calculator.model_dump(mode="json")
    extra = {"tg_quenches": tg_outputs} if tg_outputs else {}
    summ = _fix(m["summary"].make(build.output, mq.output, diffusion_outputs, calculator=calc,
                                  provenance=prov, **extra),
                "summary", m["summary"], {"calculator": calc}, [build, mq, *diffusion_jobs,
                                                                *tg_jobs],
                meta, f"summary {f}")
    # a failed MD run must not sink the summary: its missing output resolves to None
    summ.config.on_missing_references = OnMissing.NONE
    jobs.append(summ)
    return Flow(jobs, output=summ.output, name=f"viglas {f}"), summ


def build_flow(config: Config, *, progress: bool = False, allow_import: bool = False) -> Flow:
    """The jobflow Flow for ``config`` (see the module docstring); deterministic uuids.

    ``progress`` only switches on MD progress bars; it does not change any uuid.
    ``allow_import``: the caller trusts the config's ``package.module:factory``
    calculator (refused otherwise, see :mod:`viglas.calculators`); no uuid changes.
    """
    from viglas.calculators import check_import_allowed

    check_import_allowed(config.calculator.name, allow_import)
    from viglas.provenance import stable_hash as _h

    prov = {"config_hash": _h(config.to_dict()), "config_name": config.name,
            "config_seed": config.seed}
    comps = config.compositions()
    subflows, summaries = [], []
    for comp in comps:
        fl, summ = composition_flow(config, comp, progress=progress, provenance=prov,
                                    allow_import=allow_import)
        subflows.append(fl)
        summaries.append(summ)
    if config.kind == "composition":
        return Flow(subflows, output=summaries[0].output, name=f"viglas {config.name}")
    sm = SeriesSummaryMaker(kind=config.kind,
                            percolation_seed=(config.sweep.percolation_seed if config.sweep else 0),
                            plots=config.analysis.plots)
    series = _fix(sm.make([s.output for s in summaries], provenance=prov), "series", sm, {},
                  summaries, {"kind": config.kind}, f"{config.kind.replace('_', ' ')} summary")
    series.config.on_missing_references = OnMissing.NONE
    return Flow([*subflows, series], output={"series": series.output,
                                             "compositions": [s.output for s in summaries]},
                name=f"viglas {config.name}")


def flat_jobs(flow) -> list:
    out = []
    for item in flow.jobs:
        out.extend(flat_jobs(item) if hasattr(item, "jobs") else [item])
    return out


def ordered_jobs(flow) -> list[tuple[Any, list[str]]]:
    """(job, parent uuids) in the order the jobs were added (a valid topological order
    for viglas flows: each MD run is followed by its analysis)."""
    parents = {job.uuid: list(p) for job, p in flow.iterflow()}
    order = [j for j in flat_jobs(flow) if j.uuid in parents]
    pos = {j.uuid: i for i, j in enumerate(order)}
    if any(pos[p] > pos[j.uuid] for j in order for p in parents[j.uuid] if p in pos):
        return list(flow.iterflow())  # not topological: fall back to jobflow's order
    return [(j, parents[j.uuid]) for j in order]
