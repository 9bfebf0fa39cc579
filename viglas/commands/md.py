"""``viglas md`` and ``viglas melt-quench``: run molecular dynamics from the command line.

Both commands checkpoint as they go: if a run is interrupted (Ctrl-C, a crash, a killed
job), run the same command again and it continues from the last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import typer

_CALC_HELP = ("Calculator: ionic (classical potential, fast), chgnet or sevennet (ML, weights "
              "ship with the package), mace-mp / mattersim / orb (need --model-file), emt, or "
              "'package.module:factory' (with --allow-import).")
_IMPORT_HELP = ("Allow a 'package.module:factory' --calculator: viglas imports and runs "
                "that code.")


def _opt_in(allow_import: bool) -> None:
    """--allow-import: let this process import 'package.module:factory' calculators."""
    if allow_import:
        import os

        from viglas.calculators import ALLOW_IMPORT_ENV

        os.environ[ALLOW_IMPORT_ENV] = "1"


def _spec(calculator: str, parameters: str | None, device: str | None,
          model_file: Path | None, calc_param: list[str] | None) -> dict:
    from viglas.errors import ConfigError

    params: dict = {}
    if parameters is not None:
        params["parameters"] = parameters
    if device is not None:
        params["device"] = device
    if model_file is not None:
        params["model_file"] = str(model_file)
    for item in calc_param or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError("calculator parameters are given as KEY=VALUE",
                              field="--calc-param", value=item)
        import yaml

        params[key.strip()] = yaml.safe_load(val)
    return {"name": calculator, "params": params}


def _require_positive(**values: float | None) -> None:
    """One line naming the option for a temperature, time step, rate or count <= 0."""
    from viglas.errors import ConfigError

    for name, v in values.items():
        if v is not None and not v > 0:
            opt = "--" + name.replace("_", "-")
            kelvin = "temperature" in name or name.startswith("t_")
            raise ConfigError("must be > 0", field=opt, value=v,
                              allowed="a positive number" + (" in K" if kelvin else ""))


def _read(structure: Path):
    try:
        from viglas.structures import read_structure
    except ImportError:  # pragma: no cover - structures package absent
        from ase.io import read as read_structure
    return read_structure(structure)


def _echo_result(r) -> None:
    typer.echo(f"steps        {r.steps_done} ({r.time_fs / 1000:.3f} ps, dt {r.timestep_fs} fs)"
               + ("  [resumed]" if r.resumed else ""))
    typer.echo(f"frames       {r.n_frames} -> {r.trajectory}")
    typer.echo(f"log          {r.log}")
    typer.echo(f"mean T       {r.mean_temperature_K:.1f} K")
    if r.mean_pressure_GPa is not None:
        typer.echo(f"mean P       {r.mean_pressure_GPa:.3f} GPa")
    typer.echo(f"mean density {r.mean_density_g_cm3:.4f} g/cm^3 (volume {r.mean_volume_A3:.1f} A^3)")
    if r.energy_drift_eV_atom_ps is not None:
        typer.echo(f"energy drift {r.energy_drift_eV_atom_ps * 1000:.4f} meV/atom/ps "
                   "(conserved quantity)")
    typer.echo(f"wall time    {r.wall_time_s:.1f} s")


def md(
    structure: Path = typer.Argument(..., metavar="STRUCTURE",
                                     help="Start structure (.cif, .extxyz, POSCAR, ...)."),
    output: Path = typer.Option("traj.h5", "--output", "-o",
                                help="Trajectory file (H5MD). Log, checkpoint and summary are "
                                     "written next to it (NAME.log.csv, NAME.ckpt.npz, "
                                     "NAME.result.json)."),
    calculator: str = typer.Option("ionic", "--calculator", "-c", help=_CALC_HELP),
    parameters: str = typer.Option(None, "--parameters", "-p",
                                   help="Ionic potential: 'default' (the default potential, "
                                        "dft-delta, fitted to PBE-D3), 'dft-delta-linear' "
                                        "(the same without its ACE-MLP part, faster), "
                                        "'chgnet-ionic' (plain "
                                        "set fitted to CHGNet), 'trial', or a file (viglas-"
                                        "ionic/1 YAML, ionic+delta JSON). Default: dft-delta."),
    ensemble: str = typer.Option("nvt", "--ensemble", "-e", help="nve, nvt or npt."),
    thermostat: str = typer.Option("langevin", "--thermostat",
                                   help="langevin, bussi (NVT only) or nose-hoover "
                                        "(NPT: isotropic MTK)."),
    temperature: float = typer.Option(300.0, "--temperature", "-T",
                                      help="Target temperature in K (NVE: initial velocities)."),
    temperature_end: float = typer.Option(None, "--temperature-end",
                                          help="If given, ramp the target linearly from "
                                               "--temperature to this value (K) over the run."),
    pressure: float = typer.Option(None, "--pressure", "-P", help="Pressure in GPa (npt)."),
    timestep_fs: float = typer.Option(1.0, "--timestep-fs", help="Time step in fs."),
    steps: int = typer.Option(..., "--steps", "-n", help="Number of MD steps."),
    save_every: int = typer.Option(10, "--save-every", help="Steps between saved frames."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every",
                                         help="Steps between checkpoints (a multiple of "
                                              "--save-every; default about 20 per run)."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed (velocities, thermostat)."),
    velocities: bool = typer.Option(False, "--velocities/--no-velocities",
                                    help="Also store velocities in the trajectory."),
    device: str = typer.Option(None, "--device", help="cpu or cuda (ML calculators)."),
    model_file: Path = typer.Option(None, "--model-file",
                                    help="Local weights file for an ML calculator."),
    calc_param: list[str] = typer.Option(None, "--calc-param",
                                         help="Extra calculator parameter KEY=VALUE "
                                              "(repeatable), e.g. --calc-param threads=2."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    allow_import: bool = typer.Option(False, "--allow-import", help=_IMPORT_HELP),
) -> None:
    """Run molecular dynamics on STRUCTURE and write an H5MD trajectory.

    Rerunning the same command after an interruption resumes from the last checkpoint; rerunning with a larger --steps extends a finished run.

    Example: viglas md laco.cif --calculator ionic --ensemble nvt --temperature 1000 --timestep-fs 1 --steps 20000 --save-every 50 -o laco_1000K.h5
    """
    from viglas.calculators import check_elements, get_calculator
    from viglas.md import run_md
    from viglas.md import Schedule

    _opt_in(allow_import)
    _require_positive(temperature=temperature, temperature_end=temperature_end,
                      timestep_fs=timestep_fs, steps=steps, save_every=save_every,
                      checkpoint_every=checkpoint_every)
    from viglas.errors import check_writable_dir

    spec = _spec(calculator, parameters, device, model_file, calc_param)
    atoms = _read(structure)
    check_elements(spec, atoms.get_chemical_symbols())
    check_writable_dir(output.parent if str(output.parent) else Path("."), field="--output")
    t = (Schedule.ramp(temperature, temperature_end, steps * timestep_fs)
         if temperature_end is not None else temperature)
    ms = len(atoms) * 0.04  # ionic potential: 3-9 ms per step at 210 atoms on a busy 2-core box
    typer.echo(f"plan         {steps} steps of {timestep_fs:g} fs = {steps * timestep_fs / 1000:g} "
               f"ps, {len(atoms)} atoms; with the ionic potential up to ~{ms:.0f} ms per step on "
               f"a busy 2-core machine, i.e. ~{steps * ms / 60000:.1f} min (ML potentials: "
               "10-100x slower). Rerun the same command to resume.", err=True)
    res = run_md(atoms, spec if calculator != "ionic" else get_calculator(spec),
                 ensemble=ensemble, thermostat=thermostat, temperature_K=t,
                 pressure_GPa=pressure, timestep_fs=timestep_fs, steps=steps,
                 save_every=save_every, checkpoint_every=checkpoint_every,
                 workdir=output.parent if str(output.parent) else Path("."),
                 trajectory=output.name, seed=seed, store_velocities=velocities,
                 progress=progress, metadata={"structure": str(structure),
                                              "calculator_spec": spec})
    _echo_result(res)


def melt_quench(
    structure: Path = typer.Argument(..., metavar="STRUCTURE",
                                     help="Start structure (.cif, .extxyz, POSCAR, ...)."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Where to write the quenched glass (.cif, .extxyz, "
                                     "POSCAR)."),
    trajectory: Path = typer.Option(None, "--trajectory",
                                    help="H5MD trajectory of the whole schedule (default: "
                                         "OUTPUT stem + '_mq.h5' next to OUTPUT)."),
    calculator: str = typer.Option("ionic", "--calculator", "-c", help=_CALC_HELP),
    parameters: str = typer.Option(None, "--parameters", "-p",
                                   help="Ionic potential: 'default' (dft-delta), "
                                        "'dft-delta-linear', 'chgnet-ionic', 'trial' or a "
                                        "parameter file."),
    t_melt: float = typer.Option(..., "--t-melt", help="Melt temperature in K."),
    t_final: float = typer.Option(300.0, "--t-final", help="Final temperature in K."),
    hold_ps: float = typer.Option(10.0, "--hold-ps", help="Time held at --t-melt, ps."),
    cool_rate: float = typer.Option(10.0, "--cool-rate", help="Cooling rate in K/ps."),
    heat_rate: float = typer.Option(1000.0, "--heat-rate",
                                    help="Heating rate from --t-final to --t-melt, K/ps."),
    pressure: float = typer.Option(0.0, "--pressure", "-P",
                                   help="Pressure in GPa (the default potential holds the "
                                        "melts at 0 GPa; chgnet-ionic needs 0.5)."),
    thermostat: str = typer.Option("langevin", "--thermostat",
                                   help="langevin (Langevin-BAOAB barostat) or nose-hoover "
                                        "(MTK)."),
    timestep_fs: float = typer.Option(1.0, "--timestep-fs", help="Time step in fs."),
    save_every: int = typer.Option(100, "--save-every", help="Steps between saved frames."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed."),
    device: str = typer.Option(None, "--device", help="cpu or cuda (ML calculators)."),
    model_file: Path = typer.Option(None, "--model-file", help="Local ML weights file."),
    calc_param: list[str] = typer.Option(None, "--calc-param", help="KEY=VALUE (repeatable)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    allow_import: bool = typer.Option(False, "--allow-import", help=_IMPORT_HELP),
) -> None:
    """Make a glass: heat STRUCTURE to --t-melt, hold, cool at --cool-rate to --t-final (NPT).

    Writes the glass to OUTPUT, the trajectory, and a CSV log whose temperature_K, volume_A3 and potential_energy_eV columns give V(T) and E(T) for a Tg fit. Rerun the same command to resume after an interruption.

    Example: viglas melt-quench laco.cif --t-melt 1000 --t-final 300 --hold-ps 20 --cool-rate 10 -o laco_glass.cif
    """
    from viglas.calculators import check_elements, get_calculator
    from viglas.md import melt_quench as _mq

    _opt_in(allow_import)
    _require_positive(t_melt=t_melt, t_final=t_final, cool_rate=cool_rate, heat_rate=heat_rate,
                      timestep_fs=timestep_fs, save_every=save_every)
    if hold_ps < 0:
        from viglas.errors import ConfigError

        raise ConfigError("must be >= 0", field="--hold-ps", value=hold_ps, allowed="ps >= 0")
    spec = _spec(calculator, parameters, device, model_file, calc_param)
    atoms = _read(structure)
    check_elements(spec, atoms.get_chemical_symbols())
    try:
        from viglas.structures.io import check_output_path

        check_output_path(output)
    except ImportError:  # pragma: no cover
        pass
    traj = trajectory or output.with_name(output.stem + "_mq.h5")
    from viglas.md import melt_quench_schedule

    sched, _, _ = melt_quench_schedule(t_start_K=t_final, t_melt_K=t_melt, t_final_K=t_final,
                                       heat_rate_K_ps=heat_rate, hold_ps=hold_ps,
                                       cool_rate_K_ps=cool_rate)
    from viglas.units import md_steps

    n_steps = md_steps(sched.duration_fs, timestep_fs, "up")  # as melt_quench runs
    ms = len(atoms) * 0.04
    typer.echo(f"plan         heat to {t_melt:g} K, hold {hold_ps:g} ps, cool at {cool_rate:g} K/ps "
               f"to {t_final:g} K, NPT at {pressure:g} GPa: {sched.duration_fs / 1000:.1f} ps = "
               f"{n_steps} steps of {timestep_fs:g} fs; with the ionic potential up to ~{ms:.0f} ms per "
               f"step for {len(atoms)} atoms on a busy 2-core machine, i.e. "
               f"up to ~{n_steps * ms / 60000:.1f} min. Rerun the same command to resume.", err=True)
    from viglas.errors import check_writable_dir

    check_writable_dir(traj.parent if str(traj.parent) else Path("."), field="--trajectory")
    res = _mq(atoms, spec if calculator != "ionic" else get_calculator(spec), t_melt_K=t_melt,
              t_final_K=t_final, hold_ps=hold_ps, cool_rate_K_ps=cool_rate,
              heat_rate_K_ps=heat_rate, pressure_GPa=pressure, timestep_fs=timestep_fs,
              workdir=traj.parent if str(traj.parent) else Path("."), trajectory=traj.name,
              seed=seed, thermostat=thermostat, save_every=save_every, progress=progress)
    try:
        from viglas.structures import write_structure
    except ImportError:  # pragma: no cover
        from ase.io import write as write_structure
    write_structure(res.atoms, output)
    _echo_result(res.md)
    typer.echo(f"glass        {output} (density {res.final_density_g_cm3:.4f} g/cm^3)")
    typer.echo(f"V(T), E(T)   {len(res.temperature_K)} rows of the cooling stage in {res.log}")


def register(app: typer.Typer) -> None:
    """Add the ``md`` and ``melt-quench`` commands to the viglas CLI."""
    app.command("md")(md)
    app.command("melt-quench")(melt_quench)
