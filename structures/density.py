"""Default density estimate of a VIGLAS glass by volume additivity.

Model (a starting value that the NPT stage of the MD workflow refines):

1. For each alkali A, the molar volume of ``A Al Cl(4-2x) O(x)`` is the volume-additive
   mix of the chloride and oxide end members, ``(1 - x/2) A AlCl4 + (x/2) A AlO2``::

       V_A(x) = (1 - x/2) * M(AAlCl4)/rho(AAlCl4) + (x/2) * M(AAlO2)/rho(AAlO2)

   with the crystal densities in :data:`END_MEMBER_DENSITIES` (g/cm³).
2. Mixed alkalis: V = sum_A f_A V_A(x) (ideal mixing).
3. Other formers: the MX4 tetrahedron is treated as a sphere of radius d_MX + r_X
   (d_MX the reference bond length, r_X the anion-fraction-weighted Shannon radius);
   the volume is multiplied by sum_M f_M ((d_MX + r_X)/(d_AlX + r_X))^3
   (Ga ×1.06, In ×1.18, B ×0.81 for chlorides).
4. density = M(composition) / V.

This reproduces the parent salts exactly (LiAlCl4 1.974, NaAlCl4 1.887 g/cm³) and gives
2.067 g/cm³ for LiAlCl2.5O0.75. Pass ``density=`` to the builders to override it.
"""

from __future__ import annotations

from ase.data import atomic_masses, atomic_numbers

from viglas.structures.composition import GlassComposition
from viglas.structures.geometry import SHANNON_RADII, bond_length

#: Crystal densities (g/cm³) of the end members and their sources.
END_MEMBER_DENSITIES: dict[str, tuple[float, str]] = {
    "LiAlCl4": (1.974, "Mairesse et al., Cryst. Struct. Commun. 6, 15 (1977), P21/c"),
    "NaAlCl4": (1.887, "Mairesse et al., Acta Cryst. B 35, 1573 (1979), P212121"),
    "LiAlO2": (2.615, "gamma-LiAlO2, P41212, a = 5.169, c = 6.268 Å, Z = 4 (Marezio 1965)"),
    "NaAlO2": (2.69, "beta-NaAlO2, Pna21, X-ray density (approx., literature range 2.69-2.75)"),
}


def _mass(formula_counts: dict[str, float]) -> float:
    return sum(n * atomic_masses[atomic_numbers[el]] for el, n in formula_counts.items())


def _molar_volume_cm3(name: str, counts: dict[str, float]) -> float:
    return _mass(counts) / END_MEMBER_DENSITIES[name][0]


def former_volume_factor(comp: GlassComposition) -> float:
    """Volume factor of the formers relative to Al (1.0 for pure Al), see module doc."""
    p = comp.oxygen_fraction
    r_x = (1 - p) * SHANNON_RADII["Cl"] + p * SHANNON_RADII["O"]

    def d(m: str) -> float:
        return (1 - p) * bond_length(m, "Cl") + p * bond_length(m, "O")

    ref = d("Al") + r_x
    return sum(f * ((d(m) + r_x) / ref) ** 3 for m, f in comp.former.items())


def estimate_density(comp: GlassComposition | str) -> float:
    """Estimated density of the glass in g/cm³ by volume additivity (see module doc).

    Args:
        comp: composition or formula string, e.g. ``"LiAlCl2.5O0.75"``.
    """
    comp = GlassComposition.parse(comp)
    x = comp.x
    v = 0.0
    for a, f in comp.alkali.items():
        v_cl = _molar_volume_cm3(f"{a}AlCl4", {a: 1, "Al": 1, "Cl": 4})
        v_o = _molar_volume_cm3(f"{a}AlO2", {a: 1, "Al": 1, "O": 2})
        v += f * ((1 - x / 2) * v_cl + (x / 2) * v_o)
    v *= former_volume_factor(comp)
    return float(_mass(comp.counts_per_fu()) / v)
