"""The chemistry of VIGLAS compositions in one table: which elements are alkali ions,
network formers and anions, their formal charges, and the typical nearest-neighbour
(contact) distances of each pair.

Everyone reads these from here: :mod:`viglas.structures` (charge balance, minimum
distances), :mod:`viglas.analysis.onsager` (the default charges of the Onsager sums),
:mod:`viglas.potentials` (starting values, walls, collapse checks, coordination
cutoffs of the fit report). Units: e, Å.
"""

from __future__ import annotations

__all__ = ["ALKALI", "FORMERS", "ANIONS", "CATIONS", "FORMAL_CHARGES", "CONTACT_A"]

#: Mobile alkali ions (A site), in formula order.
ALKALI: tuple[str, ...] = ("Li", "Na")
#: Network formers allowed on the M site, in formula order.
FORMERS: tuple[str, ...] = ("Al", "Ga", "In", "B")
#: Anions.
ANIONS: tuple[str, ...] = ("Cl", "O")
#: Cations: alkali ions and formers.
CATIONS: tuple[str, ...] = ALKALI + FORMERS

#: Formal charges (e): charge balance, the ionic potential's charges before scaling,
#: the Onsager conductivity sums.
FORMAL_CHARGES: dict[str, int] = {"Li": 1, "Na": 1, "Al": 3, "Ga": 3, "In": 3, "B": 3,
                                  "Cl": -1, "O": -2}

#: Typical nearest-neighbour distances (Å), keys ``"X-Y"`` in alphabetical order
#: (:func:`viglas.potentials.pair_key`): crystal/molecular bond lengths (LiCl, NaCl,
#: AlCl4-, GaCl4-, InCl4-/InCl6 3-, BCl3, Al2O3, Ga2O3, In2O3, B2O3) and anion
#: contacts. The ionic potential's starting values, wall positions and "close contact"
#: counts, its collapse check (0.6 x) and the fit report's coordination cutoffs (1.3 x).
CONTACT_A: dict[str, float] = {
    "Cl-Li": 2.45, "Li-O": 1.98, "Cl-Na": 2.80, "Na-O": 2.35,
    "Al-Cl": 2.13, "Al-O": 1.76, "Cl-Ga": 2.17, "Ga-O": 1.86,
    "Cl-In": 2.40, "In-O": 2.12, "B-Cl": 1.75, "B-O": 1.37,
    "Cl-Cl": 3.50, "Cl-O": 3.10, "O-O": 2.70,
}
