"""jobflow Makers of the viglas pipeline (atomate2 style).

A Maker is a dataclass of settings; ``make(...)`` is a jobflow ``@job`` that takes
plain, JSON-able inputs (composition dicts, file paths, numbers, earlier documents)
and returns a small pydantic document from :mod:`viglas.workflows.documents`.
Change settings by replacing fields (``dataclasses.replace(maker, steps=...)``),
not by subclassing. Jobs write their files into the current directory (the job's
run directory, chosen by the manager: ``run_local`` or jobflow-remote) and return
absolute paths to them; trajectories are H5MD files, never stored in documents.

Pipeline per composition::

    BuildGlassMaker -> MeltQuenchMaker -> ProductionMDMaker (T x replica)
        -> DiffusionAnalysisMaker (per run) -> CompositionSummaryMaker

and, for sweeps and screenings, :class:`SeriesSummaryMaker` at the end.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jobflow import Maker, job

from viglas.analysis.summary import d_estimate, fit_series, temperature_points
from viglas.errors import ViglasError
from viglas.serialize import clean as _clean
from viglas.serialize import finite as _finite
from viglas.workflows.documents import (CompositionSummaryDoc, DiffusionDoc, MeltQuenchDoc,
                                        ProductionDoc, SeriesSummaryDoc, StructureDoc,
                                        TemperaturePoint)

__all__ = ["BuildGlassMaker", "MeltQuenchMaker", "ProductionMDMaker",
           "DiffusionAnalysisMaker", "CompositionSummaryMaker", "SeriesSummaryMaker"]


# ----------------------------------------------------------------------------- helpers
def _composition(value: Any):
    from viglas.structures import GlassComposition

    if isinstance(value, GlassComposition):
        return value
    if isinstance(value, str):
        return GlassComposition.from_formula(value)
    return GlassComposition(**value)


def _mobile(comp) -> list[str]:
    ms = comp.mobile_species
    return [ms] if isinstance(ms, str) else list(ms)


def _prov(base: dict | None, **extra: Any) -> dict[str, Any]:
    from viglas.provenance import provenance

    out = provenance()
    out.update(base or {})
    out.update(extra)
    return out


def _to_dict(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    if hasattr(obj, "to_dict"):
        return _clean(obj.to_dict())
    if hasattr(obj, "model_dump"):
        return _clean(obj.model_dump())
    if isinstance(obj, dict):
        return _clean(obj)
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj):
        return _clean(asdict(obj))
    return _clean(dict(vars(obj)))


def _get_calculator(spec: dict[str, Any], allow_import: bool = False):
    from viglas.calculators import get_calculator

    return get_calculator(dict(spec), allow_import=allow_import)


def _calculator_provenance(calc, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec plus what it resolved to: class and a hash of the actual parameters
    (so a later change of a shipped parameter file is visible in old results)."""
    from viglas.provenance import model_identity, stable_hash

    out: dict[str, Any] = {"spec": spec, "class": type(calc).__name__}
    params = getattr(calc, "params", None) or getattr(calc, "parameters", None)
    if hasattr(params, "model_dump"):
        dumped = model_identity(params)
        out["parameters_hash"] = stable_hash(dumped)
        prov = dumped.get("provenance") or {}
        out["parameters_reference"] = prov.get("reference")
        out["parameters_date"] = str(prov.get("date")) if prov.get("date") else None
    return out


def calculator_label(spec: dict[str, Any] | None) -> str:
    """A short name of a calculator spec for plot titles: "ionic (default)", "chgnet 0.3.0"."""
    if not spec:
        return "?"
    spec = spec.get("spec", spec) if isinstance(spec, dict) else spec
    name = str(spec.get("name", "?"))
    params = spec.get("params") or {}
    extra = params.get("parameters") or params.get("model") or params.get("model_file")
    if name == "ionic" and extra is None:
        extra = "default"
    return f"{name} ({Path(str(extra)).name})" if extra is not None else name


def _read_atoms(path: str):
    from viglas.structures import read_structure

    return read_structure(path)


def _write_atoms(atoms, path: Path) -> str:
    from viglas.structures import write_structure

    write_structure(atoms, path)
    return str(path.resolve())


def _density(atoms) -> float:
    from viglas.units import density_g_cm3

    return float(density_g_cm3(float(atoms.get_masses().sum()), float(atoms.get_volume())))


