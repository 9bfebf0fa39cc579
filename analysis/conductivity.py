"""Ionic conductivity: Nernst–Einstein from tracer D, charge MSD, Haven ratio.

* Nernst–Einstein: ``sigma = n (z e)^2 D / (k_B T H)`` with ``n`` the number density
  of the mobile ion and ``H`` the Haven ratio (1 = uncorrelated ions).
* From the collective (charge) MSD of the species:
  ``sigma = n (z e)^2 D_sigma / (k_B T)`` with ``D_sigma`` the slope of
  ``|sum_i Δr_i|^2 / N`` over 2d, which includes ion–ion correlations.
* Haven ratio ``H = D / D_sigma``.

Units: D cm²/s, n cm⁻³, T K, sigma mS/cm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from viglas.analysis._records import DictRecord
from viglas.errors import AnalysisError
from viglas.units import A3_TO_CM3, E_CHARGE_C, KB_J_K

from .diffusion import DiffusionResult, collective_diffusion, diffusion_coefficient
from .msd import MSDResult, msd_fft, pool_msd

__all__ = ["nernst_einstein_sigma_mS_cm", "number_density_per_cm3", "TransportResult",
           "analyze_trajectory", "analyze_positions", "analyze_msd_table", "write_transport",
           "read_structure", "species_in_structure"]


def nernst_einstein_sigma_mS_cm(d_cm2_s: float | np.ndarray, n_per_cm3: float,
                                temperature_K: float | np.ndarray, charge: float = 1,
                                haven: float = 1.0) -> float | np.ndarray:
    """Nernst–Einstein conductivity in mS/cm.

    ``sigma = n (z e)^2 D / (k_B T H)``; D in cm²/s, n in cm⁻³, T in K. Linear in D,
    so an error on D maps to ``sigma * d_err / d``.
    """
    t = np.asarray(temperature_K, dtype=float)
    if np.any(t <= 0):
        raise AnalysisError("temperature must be positive", field="temperature_K",
                            value=temperature_K, allowed="> 0 K")
    if not n_per_cm3 > 0:
        raise AnalysisError("number density must be positive", field="n_per_cm3",
                            value=n_per_cm3, allowed="> 0 per cm^3")
    s_cm = n_per_cm3 * (charge * E_CHARGE_C) ** 2 * np.asarray(d_cm2_s) / (KB_J_K * t * haven)
    out = s_cm * 1e3
    return float(out) if np.ndim(out) == 0 else out


def number_density_per_cm3(n_ions: int, volume_A3: float) -> float:
    """Number density (cm⁻³) of ``n_ions`` in a cell of ``volume_A3`` Å³."""
    if not volume_A3 > 0:
        raise AnalysisError("cell volume must be positive", field="volume_A3", value=volume_A3)
    return n_ions / (volume_A3 * A3_TO_CM3)


@dataclass
class TransportResult(DictRecord):
    """Transport of one species at one temperature (1-sigma errors).

    ``sigma_mS_cm`` is the Nernst–Einstein value from the tracer D (H = 1);
    ``sigma_charge_mS_cm`` from the collective charge MSD (noisier, includes
    correlations); ``haven_ratio = D / D_sigma`` when both are estimable.
    """

    species: str
    temperature_K: float
    charge: float
    n_ions: int
    n_replicas: int
    volume_A3: float
    n_per_cm3: float
    d_cm2_s: float
    d_err_cm2_s: float
    sigma_mS_cm: float | None
    sigma_err_mS_cm: float | None
    sigma_charge_mS_cm: float | None
    sigma_charge_err_mS_cm: float | None
    d_sigma_cm2_s: float | None
    d_sigma_err_cm2_s: float | None
    haven_ratio: float | None
    haven_ratio_err: float | None
    diffusion: dict[str, Any]
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``diffusion`` holds the full DiffusionResult dict)."""
        d = dataclasses.asdict(self)
        d["t_K"] = self.temperature_K
        return d

    @property
    def diffusion_result(self) -> DiffusionResult:
        return DiffusionResult.from_dict(self.diffusion)


