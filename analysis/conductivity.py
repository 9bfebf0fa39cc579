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
           "analyze_trajectory", "analyze_positions"]


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
    sigma_mS_cm: float
    sigma_err_mS_cm: float
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


def analyze_trajectory(path: str | Path | Sequence[str | Path], species: str,
                       temperature_K: float, *, fmt: str | None = None,
                       timestep_fs: float | None = None, stride: int = 1, every: int = 1,
                       start_fs: float = 0.0, drift: str = "framework", charge: float = 1.0,
                       t_start_fs: float | None = None, t_end_fs: float | None = None,
                       return_msd: bool = False, **fit_kw) -> TransportResult | tuple:
    """Read one trajectory or several replicas and compute D, sigma, Haven ratio.

    Parameters
    ----------
    path : a trajectory file or a list of independent replicas (same frame spacing).
    species : mobile element, e.g. ``"Li"``.
    temperature_K : MD temperature (K).
    fmt, timestep_fs, stride, every, start_fs, drift : see :func:`read_trajectory`.
    charge : ionic charge z of the species (e) for sigma.
    t_start_fs, t_end_fs : fit window override (fs).
    return_msd : also return the pooled :class:`MSDResult`.
    """
    from .io import read_trajectory

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise AnalysisError("no trajectory given", field="path", value=[])
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
    return (res, msd) if return_msd else res