# ----------------------------------------------------------------------------- makers
@dataclass
class BuildGlassMaker(Maker):
    """Build the starting glass model of a composition (``viglas.structures.build_glass``).

    Settings: ``n_atoms`` target atoms per cell (whole formula units), ``method``
    ("substitution" of O into the parent salt crystal, or "packing" with packmol),
    ``density_g_cm3`` (None = estimated by volume additivity), ``min_distance_A``.
    Output: :class:`StructureDoc` with the extxyz path.
    """

    name: str = "build glass"
    n_atoms: int = 120
    method: str = "substitution"
    density_g_cm3: float | None = None
    min_distance_A: float | None = None

    @job(output_schema=StructureDoc)
    def make(self, composition: dict[str, Any] | str, seed: int = 0,
             provenance: dict[str, Any] | None = None) -> StructureDoc:
        """Build and write ``structure.extxyz`` in the job directory."""
        from viglas.structures import build_glass

        comp = _composition(composition)
        atoms = build_glass(comp, self.n_atoms, method=self.method, density=self.density_g_cm3,
                            seed=seed, min_distance=self.min_distance_A)
        path = _write_atoms(atoms, Path.cwd() / "structure.extxyz")
        symbols = atoms.get_chemical_symbols()
        counts = {s: symbols.count(s) for s in sorted(set(symbols))}
        return StructureDoc(
            formula=comp.formula, label=comp.label, x=float(comp.x),
            oxygen_fraction=float(comp.oxygen_fraction), alkali=dict(comp.alkali),
            former=dict(comp.former), mobile_species=_mobile(comp), n_atoms=len(atoms),
            counts=counts, density_g_cm3=_density(atoms), volume_A3=float(atoms.get_volume()),
            method=self.method, seed=seed, structure_path=path,
            provenance=_prov(provenance, seeds={"build": seed}))


@dataclass
class MeltQuenchMaker(Maker):
    """Melt, hold and cool a model to a glass (``viglas.md.melt_quench``).

    NPT at ``pressure_GPa``. The cooling curve V(T), E(T)
    gives Tg through ``viglas.analysis.fit_tg`` when the cooling crosses Tg; otherwise
    ``tg_K`` is None with the reason in ``tg_message`` (also when the cooling stage is
    shorter than ``tg_min_cooling_ps``: then V(T) follows the barostat's lag, not the
    glass transition). ``enabled=False`` skips the MD
    and passes the starting structure on (for tests and crystalline references).
    """

    name: str = "melt-quench"
    calculator: dict[str, Any] = field(default_factory=lambda: {"name": "ionic", "params": {}})
    enabled: bool = True
    t_melt_K: float = 1500.0
    t_final_K: float = 300.0
    hold_ps: float = 5.0
    cool_rate_K_ps: float = 100.0
    pressure_GPa: float = 0.0
    timestep_fs: float = 1.0
    tg_min_cooling_ps: float = 20.0
    progress: bool = False
    #: the user opted into 'package.module:factory' calculators (not part of job ids)
    allow_import: bool = False

    @job(output_schema=MeltQuenchDoc)
    def make(self, structure: StructureDoc | str, seed: int = 0,
             provenance: dict[str, Any] | None = None) -> MeltQuenchDoc:
        """Run the melt-quench in the job directory; writes ``glass.extxyz``."""
        path = structure if isinstance(structure, str) else structure.structure_path
        formula = "" if isinstance(structure, str) else structure.formula
        atoms = _read_atoms(path)
        prov = _prov(provenance, calculator=self.calculator, seeds={"melt_quench": seed})
        out = Path.cwd() / "glass.extxyz"
        if not self.enabled:
            shutil.copyfile(path, out)
            return MeltQuenchDoc(formula=formula, structure_path=str(out.resolve()), enabled=False,
                                 seed=seed, t_melt_K=self.t_melt_K, t_final_K=self.t_final_K,
                                 cool_rate_K_ps=self.cool_rate_K_ps, pressure_GPa=self.pressure_GPa,
                                 density_g_cm3=_density(atoms), volume_A3=float(atoms.get_volume()),
                                 tg_message="melt-quench disabled", provenance=prov)
        from viglas.md import melt_quench

        calc = _get_calculator(self.calculator, self.allow_import)
        prov["calculator"] = _calculator_provenance(calc, self.calculator)
        res = melt_quench(atoms, calc, t_melt_K=self.t_melt_K, t_final_K=self.t_final_K,
                          hold_ps=self.hold_ps, cool_rate_K_ps=self.cool_rate_K_ps,
                          pressure_GPa=self.pressure_GPa, timestep_fs=self.timestep_fs,
                          workdir=Path.cwd() / "melt_quench", seed=seed, progress=self.progress)
        glass = res.atoms.copy()
        glass.calc = None
        _write_atoms(glass, out)
        # cooling stage: target temperature (the instantaneous one is noisy), V and E
        t = np.asarray(res.target_temperature_K, float)
        v = np.asarray(res.volume_A3, float)
        e = np.asarray(res.potential_energy_eV, float)
        tg, tg_err, msg, tg_plot = None, None, None, None
        series = v if (v.size and np.ptp(v) > 0) else e
        cooling_ps = (self.t_melt_K - self.t_final_K) / self.cool_rate_K_ps
        if cooling_ps < self.tg_min_cooling_ps:
            msg = (f"the cooling lasted {cooling_ps:.3g} ps, shorter than "
                   f"tg_min_cooling_ps = {self.tg_min_cooling_ps:g} ps (the volume lags the "
                   "barostat in so fast a quench)")
        elif t.size >= 8 and series.size == t.size:
            try:
                from viglas.analysis import fit_tg

                fit = fit_tg(t, series)
                tg, tg_err = _finite(fit.tg_K), _finite(fit.tg_err_K)
                try:
                    from viglas.analysis import plot_tg

                    title = (f"{formula}: quench at {self.cool_rate_K_ps:g} K/ps, "
                             f"{self.pressure_GPa:g} GPa; {calculator_label(self.calculator)}")
                    tg_plot = str(Path(plot_tg(t, series, fit, Path.cwd() / "tg.png",
                                               ylabel="V (Å³)" if series is v else "E (eV)",
                                               title=title)).resolve())
                except Exception:  # noqa: BLE001 - a plot never sinks the job
                    tg_plot = None
            except ViglasError as exc:
                msg = exc.one_line()
            except ImportError as exc:
                msg = f"fit_tg unavailable: {exc}"
        else:
            msg = "cooling curve too short for a Tg fit"
        traj = res.trajectory
        return MeltQuenchDoc(
            formula=formula, structure_path=str(out.resolve()),
            trajectory=str(traj) if traj else None, seed=seed, t_melt_K=self.t_melt_K,
            t_final_K=self.t_final_K, cool_rate_K_ps=self.cool_rate_K_ps,
            pressure_GPa=self.pressure_GPa, density_g_cm3=_density(glass),
            volume_A3=float(glass.get_volume()),
            cooling_t_K=_clean(t.tolist()), cooling_volume_A3=_clean(v.tolist()),
            cooling_energy_eV=_clean(e.tolist()), tg_K=tg, tg_err_K=tg_err, tg_message=msg,
            tg_plot=tg_plot, provenance=prov)


