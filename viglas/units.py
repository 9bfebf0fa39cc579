"""Units and physical constants.

Internal units are those of ASE: Å, fs (``ase.units.fs`` converts to ASE time), K,
eV, amu, elementary charge. Outputs carry the unit in the field name
(``d_cm2_s``, ``sigma_mS_cm``, ``ea_eV``, ``t_K``, ``density_g_cm3``).
"""

from __future__ import annotations

import math

#: Boltzmann constant in eV/K (CODATA 2018).
KB_EV_K: float = 8.617333262e-5
#: Boltzmann constant in J/K.
KB_J_K: float = 1.380649e-23
#: Elementary charge in C.
E_CHARGE_C: float = 1.602176634e-19
#: Gas constant in J/(mol K).
R_J_MOLK: float = 8.314462618
#: Avogadro constant in 1/mol.
N_AVOGADRO: float = 6.02214076e23
#: Coulomb constant e^2/(4 pi eps0) in eV·Å.
COULOMB_EV_A: float = 14.399645351950548

#: 1 eV/Å^3 in GPa (pressure and stress).
EV_A3_TO_GPA: float = 160.21766208

#: 1 Å^2/fs in cm^2/s.
A2_FS_TO_CM2_S: float = 1e-16 / 1e-15
#: 1 Å^3 in cm^3.
A3_TO_CM3: float = 1e-24
#: 1 amu in g.
AMU_G: float = 1.66053906660e-24
#: Room temperature used for extrapolations, K.
T_ROOM_K: float = 300.0
#: Standard temperature used by continuum models, K.
T_STANDARD_K: float = 298.15


def density_g_cm3(total_mass_amu: float, volume_a3: float) -> float:
    """Mass density in g/cm³ from a mass in amu and a volume in Å³."""
    return total_mass_amu * AMU_G / (volume_a3 * A3_TO_CM3)


def volume_a3_for_density(total_mass_amu: float, density: float) -> float:
    """Volume in Å³ that gives ``density`` (g/cm³) for a mass in amu."""
    return total_mass_amu * AMU_G / density / A3_TO_CM3


#: How :func:`md_steps` rounds a duration to whole time steps.
STEP_ROUNDING = ("nearest", "up", "down")


def md_steps(duration_fs: float, timestep_fs: float, rounding: str = "nearest") -> int:
    """Number of MD steps of ``timestep_fs`` (fs) in ``duration_fs`` (fs): the one
    duration -> steps rule of viglas.

    ``rounding``: ``"nearest"`` for a configured duration (``duration_ps``,
    ``equilibration_ps``, ``save_every_fs`` ...), ``"up"`` for the fewest steps that
    cover a schedule to its end (melt-quench), ``"down"`` for the most steps within a
    cap (adaptive runs; 1e-9 steps of slack absorb float noise such as 0.1 + 0.2).
    """
    q = duration_fs / timestep_fs
    if rounding == "nearest":
        return int(round(q))
    if rounding == "up":
        return int(math.ceil(q))
    if rounding == "down":
        return int(math.floor(q + 1e-9))
    raise ValueError(f"rounding must be one of {STEP_ROUNDING}, not {rounding!r}")
