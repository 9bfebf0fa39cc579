"""MD stability of an ionic parameter set: for each composition an NVT run and a
melt-quench (:mod:`viglas.md`), with checks for non-finite positions, collapse (pairs
far inside their contact distance), explosion (density) and the former coordination.

:func:`stability_checks` runs them (``viglas check-potential`` calls it);
:func:`collect_stability` reads back the per-composition ``stability.json`` files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["stability_checks", "collect_stability"]


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

    from viglas.files import atomic_write_text
    from viglas.chemistry import CONTACT_A
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
            atomic_write_text(status, json.dumps(entry, indent=1, default=float))

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