@dataclass
class ProductionMDMaker(Maker):
    """Equilibrate then run production MD at one temperature (``run_md``).

    ``equilibration_steps`` run first (not analysed, in ``equil/``), then ``steps``
    production steps saving every ``save_every`` steps to ``prod/traj.h5``. Both
    stages checkpoint every ``checkpoint_every`` steps; rerunning the job in the same
    directory resumes from the last checkpoint.
    """

    name: str = "production md"
    calculator: dict[str, Any] = field(default_factory=lambda: {"name": "ionic", "params": {}})
    ensemble: str = "nvt"
    thermostat: str = "bussi"
    pressure_GPa: float = 0.0
    timestep_fs: float = 1.0
    equilibration_steps: int = 2000
    equilibration_ensemble: str = "npt"
    steps: int = 20000
    save_every: int = 20
    checkpoint_every: int = 1000
    progress: bool = False
    #: the user opted into 'package.module:factory' calculators (not part of job ids)
    allow_import: bool = False
    #: adaptive length: extend the production run until D's relative error is at most
    #: this (None: fixed ``steps``); ``max_steps`` caps it (see viglas.md.adaptive)
    target_d_rel_err: float | None = None
    max_steps: int | None = None

    @job(output_schema=ProductionDoc)
    def make(self, structure: MeltQuenchDoc | StructureDoc | str, t_K: float, replica: int = 0,
             seed: int = 0, provenance: dict[str, Any] | None = None) -> ProductionDoc:
        """Run MD at ``t_K`` kelvin; returns the trajectory path and run averages."""
        from viglas.md import run_md

        path = structure if isinstance(structure, str) else structure.structure_path
        formula = "" if isinstance(structure, str) else structure.formula
        atoms = _read_atoms(path)
        calc = _get_calculator(self.calculator, self.allow_import)
        here = Path.cwd()
        extra = {"progress": self.progress}
        pressure = self.pressure_GPa if self.ensemble == "npt" else None
        if self.equilibration_steps > 0:
            eq_npt = self.equilibration_ensemble == "npt"
            eq = run_md(atoms, calc, ensemble=self.equilibration_ensemble,
                        thermostat=("langevin" if eq_npt and self.thermostat == "bussi"
                                    else self.thermostat),
                        temperature_K=float(t_K), pressure_GPa=self.pressure_GPa if eq_npt else None,
                        timestep_fs=self.timestep_fs, steps=self.equilibration_steps,
                        save_every=max(self.save_every, self.equilibration_steps // 10 or 1),
                        workdir=here / "equil", seed=seed,
                        checkpoint_every=self.checkpoint_every, **extra)
            atoms = eq.atoms.copy()
            if eq_npt and self.ensemble == "nvt":
                # production at the mean equilibrium volume at this temperature
                scale = (float(eq.mean_volume_A3) / atoms.get_volume()) ** (1.0 / 3.0)
                atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
        def production(steps: int):
            return run_md(atoms, calc, ensemble=self.ensemble, thermostat=self.thermostat,
                          temperature_K=float(t_K), pressure_GPa=pressure,
                          timestep_fs=self.timestep_fs, steps=steps, save_every=self.save_every,
                          workdir=here / "prod", seed=seed + 1,
                          checkpoint_every=self.checkpoint_every, **extra)

        adaptive = None
        if self.target_d_rel_err is None:
            prod = production(self.steps)
        else:
            prod, adaptive = self._adaptive(production, formula, float(t_K), here)
        final = prod.atoms.copy()
        final.calc = None
        fpath = _write_atoms(final, here / "final.extxyz")
        traj = Path(prod.trajectory)
        if not traj.is_absolute():
            traj = here / "prod" / traj
        return ProductionDoc(
            formula=formula, t_K=float(t_K), replica=int(replica), seed=int(seed),
            trajectory=str(traj.resolve()), final_structure_path=fpath, n_atoms=len(final),
            steps=int(prod.steps_done), timestep_fs=self.timestep_fs, save_every=self.save_every,
            equilibration_steps=self.equilibration_steps, ensemble=self.ensemble,
            thermostat=self.thermostat,
            mean_temperature_K=_finite(prod.mean_temperature_K),
            density_g_cm3=_finite(prod.mean_density_g_cm3),
            volume_A3=_finite(prod.mean_volume_A3),
            adaptive=adaptive,
            provenance=_prov(provenance, calculator=_calculator_provenance(calc, self.calculator),
                             seeds={"equilibration": seed, "production": seed + 1}))

    def _adaptive(self, production, formula: str, t_K: float, here: Path):
        """Run ``production`` to the target relative error of D (or the cap); returns the
        last MD result and the outcome record (stop reason, length, error history)."""
        from viglas.analysis import analyze_trajectory
        from viglas.md.adaptive import run_to_precision

        species = _mobile(_composition(formula))[0] if formula else "Li"
        last: dict[str, Any] = {}

        def extend(steps: int) -> None:
            last["md"] = production(steps)

        def estimate() -> tuple[float, float]:
            traj = Path(last["md"].trajectory)
            if not traj.is_absolute():
                traj = here / "prod" / traj
            res = analyze_trajectory(str(traj), species=species, temperature_K=t_K,
                                     no_plot=True)
            res = res[0] if isinstance(res, tuple) else res
            kind = (res.diffusion or {}).get("d_estimate", "value")
            if kind not in (None, "value"):
                raise ValueError(f"no diffusive regime yet (D is an {kind} estimate)")
            return float(res.d_cm2_s), float(res.d_err_cm2_s)

        cap = self.max_steps if self.max_steps is not None else self.steps
        outcome = run_to_precision(extend, estimate, initial_steps=self.steps,
                                   timestep_fs=self.timestep_fs,
                                   target_rel_err=float(self.target_d_rel_err),
                                   max_duration_ps=cap * self.timestep_fs / 1000.0,
                                   state_path=here / "prod" / "adaptive.json")
        return last["md"], outcome.to_dict()


@dataclass
class DiffusionAnalysisMaker(Maker):
    """Tracer D and Nernst-Einstein sigma of the mobile ion from one trajectory.

    Uses ``viglas.analysis.analyze_trajectory`` (FFT MSD, automatic diffusive window,
    generalised-least-squares slope with its one-sigma error). ``species`` None means
    the composition's alkali; ``skip_ps`` of the start of the trajectory is dropped.
    """

    name: str = "diffusion"
    species: str | None = None
    skip_ps: float = 0.0
    haven_ratio: float = 1.0
    plots: bool = True

    @job(output_schema=DiffusionDoc)
    def make(self, production: ProductionDoc, species: str | None = None,
             provenance: dict[str, Any] | None = None) -> DiffusionDoc:
        """Analyse ``production.trajectory``; writes ``msd.png`` when plots are on."""
        from viglas.analysis import analyze_trajectory

        sp = self.species or species
        if sp is None:
            raise ViglasError("no mobile species given", field="species", value=None,
                              allowed="an element symbol such as Li or Na")
        res, msd = analyze_trajectory(production.trajectory, species=sp,
                                      temperature_K=production.t_K,
                                      start_fs=self.skip_ps * 1000.0, return_msd=True)
        d = _to_dict(res) or {}
        msd_plot = None
        if self.plots:
            try:
                from viglas.analysis import plot_msd

                calc = (production.provenance or {}).get("calculator")
                title = (f"{production.formula}: {sp} at {production.t_K:g} K, replica "
                         f"{production.replica}; {calculator_label(calc)}")
                msd_plot = str(Path(plot_msd(msd, res.diffusion_result, Path.cwd() / "msd.png",
                                             title=title)).resolve())
            except (ImportError, TypeError, ValueError, ViglasError):
                msd_plot = None
        # cation transference number from the Onsager coefficients (issue 16 item 5)
        onsager = None
        try:
            from viglas.analysis import onsager_from_trajectory

            onsager = onsager_from_trajectory(production.trajectory, production.t_K,
                                              cation=str(sp), start_fs=self.skip_ps * 1000.0)
        except Exception as exc:  # noqa: BLE001 - an optional analysis never sinks the job
            onsager = None
            onsager_msg = f"Onsager analysis: {type(exc).__name__}: {exc}"
        else:
            onsager_msg = None
        # Nernst-Einstein sigma uses the configured Haven ratio (1 = uncorrelated hops)
        hr = float(self.haven_ratio)
        sigma = _finite(res.sigma_mS_cm)
        sigma_err = _finite(res.sigma_err_mS_cm)
        if sigma is not None and hr != 1.0:
            sigma, sigma_err = sigma / hr, (sigma_err / hr if sigma_err is not None else None)
        return DiffusionDoc(
            formula=production.formula, t_K=production.t_K, replica=production.replica,
            seed=production.seed, species=str(sp), trajectory=production.trajectory,
            d_cm2_s=_finite(res.d_cm2_s), d_err_cm2_s=_finite(res.d_err_cm2_s),
            sigma_mS_cm=sigma, sigma_err_mS_cm=sigma_err,
            number_density_per_cm3=_finite(res.n_per_cm3),
            haven_ratio=_finite(res.haven_ratio),
            haven_ratio_err=_finite(getattr(res, "haven_ratio_err", None)),
            transport=_drop_arrays(d), msd_plot=msd_plot,
            production_ps=production.steps * production.timestep_fs / 1000.0,
            adaptive=production.adaptive,
            transference_number=_finite(onsager.transference.get(str(sp))) if onsager else None,
            transference_number_err=_finite(onsager.transference_err.get(str(sp)))
            if onsager else None,
            onsager=_clean(onsager.to_dict()) if onsager else
            ({"error": onsager_msg} if onsager_msg else None),
            provenance=_prov(provenance, species=sp))


def _drop_arrays(d: dict[str, Any], max_len: int = 64) -> dict[str, Any]:
    """Keep a transport dict small: drop long arrays (MSD curves live in files)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _drop_arrays(v, max_len)
        elif isinstance(v, list) and len(v) > max_len:
            continue
        else:
            out[k] = v
    return out


@dataclass
class CompositionSummaryMaker(Maker):
    """Collect one composition: D(T), sigma(T), Arrhenius and VFT fits, sigma(300 K)
    with its one-sigma band, Tg, structure metrics of the glass, and plots.

    The numbers (replica pooling, fits, model choice, extrapolation to
    ``report_temperature_K``, sigma at 303 K) come from :mod:`viglas.analysis.summary`,
    the one implementation that results of partial runs use too; this job adds the
    structure metrics, Tg(q) and the plots.
    """

    name: str = "composition summary"
    report_temperature_K: float = 300.0
    vft: bool = True
    structure_metrics: bool = True
    plots: bool = True

    @staticmethod
    def _tg_rates(glass, tg_quenches, messages):
        return _tg_rates_impl(glass, tg_quenches, messages)

    @job(output_schema=CompositionSummaryDoc)
    def make(self, structure: StructureDoc, glass: MeltQuenchDoc, runs: list[DiffusionDoc | None],
             calculator: dict[str, Any], provenance: dict[str, Any] | None = None,
             tg_quenches: list[MeltQuenchDoc | None] | None = None) -> CompositionSummaryDoc:
        """Summarise; writes arrhenius_D.png / arrhenius_sigma.png in the job directory."""
        if structure is None or glass is None:
            raise ViglasError("nothing to summarise: the glass model was not built",
                              field="summary", hint="see the failed build/melt-quench job")
        messages: list[str] = []
        runs_ok = [r for r in runs if r is not None]
        if len(runs_ok) < len(runs):
            messages.append(f"{len(runs) - len(runs_ok)} of {len(runs)} MD runs failed or missing")
        for r in runs_ok:  # issue 15: a run without a diffusive regime says so
            warn = ((r.transport or {}).get("diffusion") or {}).get("warning")
            if warn:
                messages.append(f"{r.t_K:g} K replica {r.replica}: {warn}")
            ad = r.adaptive or {}
            if ad and ad.get("stop_reason") != "target_reached":  # issue 16: never silent
                messages.append(f"{r.t_K:g} K replica {r.replica}: adaptive run stopped at the "
                                f"cap: {ad.get('message')}")
        run_rows = [{"t_K": r.t_K, "replica": r.replica, "seed": r.seed, "d_cm2_s": r.d_cm2_s,
                     "d_err_cm2_s": r.d_err_cm2_s, "d_estimate": d_estimate(r),
                     "sigma_mS_cm": r.sigma_mS_cm,
                     "sigma_err_mS_cm": r.sigma_err_mS_cm, "haven_ratio": r.haven_ratio,
                     "trajectory": r.trajectory, "msd_plot": r.msd_plot,
                     **({"production_ps": r.production_ps,
                         "adaptive_stop_reason": (r.adaptive or {}).get("stop_reason")}
                        if r.adaptive else {})} for r in runs_ok]
        points = temperature_points(runs_ok)  # one rule for every caller (analysis.summary)
        temps = [TemperaturePoint(**p) for p in points]
        series = fit_series(points, report_temperature_K=self.report_temperature_K,
                            vft=self.vft)
        messages += series.messages
        fit_objs = series.fit_objects
        t_rep = self.report_temperature_K
        n_per_cm3 = next((r.number_density_per_cm3 for r in runs_ok
                          if r.number_density_per_cm3 is not None), None)
        struct: dict[str, Any] = {}
        if self.structure_metrics:
            try:
                struct = _structure_metrics(glass.structure_path, messages)
            except Exception as exc:  # noqa: BLE001 - metrics never sink a summary
                messages.append(f"structure metrics: {type(exc).__name__}: {exc}")
        plots: dict[str, str] = {}
        if self.plots:
            for key in ("d_arrhenius", "sigma_arrhenius"):
                if key in fit_objs:
                    try:
                        yk = "d_cm2_s" if key[0] == "d" else "sigma_mS_cm"
                        pts = [p for p in temps if getattr(p, yk) and p.d_estimate == "value"]
                        bnd = [p for p in temps if getattr(p, yk) and p.d_estimate != "value"]
                        plots[key] = _plot_arrhenius(fit_objs[key], pts, key, structure.formula,
                                                     t_rep, fit_objs.get(key.replace("arrhenius", "vft")),
                                                     calculator=calculator, bounds=bnd)
                    except Exception as exc:  # noqa: BLE001 - a plot never kills a summary
                        messages.append(f"plot {key}: {exc}")
        if glass.tg_plot:
            plots["tg"] = glass.tg_plot
        elif glass.tg_message:
            messages.append(f"Tg not fitted: {glass.tg_message}")
        tg_rates, tg_lab, tg_lab_err, tg_rate_fit = self._tg_rates(glass, tg_quenches, messages)
        return CompositionSummaryDoc(
            formula=structure.formula, label=structure.label, x=structure.x,
            oxygen_fraction=structure.oxygen_fraction, alkali=structure.alkali,
            former=structure.former, mobile_species=structure.mobile_species[0],
            n_atoms=structure.n_atoms, density_g_cm3=glass.density_g_cm3,
            number_density_per_cm3=n_per_cm3, calculator=calculator, runs=_clean(run_rows),
            temperatures=temps, fits=series.fits, **series.values,
            tg_K=glass.tg_K, tg_err_K=glass.tg_err_K,
            tg_rates=tg_rates, tg_lab_K=tg_lab, tg_lab_err_K=tg_lab_err,
            tg_rate_fit=tg_rate_fit,
            structure=_clean(struct), plots=plots,
            messages=messages,
            provenance=_prov(provenance, calculator=(glass.provenance or {}).get("calculator",
                                                                                  calculator)))


def _tg_rates_impl(glass, tg_quenches, messages: list[str]):
    """Tg(q) points of the main quench and the extra ones, and Tg at 10 K/min."""
    from viglas.analysis.tg_rate import fit_tg_rate

    docs = [glass] + [d for d in (tg_quenches or []) if d is not None]
    if tg_quenches and len(docs) - 1 < len(tg_quenches):
        messages.append(f"{len(tg_quenches) - len(docs) + 1} of {len(tg_quenches)} Tg "
                        "quenches failed or missing")
    rows = [{"cool_rate_K_ps": float(d.cool_rate_K_ps), "tg_K": _finite(d.tg_K),
             "tg_err_K": _finite(d.tg_err_K), "tg_message": d.tg_message} for d in docs]
    if not tg_quenches:
        return rows if glass.tg_K is not None else [], None, None, None
    ok = [r for r in rows if r["tg_K"] is not None and r["tg_err_K"]]
    if len(ok) < 2:
        messages.append(f"Tg at 10 K/min not extrapolated: Tg fitted at {len(ok)} cooling "
                        "rate(s), need >= 2 (>= 3 advised)")
        return rows, None, None, None
    try:
        fit = fit_tg_rate([r["cool_rate_K_ps"] for r in ok], [r["tg_K"] for r in ok],
                          [r["tg_err_K"] for r in ok])
        lab, lab_err = fit.lab(10.0)
    except ViglasError as exc:
        messages.append(f"Tg at 10 K/min: {exc.one_line()}")
        return rows, None, None, None
    messages.append(f"Tg at 10 K/min extrapolated over ~13 decades of cooling rate with the "
                    f"{fit.law} law: {lab:.0f} +- {lab_err:.0f} K (statistical band only)")
    return rows, _finite(lab), _finite(lab_err), _clean(fit.to_dict())


def _structure_metrics(path: str, messages: list[str]) -> dict[str, Any]:
    """Bridging-O fraction, mean former coordination (by O and Cl, default bond cutoffs of
    ``viglas.analysis.structure``) and the M-O-M network clusters of the glass."""
    from viglas import analysis as an
    from viglas.analysis.structure import DEFAULT_BOND_CUTOFFS, FORMERS

    atoms = _read_atoms(path)
    symbols = set(atoms.get_chemical_symbols())
    out: dict[str, Any] = {"bridging_o_fraction": None, "mean_m_coordination": None,
                           "largest_cluster_fraction": None, "network_spans": None}
    if "O" in symbols:
        try:
            out["bridging_o_fraction"] = _finite(an.bridging_oxygen(atoms)["bridging_O_fraction"])
        except (ViglasError, KeyError) as exc:
            messages.append(f"bridging O: {exc}")
        try:
            net = an.network_clusters(atoms)
            out["largest_cluster_fraction"] = _finite(net.largest_cluster_fraction)
            out["largest_former_fraction"] = _finite(net.largest_former_fraction)
            out["network_spans"] = bool(net.spans)
        except ViglasError as exc:
            messages.append(f"network clusters: {exc}")
    else:
        out.update(bridging_o_fraction=0.0, largest_cluster_fraction=0.0, network_spans=False)
    # mean coordination of the formers by O + Cl
    total, n_m = 0.0, 0
    try:
        for m in (f for f in FORMERS if f in symbols):
            cn_m = None
            for anion in ("O", "Cl"):
                cut = DEFAULT_BOND_CUTOFFS.get(f"{m}-{anion}")
                if anion in symbols and cut:
                    c = an.coordination_numbers(atoms, m, anion, cut)
                    cn_m = (cn_m or 0.0) + c["mean"]
            if cn_m is not None:
                k = atoms.get_chemical_symbols().count(m)
                total += cn_m * k
                n_m += k
        out["mean_m_coordination"] = total / n_m if n_m else None
    except ViglasError as exc:
        messages.append(f"coordination: {exc}")
    return out


def _plot_arrhenius(fit, pts, key, formula, t_rep, vft=None, calculator=None,
                    bounds=()) -> str:
    """Arrhenius (and VFT) plot via viglas.analysis.plot_arrhenius, with the band to
    t_rep (dashed where extrapolated, a marker at t_rep), the points that are only
    bounds (``bounds``: some replica there has no diffusive regime) drawn as such, and a title naming the
    composition, the temperatures and the calculator."""
    from viglas.analysis import plot_arrhenius

    ykey = "d_cm2_s" if key.startswith("d") else "sigma_mS_cm"
    t = np.array([p.t_K for p in pts])
    y = np.array([getattr(p, ykey) for p in pts])
    ye = np.array([getattr(p, ykey.replace("_cm2_s", "_err_cm2_s").replace("_mS_cm", "_err_mS_cm"))
                   or 0.0 for p in pts])
    path = Path.cwd() / f"arrhenius_{'D' if key.startswith('d') else 'sigma'}.png"
    title = (f"{formula}: {'D' if key.startswith('d') else 'σ'} at "
             f"{', '.join(f'{x:g}' for x in t)} K; {calculator_label(calculator)}")
    out = plot_arrhenius(t, y, ye, fit, path, t_extrapolate_K=t_rep, vft=vft, title=title,
                         bounds=[(p.t_K, getattr(p, ykey), p.d_estimate) for p in bounds])
    return str(Path(out or path).resolve())


@dataclass
class SeriesSummaryMaker(Maker):
    """End of a sweep or a screening.

    ``kind="oxygen_sweep"``: percolation fit sigma(300 K) ~ (p - p_c)^t over the
    oxygen anion fraction p (``viglas.analysis.fit_percolation``; a FitError such as
    "not enough points above threshold" is kept as ``{"error": message}``) and the
    structural percolation of the M-O-M network per composition.
    ``kind="screening"``: ranking table by sigma(300 K) and plots sigma300 vs Ea and
    sigma300 vs Tg. Both kinds get the ranking.
    """

    name: str = "series summary"
    kind: str = "screening"
    percolation_seed: int = 0
    plots: bool = True

    @job(output_schema=SeriesSummaryDoc)
    def make(self, summaries: list[CompositionSummaryDoc | None],
             provenance: dict[str, Any] | None = None) -> SeriesSummaryDoc:
        """Fit/rank and plot; writes PNGs in the job directory."""
        ok = [s for s in summaries if s is not None]
        messages = []
        if len(ok) < len(summaries):
            messages.append(f"{len(summaries) - len(ok)} of {len(summaries)} compositions "
                            "failed; they are left out")
        ranking = sorted(
            ({"formula": s.formula, "alkali": s.alkali, "former": s.former, "x": s.x,
              "oxygen_fraction": s.oxygen_fraction,
              "sigma_300K_mS_cm": s.sigma_300K_mS_cm, "sigma_300K_err_mS_cm": s.sigma_300K_err_mS_cm,
              "ea_eV": s.ea_eV, "ea_err_eV": s.ea_err_eV, "tg_K": s.tg_K, "tg_err_K": s.tg_err_K}
             for s in ok),
            key=lambda r: -(r["sigma_300K_mS_cm"] or -1.0))
        for i, r in enumerate(ranking):
            r["rank"] = i + 1
        percolation = None
        structural = []
        plots: dict[str, str] = {}
        if self.kind == "oxygen_sweep":
            structural = [{"formula": s.formula, "oxygen_fraction": s.oxygen_fraction,
                           **{k: v for k, v in s.structure.items()}} for s in ok]
            pts = sorted((s.oxygen_fraction, s.sigma_300K_mS_cm, s.sigma_300K_err_mS_cm)
                         for s in ok if s.sigma_300K_mS_cm is not None)
            try:
                from viglas.analysis import fit_percolation

                p = np.array([q[0] for q in pts])
                sig = np.array([q[1] for q in pts])
                err = np.array([q[2] or 0.0 for q in pts])
                fit = fit_percolation(p, sig, err, seed=self.percolation_seed)
                percolation = _to_dict(fit)
                if self.plots:
                    try:
                        from viglas.analysis import plot_percolation

                        calc = next((s.calculator for s in ok if s.calculator), None)
                        out = plot_percolation(p, sig, err, fit, Path.cwd() / "percolation.png",
                                               title="oxygen sweep: σ(300 K) against p; "
                                               f"{calculator_label(calc)}")
                        plots["percolation"] = str(Path(out or Path.cwd() / "percolation.png").resolve())
                    except Exception as exc:  # noqa: BLE001
                        messages.append(f"percolation plot: {exc}")
            except ViglasError as exc:
                percolation = {"error": exc.one_line()}
                messages.append(f"percolation: {exc.one_line()}")
        if self.plots and ok:
            from viglas.analysis import plot_screening

            plots.update(plot_screening(ranking, Path.cwd()))
        return SeriesSummaryDoc(kind=self.kind, formulas=[s.formula for s in ok],
                                percolation=_clean(percolation), structural_percolation=_clean(structural),
                                ranking=_clean(ranking), plots=plots, messages=messages,
                                provenance=_prov(provenance))
