"""Output documents of the viglas jobs: small, JSON-able, units in the field names.

Every job of :mod:`viglas.workflows.makers` returns one of these pydantic models.
They hold numbers and *references* to files (structures, H5MD trajectories, plots);
trajectories are never stored inside a document. Each carries ``provenance``
(package versions, calculator and its parameters, seeds, config hash, time).
Uncertainties (``*_err_*``) are one standard deviation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "StructureDoc", "MeltQuenchDoc", "ProductionDoc", "DiffusionDoc",
    "TemperaturePoint", "CompositionSummaryDoc", "SeriesSummaryDoc",
]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provenance: dict[str, Any] = Field(default_factory=dict,
                                       description="versions, calculator, seeds, config hash")


class StructureDoc(_Doc):
    """A starting glass model written to ``structure_path`` (extended XYZ)."""

    formula: str
    label: str
    x: float
    oxygen_fraction: float = Field(description="O/(O+Cl) anion fraction")
    alkali: dict[str, float]
    former: dict[str, float]
    mobile_species: list[str]
    n_atoms: int
    counts: dict[str, int]
    density_g_cm3: float
    volume_A3: float
    method: str
    seed: int
    structure_path: str = Field(description="absolute path of the extxyz file")


class MeltQuenchDoc(_Doc):
    """The quenched glass and the cooling curve used for Tg."""

    formula: str
    structure_path: str = Field(description="quenched glass (extxyz)")
    trajectory: str | None = Field(None, description="melt-quench H5MD trajectory")
    enabled: bool = True
    seed: int
    t_melt_K: float
    t_final_K: float
    cool_rate_K_ps: float
    pressure_GPa: float | None
    density_g_cm3: float
    volume_A3: float
    cooling_t_K: list[float] = Field(default_factory=list)
    cooling_volume_A3: list[float] = Field(default_factory=list)
    cooling_energy_eV: list[float] = Field(default_factory=list)
    tg_K: float | None = None
    tg_err_K: float | None = None
    tg_message: str | None = None
    tg_plot: str | None = Field(None, description="V(T) or E(T) with the two-line Tg fit")


class ProductionDoc(_Doc):
    """One production MD run (temperature x replica); the trajectory is a file."""

    formula: str
    t_K: float
    replica: int
    seed: int
    trajectory: str = Field(description="absolute path of the H5MD trajectory")
    final_structure_path: str
    n_atoms: int
    steps: int
    timestep_fs: float
    save_every: int
    equilibration_steps: int
    ensemble: str
    thermostat: str
    mean_temperature_K: float | None = None
    density_g_cm3: float | None = None
    volume_A3: float | None = None
    adaptive: dict[str, Any] | None = Field(
        None, description="adaptive run (production.target_d_rel_err): stop_reason "
        "(target_reached, max_duration_reached, no_estimate_at_cap), message, duration_ps, "
        "rel_err and the error history; None for a fixed-length run")


class DiffusionDoc(_Doc):
    """Diffusion and Nernst-Einstein conductivity of the mobile ion in one run."""

    formula: str
    t_K: float
    replica: int
    seed: int
    species: str
    trajectory: str
    d_cm2_s: float | None
    d_err_cm2_s: float | None
    sigma_mS_cm: float | None
    sigma_err_mS_cm: float | None
    number_density_per_cm3: float | None = Field(None, description="mobile ions per cm^3")
    haven_ratio: float | None = None
    haven_ratio_err: float | None = None
    transport: dict[str, Any] = Field(default_factory=dict,
                                      description="full TransportResult.to_dict()")
    msd_plot: str | None = None
    production_ps: float | None = Field(None, description="length of the analysed run")
    transference_number: float | None = Field(None, description="cation t+ (Onsager)")
    transference_number_err: float | None = None
    onsager: dict[str, Any] | None = Field(None, description="OnsagerResult.to_dict(): "
                                           "sigma_ij, full sigma, t_i with jackknife errors")
    adaptive: dict[str, Any] | None = Field(None, description="the production run's "
                                            "adaptive record (ProductionDoc.adaptive)")


class TemperaturePoint(BaseModel):
    """Replica average at one temperature (mean, with the standard error of the mean
    combined with the per-run fit errors)."""

    t_K: float
    n_replicas: int
    d_cm2_s: float | None
    d_err_cm2_s: float | None
    sigma_mS_cm: float | None
    sigma_err_mS_cm: float | None
    d_estimate: str = Field("value", description="value (every replica diffusive) or, "
                            "when a replica is not, the bound the mean is: upper, lower, "
                            "mixed (left out of the fits)")
    n_bound_replicas: int = Field(0, description="replicas without a diffusive regime")
    haven_ratio: float | None = None
    haven_ratio_err: float | None = None
    transference_number: float | None = Field(
        None, description="cation transference number from the Onsager coefficients "
        "(replicas combined)")
    transference_number_err: float | None = None


class CompositionSummaryDoc(_Doc):
    """Everything viglas computed for one composition (the ``compositions[i]`` entry
    of results.json, plus the plots)."""

    formula: str
    label: str
    x: float
    oxygen_fraction: float
    alkali: dict[str, float]
    former: dict[str, float]
    mobile_species: str
    n_atoms: int
    density_g_cm3: float | None
    number_density_per_cm3: float | None
    calculator: dict[str, Any]
    runs: list[dict[str, Any]]
    temperatures: list[TemperaturePoint]
    fits: dict[str, Any]
    ea_eV: float | None = None
    ea_err_eV: float | None = None
    report_temperature_K: float = 300.0
    sigma_300K_mS_cm: float | None = None
    sigma_300K_err_mS_cm: float | None = None
    d_300K_cm2_s: float | None = None
    d_300K_err_cm2_s: float | None = None
    tg_K: float | None = None
    tg_err_K: float | None = None
    haven_ratio: float | None = Field(None, description="mean Haven ratio over haven_ratio_t_K "
                                      "(charge MSD vs tracer D), replicas combined first")
    haven_ratio_err: float | None = Field(None, description="one sd of haven_ratio")
    haven_ratio_t_K: list[float] = Field(default_factory=list,
                                         description="temperatures the Haven ratio comes from")
    sigma_303K_mS_cm: float | None = Field(None, description="sigma at 303.15 K (30 °C)")
    sigma_303K_err_mS_cm: float | None = None
    sigma_303K_source: str | None = Field(None, description="simulated (an MD temperature "
                                          "within 5 K), interpolated or extrapolated")
    sigma_303K_model: str | None = Field(None, description="the MD point, or the fit used "
                                         "(arrhenius / vft, Nernst-Einstein on D(T))")
    tg_rates: list[dict[str, Any]] = Field(
        default_factory=list, description="Tg per cooling rate: cool_rate_K_ps, tg_K, "
        "tg_err_K (the main quench and melt_quench.tg_cooling_rates_K_ps)")
    tg_lab_K: float | None = Field(None, description="Tg extrapolated to 10 K/min "
                                   "(viglas.analysis.tg_rate; law in tg_rate_fit)")
    tg_lab_err_K: float | None = Field(None, description="one sd of tg_lab_K (statistical "
                                       "band of the extrapolation only)")
    tg_rate_fit: dict[str, Any] | None = None
    transference_number: float | None = Field(
        None, description="cation transference number t+ from the Onsager (cross-"
        "correlation) coefficients, mean over transference_t_K (replicas combined first); "
        "formal charges; 1 = single-ion conductor")
    transference_number_err: float | None = Field(None, description="one sd of "
                                                  "transference_number (jackknife)")
    transference_t_K: list[float] = Field(default_factory=list,
                                          description="temperatures t+ comes from")
    structure: dict[str, Any] = Field(default_factory=dict)
    plots: dict[str, str] = Field(default_factory=dict)
    messages: list[str] = Field(default_factory=list, description="fits that failed and why")


class SeriesSummaryDoc(_Doc):
    """End of a sweep or screening: percolation fit and/or ranking table and plots."""

    kind: str
    formulas: list[str]
    percolation: dict[str, Any] | None = None
    structural_percolation: list[dict[str, Any]] = Field(default_factory=list)
    ranking: list[dict[str, Any]] = Field(default_factory=list)
    plots: dict[str, str] = Field(default_factory=dict)
    messages: list[str] = Field(default_factory=list)