def analyze_positions(msd: MSDResult, temperature_K: float, volume_A3: float, *,
                      charge: float = 1.0, sources: Sequence[str] = (), **fit_kw) -> TransportResult:
    """Transport from an (optionally pooled) MSD, the cell volume (Å³) and T (K).

    ``fit_kw`` go to :func:`diffusion_coefficient` (t_start_fs, t_end_fs, ...).
    """
    n_ions = msd.replica_particles[0] if msd.replica_particles else msd.n_particles
    n = number_density_per_cm3(n_ions, volume_A3)
    dres = diffusion_coefficient(msd, **fit_kw)
    sig = nernst_einstein_sigma_mS_cm(dres.d_cm2_s, n, temperature_K, charge)
    sig_err = abs(nernst_einstein_sigma_mS_cm(dres.d_err_cm2_s, n, temperature_K, charge))
    dsig = dsig_err = sc = sc_err = h = h_err = None
    if msd.charge_msd_A2 is not None:
        try:
            dsig, dsig_err = collective_diffusion(msd, dres.t_start_fs, dres.t_end_fs)
        except AnalysisError:
            dsig = None
    if dsig is not None:
        sc = nernst_einstein_sigma_mS_cm(dsig, n, temperature_K, charge)
        sc_err = abs(nernst_einstein_sigma_mS_cm(dsig_err, n, temperature_K, charge))
        if dsig > 0 and dres.d_cm2_s > 0 and dsig > 2 * dsig_err:
            h = dres.d_cm2_s / dsig
            h_err = h * float(np.hypot(dres.d_err_cm2_s / dres.d_cm2_s, dsig_err / dsig))
    return TransportResult(
        species=msd.species, temperature_K=float(temperature_K), charge=float(charge),
        n_ions=int(n_ions), n_replicas=len(msd.n_frames), volume_A3=float(volume_A3),
        n_per_cm3=float(n), d_cm2_s=dres.d_cm2_s, d_err_cm2_s=dres.d_err_cm2_s,
        sigma_mS_cm=float(sig), sigma_err_mS_cm=float(sig_err), sigma_charge_mS_cm=sc,
        sigma_charge_err_mS_cm=sc_err, d_sigma_cm2_s=dsig, d_sigma_err_cm2_s=dsig_err,
        haven_ratio=h, haven_ratio_err=h_err, diffusion=dres.to_dict(), sources=list(sources))


_FIT_OPTIONS = ("slope_tol", "end_fraction", "jump_length_A", "min_particles_resampling", "n_scan",
                "settle_z", "settle_factor", "n_settle", "min_jumps", "diffusive_slope_tol")


def _check_fit_kw(func: str, fit_kw: dict) -> None:
    bad = [k for k in fit_kw if k not in _FIT_OPTIONS]
    if bad:
        raise TypeError(f"{func}() got an unexpected keyword argument {bad[0]!r}; "
                        f"fit options are {', '.join(_FIT_OPTIONS)}")


def _window_fs(t_start_fs, t_end_fs, fit_start_ps, fit_end_ps) -> tuple[float | None, float | None]:
    """One window from the fs (API) or ps (CLI names) arguments; both given is an error."""
    if fit_start_ps is not None and t_start_fs is not None:
        raise AnalysisError("give the fit start once", field="fit_start_ps",
                            value=(fit_start_ps, t_start_fs), allowed="fit_start_ps or t_start_fs")
    if fit_end_ps is not None and t_end_fs is not None:
        raise AnalysisError("give the fit end once", field="fit_end_ps",
                            value=(fit_end_ps, t_end_fs), allowed="fit_end_ps or t_end_fs")
    start = t_start_fs if fit_start_ps is None else float(fit_start_ps) * 1000.0
    end = t_end_fs if fit_end_ps is None else float(fit_end_ps) * 1000.0
    return start, end


def write_transport(res: "TransportResult", msd: MSDResult, output: str | Path, *,
                    plot: bool = True, extra: dict | None = None) -> Path:
    """Write ``output/transport.json`` (the result, the MSD curve, ``extra``) and
    ``output/msd.png`` (unless ``plot`` is False); returns the JSON path."""
    import json

    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    d = res.to_dict()
    d["msd"] = msd.to_dict(max_points=200)
    if extra:
        d.update(extra)
    path = out_dir / "transport.json"
    path.write_text(json.dumps(d, indent=2, default=float) + "\n")
    if plot:
        from .plots import plot_msd

        plot_msd(msd, res.diffusion_result, out_dir / "msd.png")
    return path


