"""``viglas fit-potential`` and ``viglas check-potential``: fit the classical ionic
potential to a reference (ML) potential and check that it is usable for MD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

DEFAULT_COMPOSITIONS_TEXT = ("LiAlCl4,LiAlCl2.5O0.75,NaAlCl2.5O0.75,LiGaCl2.5O0.75,"
                             "LiInCl2.5O0.75,LiBCl2.5O0.75,NaAlCl4,"
                             "Li0.5Na0.5Al0.5Ga0.5Cl3O0.5,Li0.5Na0.5In0.5B0.5Cl2.5O0.75,"
                             "LiAl0.5Ga0.5Cl2O")


def _reference_spec(name: str, params_json: str | None) -> dict[str, Any]:
    from viglas.errors import ConfigError

    params: dict[str, Any] = {}
    if params_json:
        try:
            params = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise ConfigError("not valid JSON", field="--reference-params",
                              value=params_json, allowed='e.g. \'{"model": "0.3.0"}\'') from exc
    if name == "chgnet":
        params.setdefault("model", "0.3.0")
    return {"name": name, "params": params}


def stability_checks(params_path: str | Path, compositions: list[str], workdir: str | Path, *,
                     n_atoms: int = 64, nvt_ps: float = 100.0, t_K: float = 1000.0,
                     timestep_fs: float = 2.0, melt_quench: bool = True, seed: int = 0,
                     start_frames: dict[str, Any] | None = None, segments: int = 10,
                     mq_hold_ps: float = 5.0, mq_cool_rate_K_ps: float = 100.0,
                     mq_t_melt_K: float = 1500.0, mq_pressure_GPa: float = 0.0,
                     log: Any = print) -> dict[str, Any]:
    """Stability of the ionic potential in MD for each composition.

    For each composition: NVT (Langevin, via :func:`viglas.md.run_md`) for
    ``nvt_ps`` ps at ``t_K`` with ``timestep_fs``, then (``melt_quench``) a
    melt-quench (:func:`viglas.md.melt_quench`, NPT at 0 GPa: heat to
    ``mq_t_melt_K``, hold ``mq_hold_ps``, cool to 300 K at ``mq_cool_rate_K_ps``, all at
    ``mq_pressure_GPa``). Start: ``start_frames[composition]`` (e.g. a reference frame) or
    :func:`viglas.structures.build_glass` (substitution model), relaxed with the ionic
    potential. Checks: finite energies, no pair
    closer than 0.6 × contact distance (collapse; CONTACT_A, cation–cation 2.6 Å), the
    melt-quench glass not below half the start density (explosion), mean former
    coordination and the
    share of 4-coordinated Al in the last frames. The NVT run goes in ``segments``
    pieces (run_md extends the run in the same folder) and ``<workdir>/<composition>/
    stability.json`` is rewritten after each, so a long check can be read while it runs
    (:func:`collect_stability`).
    """
    import numpy as np
    from ase.optimize import FIRE

    from viglas.potentials.fit import CONTACT_A
    from viglas.potentials.ionic import IonicPotential
    from viglas.potentials.parameters import load_parameters, pair_key
    from viglas.potentials.validate import mean_coordination
    from viglas.trajectory import H5MDTrajectory
    from viglas.units import density_g_cm3, md_steps
    from viglas.md import BOIL_DENSITY_FRACTION, run_md
    from viglas.md import melt_quench as mq

    params = load_parameters(params_path)
    out: dict[str, Any] = {}
    workdir = Path(workdir)

    def frames_of(traj_path: Path, last: int = 20) -> list:
        with H5MDTrajectory(traj_path) as tr:
            return [tr.atoms(k) for k in range(max(0, tr.n_frames - last), tr.n_frames)]

    def check(frames: list) -> dict[str, Any]:
        from matscipy.neighbours import neighbour_list

        res: dict[str, Any] = {"finite": bool(all(np.all(np.isfinite(f.positions))
                                                   for f in frames))}
        dmin_rel = np.inf
        closest = ""
        for f in frames:
            sym = np.array(f.get_chemical_symbols())
            i, j, d = neighbour_list("ijd", f, 3.0)
            if len(i):
                ref = np.array([CONTACT_A.get(pair_key(a, b), 2.6) for a, b in zip(sym[i], sym[j])])
                k = int(np.argmin(d / ref))
                if d[k] / ref[k] < dmin_rel:
                    dmin_rel = float(d[k] / ref[k])
                    closest = f"{pair_key(sym[i][k], sym[j][k])} {d[k]:.2f} A"
        res["min_distance_over_contact"] = dmin_rel
        res["closest_pair"] = closest
        # collapse: a pair closer than 0.6 x its typical contact distance (e.g. Al-O
        # < 1.06 A, Cl-Cl < 2.1 A, cation-cation < 1.56 A) or non-finite positions
        res["collapsed"] = bool(dmin_rel < 0.6 or not res["finite"])
        sym = set(frames[0].get_chemical_symbols())
        coord = {}
        for m in ("Al", "Ga", "In", "B"):
            if m in sym:
                c = mean_coordination(frames, m, [x for x in ("O", "Cl") if x in sym])
                coord[m] = {"mean": c["mean"], "fraction_4": c["fraction"].get(4, 0.0),
                            "fraction": c["fraction"]}
        res["coordination"] = coord
        res["volume_A3"] = float(frames[-1].get_volume())
        return res

    for comp in compositions:
        entry: dict[str, Any] = {}
        cdir = workdir / comp
        cdir.mkdir(parents=True, exist_ok=True)
        status = cdir / "stability.json"

        def save() -> None:
            status.write_text(json.dumps(entry, indent=1, default=float))

        try:
            if start_frames and comp in start_frames:
                atoms = start_frames[comp].copy()
                atoms.calc = None
            else:
                from viglas.structures import build_glass

                atoms = build_glass(comp, n_atoms, seed=seed)
            atoms.info = {}
            atoms.calc = IonicPotential(params)
            FIRE(atoms, logfile=None).run(fmax=0.05, steps=300)
            atoms.calc = None
            steps = md_steps(nvt_ps * 1000.0, timestep_fs)
            per = max(1, steps // segments)
            d = cdir / "nvt"
            done = 0
            if (d / "traj.h5").exists():  # resume: continue from the steps already done
                with H5MDTrajectory(d / "traj.h5") as tr:
                    done = min(steps, int(tr.steps[-1]) // per * per)
            while True:  # at least one call: a finished run returns its result
                done = min(steps, done + per)
                r = run_md(atoms, IonicPotential(params), ensemble="nvt",
                           thermostat="langevin", temperature_K=t_K, timestep_fs=timestep_fs,
                           steps=done, save_every=max(1, steps // 500), workdir=d, seed=seed,
                           progress=False)
                fr = frames_of(Path(r.trajectory), last=50)
                entry["nvt"] = {"t_K": t_K, "time_ps_target": nvt_ps,
                                "time_ps_done": r.time_fs / 1000.0,
                                "timestep_fs": timestep_fs, "steps_done": r.steps_done,
                                "thermostat": "langevin (run_md, friction 0.01/fs)",
                                "mean_temperature_K": r.mean_temperature_K,
                                "n_atoms": r.n_atoms, "frames_checked": len(fr), **check(fr)}
                save()
                if done >= steps:
                    break
            log(f"{comp}: NVT {nvt_ps} ps at {t_K} K done: {entry['nvt']['coordination']}")
            if melt_quench:
                dq = cdir / "melt_quench"
                start_density = density_g_cm3(float(np.sum(fr[-1].get_masses())),
                                              fr[-1].get_volume())
                q = mq(fr[-1], IonicPotential(params), t_melt_K=mq_t_melt_K, t_final_K=300.0,
                       hold_ps=mq_hold_ps, cool_rate_K_ps=mq_cool_rate_K_ps,
                       pressure_GPa=mq_pressure_GPa,
                       timestep_fs=timestep_fs, workdir=dq, seed=seed, progress=False)
                glass_frames = frames_of(Path(q.trajectory), last=10)
                entry["melt_quench"] = {"t_melt_K": mq_t_melt_K, "t_final_K": 300.0,
                                        "hold_ps": mq_hold_ps,
                                        "cool_rate_K_ps": mq_cool_rate_K_ps,
                                        "pressure_GPa": mq_pressure_GPa,
                                        "timestep_fs": timestep_fs,
                                        "ensemble": "npt (run_md langevin barostat)",
                                        "density_g_cm3": q.final_density_g_cm3,
                                        "start_density_g_cm3": start_density,
                                        "frames_checked": len(glass_frames),
                                        **check(glass_frames)}
                # a glass at under half the start density has boiled / blown apart
                entry["melt_quench"]["exploded"] = bool(
                    q.final_density_g_cm3 < BOIL_DENSITY_FRACTION * start_density)
                log(f"{comp}: melt-quench done: {entry['melt_quench']['coordination']}")
            entry["stable"] = bool(entry["nvt"]["finite"] and not entry["nvt"]["collapsed"]
                                   and (not melt_quench or (entry["melt_quench"]["finite"] and
                                        not entry["melt_quench"]["collapsed"]
                                        and not entry["melt_quench"]["exploded"])))
        except Exception as exc:  # a failure is a result here: report it
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["stable"] = False
            log(f"{comp}: {entry['error']}")
        save()
        out[comp] = entry
    return out


def collect_stability(workdir: str | Path) -> dict[str, Any]:
    """The ``stability.json`` of every composition under ``workdir`` (also of runs
    still in progress: ``nvt.time_ps_done`` says how far they got)."""
    out = {}
    for p in sorted(Path(workdir).glob("*/stability.json")):
        out[p.parent.name] = json.loads(p.read_text())
    return out


def register(app: typer.Typer) -> None:
    """Add ``fit-potential`` and ``check-potential`` to the CLI."""

    @app.command("fit-potential")
    def fit_potential(
        reference: str = typer.Option("chgnet", "--reference", "-r",
                                      help="Reference calculator from the registry "
                                           "(chgnet, sevennet, mace-mp, ...)."),
        reference_params: Optional[str] = typer.Option(
            None, "--reference-params",
            help='JSON parameters of the reference, e.g. \'{"model": "0.3.0"}\'.'),
        compositions: str = typer.Option(DEFAULT_COMPOSITIONS_TEXT, "--compositions", "-c",
                                         help="Comma-separated formulas to sample."),
        output: Path = typer.Option(Path("params.yaml"), "--output", "-o",
                                    help="Where to write the fitted parameters (YAML)."),
        report: Optional[Path] = typer.Option(None, "--report",
                                              help="Fitting report JSON (default: next to "
                                                   "the output, *_report.json)."),
        plots_dir: Optional[Path] = typer.Option(None, "--plots-dir",
                                                 help="Folder for the PNG plots "
                                                      "(default: the output's folder)."),
        cache_dir: Optional[Path] = typer.Option(None, "--cache-dir",
                                                 help="Label cache (default "
                                                      "~/.cache/viglas/labels)."),
        n_atoms: int = typer.Option(64, help="Atoms per reference cell (about)."),
        rounds: int = typer.Option(3, help="Max. refit rounds with MD of the fitted "
                                           "potential (stops when the held-out error "
                                           "stops improving)."),
        seed: int = typer.Option(0, help="Seed of every random choice."),
        threads: int = typer.Option(1, help="torch threads for the reference."),
        iter_steps: int = typer.Option(400, help="MD steps (2 fs) per refit-round run."),
        plot_prefix: str = typer.Option("", help="Prefix of the PNG file names."),
        validation_steps: int = typer.Option(1000, help="Steps (2 fs) of the 1000 K MD "
                                                        "with the fitted potential whose "
                                                        "RDF is compared to the reference."),
        three_body: bool = typer.Option(False, "--three-body/--no-three-body",
                                        help="Add the angle term around Al/Ga/In/B "
                                             "(tetrahedral target; strength fitted)."),
        initial: Optional[Path] = typer.Option(
            None, "--initial", help="viglas-ionic/1 YAML with starting values; its "
                                    "'fixed' lists (pairs and three_body) are kept fixed. "
                                    "Overrides --three-body."),
        composition_weights: Optional[str] = typer.Option(
            None, "--composition-weights",
            help="Extra weight of the force/stress residuals of some compositions, e.g. "
                 "'LiBCl2.5O0.75=3' (default 1 for all)."),
    ) -> None:
        """Fit the ionic potential (Buckingham + wall + DSF Coulomb) to a reference ML
        potential by force matching, and write the parameters and a report.

        Reference configurations (relaxed random cells, MD at 1500/1000/600 K, strains,
        rattles) are labelled once and cached; the 1000 K frames are held out for
        validation. Example:

            viglas fit-potential --reference chgnet -c LiAlCl4,LiAlCl2.5O0.75 -o my.yaml
        """
        import sys

        from viglas.potentials.fit import fit_to_reference
        from viglas.potentials.parameters import save_parameters
        from viglas.potentials.validate import plot_parity, validation_report, write_report

        spec = _reference_spec(reference, reference_params)
        comps = [c.strip() for c in compositions.split(",") if c.strip()]
        command = "viglas " + " ".join(sys.argv[1:]) if sys.argv[1:] else "viglas fit-potential"
        from viglas.errors import ConfigError
        from viglas.potentials.fit import FitSettings

        weights: dict[str, float] = {}
        for item in (composition_weights or "").split(","):
            if not item.strip():
                continue
            name, _, val = item.partition("=")
            name = name.strip()
            try:
                weights[name] = float(val)
            except ValueError:
                raise ConfigError("composition weight is not 'FORMULA=number'",
                                  field="composition_weights", value=item,
                                  hint="e.g. --composition-weights 'LiBCl2.5O0.75=3'") from None
            if name not in comps or weights[name] <= 0:
                raise ConfigError("composition weight for a composition that is not fitted, "
                                  "or not > 0", field="composition_weights", value=item,
                                  allowed=", ".join(comps))
        start = None
        if initial is not None:
            from viglas.potentials.parameters import load_parameters

            start = load_parameters(initial)
        res = fit_to_reference(comps, spec, cache_dir=cache_dir, n_atoms=n_atoms, seed=seed,
                               rounds=rounds, num_threads=threads, command=command,
                               iter_steps=iter_steps, three_body=three_body, initial=start,
                               settings=FitSettings(composition_weights=weights),
                               log=typer.echo)
        params = res["parameters"]
        save_parameters(params, output)
        typer.echo(f"parameters written to {output}")
        plots = Path(plots_dir) if plots_dir else Path(output).parent
        rep = validation_report(params, res["valid"], plots_dir=plots, seed=seed,
                                train=res["train"], plot_prefix=plot_prefix,
                                md_steps=validation_steps, md_snapshots=15)
        rep["plots"]["parity_train"] = plot_parity(
            res["train"], params, plots / f"{plot_prefix}parity_train.png",
            "training forces").name
        rep["history"] = res["history"]
        rep["parameters_file"] = Path(output).name
        rep["provenance"] = params.provenance
        report_path = report or Path(output).with_name(Path(output).stem + "_report.json")
        write_report(rep, report_path)
        typer.echo(f"report written to {report_path}")
        for comp, m in rep["held_out"]["compositions"].items():
            typer.echo(f"  {comp:34s} held-out force R2 {m['force_r2']:.3f} "
                       f"RMSE {m['force_rmse_eV_A']:.3f} eV/A")

    @app.command("check-potential")
    def check_potential(
        parameters: Path = typer.Argument(..., help="Ionic parameter YAML to check."),
        compositions: str = typer.Option("LiAlCl4,LiAlCl2.5O0.75,NaAlCl2.5O0.75,"
                                         "LiGaCl2.5O0.75,LiInCl2.5O0.75,LiBCl2.5O0.75",
                                         "--compositions", "-c",
                                         help="Comma-separated formulas."),
        report: Path = typer.Option(..., "--report", help="JSON report to add the "
                                                           "results to."),
        section: str = typer.Option("stability", "--section",
                                    help="Report key the results go under (merged with "
                                         "what is there)."),
        workdir: Path = typer.Option(Path("runs/check-potential"), help="MD run folder."),
        nvt_ps: float = typer.Option(100.0, help="NVT length in ps."),
        t_k: float = typer.Option(1000.0, "--t-K", help="NVT temperature in K."),
        timestep_fs: float = typer.Option(2.0, help="MD time step in fs."),
        melt_quench: bool = typer.Option(True, help="Also run a melt-quench."),
        t_melt_k: float = typer.Option(1500.0, "--t-melt-K",
                                       help="Melt temperature of the melt-quench, K."),
        pressure_gpa: float = typer.Option(0.0, "--pressure-GPa",
                                           help="Pressure of the NPT melt-quench, GPa."),
        n_atoms: int = typer.Option(64, help="Atoms per cell (about)."),
        seed: int = typer.Option(0, help="Seed."),
    ) -> None:
        """Run NVT and melt-quench MD with an ionic parameter set for each composition
        and record whether it stays stable (no NaN, no collapse) and how the formers
        are coordinated."""
        from viglas.errors import ConfigError
        from viglas.potentials.validate import write_report

        comps = [c.strip() for c in compositions.split(",") if c.strip()]
        if not section.strip():
            raise ConfigError("empty report section", field="--section", value=section,
                              hint="name a key such as 'stability'")
        res = stability_checks(parameters, comps, workdir, n_atoms=n_atoms, nvt_ps=nvt_ps,
                               t_K=t_k, timestep_fs=timestep_fs, melt_quench=melt_quench,
                               mq_t_melt_K=t_melt_k, mq_pressure_GPa=pressure_gpa,
                               seed=seed, log=typer.echo)
        data = json.loads(Path(report).read_text()) if Path(report).exists() else {}
        data.setdefault(section, {}).update(res)
        write_report(data, report)
        typer.echo(f"stability results added to {report} under '{section}'")