def analyze_trajectory(path: str | Path | Sequence[str | Path], species: str = "Li",
                       temperature_K: float | None = None, *, fmt: str | None = None,
                       format: str | None = None, timestep_fs: float | None = None,
                       stride: int = 1, every: int = 1, start_fs: float = 0.0,
                       start_ps: float | None = None, drift: str = "framework",
                       charge: float = 1.0, t_start_fs: float | None = None,
                       t_end_fs: float | None = None, fit_start_ps: float | None = None,
                       fit_end_ps: float | None = None, output: str | Path | None = None,
                       no_plot: bool = False, return_msd: bool = False,
                       **fit_kw) -> TransportResult | tuple:
    """Read one trajectory or several replicas and compute D, sigma, Haven ratio.

    Every option of ``viglas analyze`` is a keyword here with the same name
    (``--start-ps`` -> ``start_ps``, ``--fit-start-ps`` -> ``fit_start_ps``,
    ``--format`` -> ``format`` or ``fmt``, ``-o/--output`` -> ``output``,
    ``--no-plot`` -> ``no_plot``; ``--temperature`` -> ``temperature_K``).

    Parameters
    ----------
    path : a trajectory file or a list of independent replicas (same frame spacing).
        A ``.csv`` file is read as an MSD table (:func:`analyze_msd_table`).
    species : mobile element, e.g. ``"Li"``.
    temperature_K : MD temperature (K), for sigma.
    fmt / format, timestep_fs, stride, every, drift : see :func:`read_trajectory`.
    start_fs / start_ps : discard this much of the start of each trajectory.
    charge : ionic charge z of the species (e) for sigma.
    t_start_fs, t_end_fs / fit_start_ps, fit_end_ps : fit window override.
    output : directory for transport.json and msd.png (None = write nothing).
    no_plot : with ``output``, skip the PNG.
    return_msd : also return the pooled :class:`MSDResult`.
    fit_kw : options of :func:`diffusion_coefficient` (``settle_z``, ``min_jumps``, ...).

    Raises
    ------
    TypeError : an unknown keyword (named, with the allowed ones).
    AnalysisError, TrajectoryError : bad input, named by field.
    """
    from .io import is_msd_table, read_trajectory

    _check_fit_kw("analyze_trajectory", fit_kw)
    if temperature_K is None:
        raise AnalysisError("the temperature is needed for sigma", field="temperature_K",
                            value=None, allowed="the MD temperature in K (--temperature)")
    if format is not None and fmt is not None and format != fmt:
        raise AnalysisError("give the format once", field="format", value=(format, fmt))
    fmt = fmt or format
    if start_ps is not None:
        if start_fs:
            raise AnalysisError("give the discarded start once", field="start_ps",
                                value=(start_ps, start_fs), allowed="start_ps or start_fs")
        start_fs = float(start_ps) * 1000.0
    t_start_fs, t_end_fs = _window_fs(t_start_fs, t_end_fs, fit_start_ps, fit_end_ps)
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise AnalysisError("no trajectory given", field="path", value=[])
    if len(paths) == 1 and is_msd_table(paths[0]):
        return analyze_msd_table(paths[0], species, temperature_K, charge=charge,
                                 fit_start_ps=None if t_start_fs is None else t_start_fs / 1000,
                                 fit_end_ps=None if t_end_fs is None else t_end_fs / 1000,
                                 output=output, no_plot=no_plot, return_msd=return_msd,
                                 **fit_kw)
    msds, vols = [], []
    for p in paths:
        data = read_trajectory(p, fmt=fmt, timestep_fs=timestep_fs, stride=stride,
                               species=species, drift=drift, every=every, start_fs=start_fs)
        msds.append(msd_fft(data.positions, data.dt_fs, species=species, charges=charge))
        vols.append(data.volume_A3)
        del data
    msd = pool_msd(msds)
    res = analyze_positions(msd, temperature_K, float(np.mean(vols)), charge=charge,
                            sources=[str(p) for p in paths], t_start_fs=t_start_fs,
                            t_end_fs=t_end_fs, **fit_kw)
    if output is not None:
        write_transport(res, msd, output, plot=not no_plot)
    return (res, msd) if return_msd else res


def analyze_msd_table(path: str | Path, species: str = "Li", temperature_K: float | None = None,
                      *, structure: str | Path | None = None, volume_A3: float | None = None,
                      n_ions: int | None = None, total_ps: float | None = None,
                      charge: float = 1.0, fit_start_ps: float | None = None,
                      fit_end_ps: float | None = None, output: str | Path | None = None,
                      no_plot: bool = False, return_msd: bool = False,
                      **fit_kw) -> TransportResult | tuple:
    """D (and sigma) from an MSD table when no trajectory is available.

    The table (:func:`viglas.analysis.io.read_msd_table`) has ``t_ps`` and ``msd_A2``
    (or per-axis ``msd_x_A2, msd_y_A2, msd_z_A2``), optionally ``msd_err_A2`` and
    ``n_ions``. D is fitted with the same window rule and GLS as for trajectories
    (:func:`diffusion_coefficient`), but the error can only come from the covariance
    model (:func:`viglas.analysis.msd_from_table`): Gaussian increments of ``n_ions``
    independent ions, or the model's correlations scaled to ``msd_err_A2``, multiplied
    by sqrt(chi2_red) when the points scatter more than that. Without per-particle data
    the non-Gaussian (hopping) part and the spread between ions are not measured, so
    this is a lower-information estimate: for hopping ions the model error is a lower
    bound (~1.5x small), unless ``msd_err_A2`` carries the real scatter. Per-axis
    columns also give ``d_axes_cm2_s`` (each axis fitted with d = 1).

    sigma (Nernst–Einstein) needs the number density: ``structure`` (a file holding
    the cell and the ions) or ``volume_A3`` with ``n_ions``; otherwise the sigma
    fields are None. ``n_ions`` here overrides the table's column.
    """
    from .diffusion import diffusion_coefficient as _dc
    from .io import read_msd_table
    from .msd import msd_from_table

    _check_fit_kw("analyze_msd_table", fit_kw)
    tab = read_msd_table(path)
    n = n_ions if n_ions is not None else tab.n_ions
    total_fs = None if total_ps is None else float(total_ps) * 1000.0
    msd = msd_from_table(tab.t_fs, tab.msd_A2, msd_err_A2=tab.msd_err_A2, n_ions=n,
                         total_fs=total_fs, species=species)
    t_start_fs, t_end_fs = _window_fs(None, None, fit_start_ps, fit_end_ps)
    dres = _dc(msd, t_start_fs=t_start_fs, t_end_fs=t_end_fs, **fit_kw)
    extra: dict[str, Any] = {}
    if tab.axes_A2:
        extra["d_axes_cm2_s"], extra["d_axes_err_cm2_s"] = {}, {}
        for ax, y in tab.axes_A2.items():
            m1 = msd_from_table(tab.t_fs, y, n_ions=n if n is not None else 1,
                                total_fs=total_fs, species=species, dimension=1)
            r1 = _dc(m1, t_start_fs=dres.t_start_fs, t_end_fs=dres.t_end_fs, n_scan=0)
            extra["d_axes_cm2_s"][ax] = r1.d_cm2_s
            extra["d_axes_err_cm2_s"][ax] = r1.d_err_cm2_s
    vol = volume_A3
    n_vol = n
    if structure is not None:
        n_vol, vol = species_in_structure(structure, species)
    sig = sig_err = n_cm3 = None
    if vol is not None and n_vol:
        if temperature_K is None:
            raise AnalysisError("the temperature is needed for sigma", field="temperature_K",
                                value=None, allowed="a temperature in K")
        n_cm3 = number_density_per_cm3(n_vol, vol)
        sig = float(nernst_einstein_sigma_mS_cm(dres.d_cm2_s, n_cm3, temperature_K, charge))
        sig_err = float(abs(nernst_einstein_sigma_mS_cm(dres.d_err_cm2_s, n_cm3, temperature_K,
                                                        charge)))
    res = TransportResult(
        species=species, temperature_K=float(temperature_K) if temperature_K is not None
        else float("nan"), charge=float(charge), n_ions=int(n_vol or n or 0), n_replicas=1,
        volume_A3=float(vol) if vol is not None else float("nan"),
        n_per_cm3=n_cm3 if n_cm3 is not None else float("nan"), d_cm2_s=dres.d_cm2_s,
        d_err_cm2_s=dres.d_err_cm2_s, sigma_mS_cm=sig, sigma_err_mS_cm=sig_err,
        sigma_charge_mS_cm=None, sigma_charge_err_mS_cm=None, d_sigma_cm2_s=None,
        d_sigma_err_cm2_s=None, haven_ratio=None, haven_ratio_err=None,
        diffusion={**dres.to_dict(), **extra}, sources=[str(path)])
    if output is not None:
        write_transport(res, msd, output, plot=not no_plot)
    return (res, msd) if return_msd else res


def read_structure(path: str | Path):
    """ASE Atoms from a structure file (CIF/POSCAR/extxyz/traj) or the last H5MD frame."""
    path = Path(path)
    if not path.exists():
        raise AnalysisError("structure file not found", field="structure", value=str(path))
    if path.suffix.lower() in (".h5", ".h5md", ".hdf5"):
        from viglas.trajectory import H5MDTrajectory

        with H5MDTrajectory(path) as tr:
            return tr.atoms(-1)
    import ase.io

    try:
        return ase.io.read(str(path))
    except Exception as exc:
        raise AnalysisError(f"cannot read the structure ({exc})", field="structure",
                            value=str(path), allowed="CIF, POSCAR, extxyz, ASE traj, H5MD") from exc


def species_in_structure(path: str | Path, species: str) -> tuple[int, float]:
    """(number of ``species`` atoms, cell volume in Å³) of a structure file
    (:func:`read_structure`), for the number density behind Nernst-Einstein sigma.
    Raises :class:`AnalysisError` when the species is not in the structure."""
    atoms = read_structure(path)
    syms = atoms.get_chemical_symbols()
    n = syms.count(species)
    if n == 0:
        raise AnalysisError("species not in the structure", field="species", value=species,
                            allowed=", ".join(sorted(set(syms))))
    return n, float(atoms.get_volume())
