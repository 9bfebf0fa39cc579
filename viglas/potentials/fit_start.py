"""Starting values of a force-matching fit of the ionic potential
(:mod:`viglas.potentials.fit`): physically sensible pair parameters from the contact
distances and formal charges of :mod:`viglas.chemistry`, the fixed short-range walls
(:func:`wall_B`, cation–cation walls at :data:`CATION_WALL_A`) and the starting
three-body (angle) terms of the network formers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from viglas.chemistry import ALKALI, ANIONS, CATIONS, CONTACT_A, FORMAL_CHARGES
from viglas.potentials.parameters import (IonicParameters, PairParameters, ThreeBodyParameters,
                                          pair_key)
from viglas.units import COULOMB_EV_A

__all__ = ["is_cation_anion", "is_anion_anion", "CATION_WALL_A", "cation_wall_distance",
           "wall_B", "THREE_BODY_CUTOFF_A", "THREE_BODY_GAMMA_A", "initial_three_body",
           "initial_parameters"]


def is_cation_anion(key: str) -> bool:
    a, b = key.split("-")
    return (a in CATIONS) != (b in CATIONS)


def is_anion_anion(key: str) -> bool:
    a, b = key.split("-")
    return a in ANIONS and b in ANIONS


#: Cation–cation wall distances r_w (Å): the fixed repulsion ``B/r^12`` of a
#: cation–cation pair is 1 eV at r_w, about 0.6–0.7 × the shortest cation–cation
#: distance in the parent oxides/chlorides (Li2O, Na2O, Al2O3, LiAlO2, B2O3, ...), so it
#: is < 0.03 eV at normal distances. Without it, two cations with scaled charges can be
#: pushed onto each other by the anions (Na–Na at 1.6 Å was seen at 1000 K).
CATION_WALL_A: dict[str, float] = {"alkali-alkali": 1.6, "Na-Na": 1.9, "Li-Na": 1.75,
                                   "Li-former": 1.7, "Na-former": 1.95,
                                   "former-former": 1.9, "B-B": 1.6}


def cation_wall_distance(key: str) -> float:
    """r_w in Å of the fixed cation–cation wall of pair ``key`` (see CATION_WALL_A)."""
    a, b = key.split("-")
    alk = set(ALKALI)
    if key in CATION_WALL_A:
        return CATION_WALL_A[key]
    if a in alk and b in alk:
        return CATION_WALL_A["alkali-alkali"]
    if a in alk or b in alk:
        return CATION_WALL_A["Na-former" if "Na" in (a, b) else "Li-former"]
    return CATION_WALL_A["former-former"]


def wall_B(key: str, charge_scale: float, C: float = 0.0,
           charges: dict[str, float] | None = None) -> float:
    """Wall coefficient B (eV Å^12) of pair ``key``.

    The wall ``B/r^12`` equals twice the magnitude of the attractive terms (Coulomb
    between opposite charges, dispersion ``C/r^6``) at ``r_w = 0.55 * contact``
    distance, so the pair energy turns repulsive below ``r_w`` and a hot ion cannot
    fall into the other; at the contact distance it adds < 0.1 eV.
    """
    q = charges or FORMAL_CHARGES
    a, b = key.split("-")
    r_w = 0.55 * CONTACT_A.get(key, 2.5)
    attr = C / r_w**6
    if q[a] * q[b] < 0:
        attr += COULOMB_EV_A * abs(q[a] * q[b]) * charge_scale**2 / r_w
    return float(2.0 * attr * r_w**12)


#: Bond cutoffs (Å) of the three-body term per network former: ~1.3 x its longest
#: first-shell bond (Al-Cl 2.13-2.3, Ga-Cl 2.17, In-Cl 2.40, B-Cl 1.75 Å) and below the
#: second anion shell.
THREE_BODY_CUTOFF_A: dict[str, float] = {"Al": 3.4, "Ga": 3.4, "In": 3.7, "B": 2.9}
#: Screening length gamma (Å) of the three-body term (fixed in fits). With the cutoffs
#: above the screening product of two first-shell bonds is ~0.1 and a fifth ligand at
#: 2.6-2.9 Å (Al) still feels the term, which is what keeps AlX4 tetrahedral.
THREE_BODY_GAMMA_A: float = 1.5


def initial_three_body(elements: Sequence[str], k: float = 1.0) -> dict[str, ThreeBodyParameters]:
    """Starting angle terms: every network former present (Al, Ga, In, B) keeps its
    anion–former–anion angles near tetrahedral (``cos0 = -1/3``), screened at
    :data:`THREE_BODY_CUTOFF_A` with ``gamma = THREE_BODY_GAMMA_A``. Only ``k`` is
    fitted (``cos0``, ``gamma`` and ``cutoff`` are listed as fixed; remove ``cos0``
    from ``fixed`` to fit it too)."""
    anions = sorted(set(elements) & set(ANIONS))
    out = {}
    for m in sorted(set(elements) & set(THREE_BODY_CUTOFF_A)):
        if anions:
            out[m] = ThreeBodyParameters(k=k, cos0=-1.0 / 3.0, gamma=THREE_BODY_GAMMA_A,
                                         cutoff=THREE_BODY_CUTOFF_A[m], neighbours=anions,
                                         fixed=["cos0", "gamma", "cutoff"])
    return out


def initial_parameters(elements: Sequence[str] = tuple(FORMAL_CHARGES),
                       charge_scale: float = 0.75, alpha: float = 0.2,
                       coulomb_cutoff: float = 10.0,
                       short_range_cutoff: float = 7.0,
                       cation_walls: bool = True, three_body: bool = False) -> IonicParameters:
    """Physically sensible starting parameters for the elements given.

    Cation–anion and anion–anion pairs get ``rho = 0.30`` Å (0.22 Å for B–O) and the
    ``A`` that balances the Coulomb attraction of the pair at its contact distance
    ``d0`` (:data:`CONTACT_A`): ``A/rho exp(-d0/rho) = k |q_i q_j| s^2 / d0^2`` (for
    anion pairs the Coulomb repulsion is already there, so ``A`` gives 0.05 eV at
    ``d0``); anion–anion pairs start with ``C`` = 20 (O–O), 40 (Cl–O), 80 (Cl–Cl)
    eV Å^6. Cation–cation pairs get only a fixed wall ``B/r^12`` equal to 1 eV at
    :func:`cation_wall_distance` (``A = 0``, all fixed) when ``cation_walls``, else no
    short-range term. ``three_body`` adds :func:`initial_three_body` angle terms.
    """
    charges = {el: FORMAL_CHARGES[el] for el in elements}
    pairs: dict[str, PairParameters] = {}
    els = sorted(elements)
    for x in range(len(els)):
        for y in range(x, len(els)):
            key = pair_key(els[x], els[y])
            if els[x] in CATIONS and els[y] in CATIONS:
                if cation_walls:
                    pairs[key] = PairParameters(A=0.0, rho=0.3, C=0.0,
                                                B=cation_wall_distance(key) ** 12,
                                                fixed=["A", "rho", "C", "B"])
                continue
            if key not in CONTACT_A:
                continue
            d0 = CONTACT_A[key]
            a, b = key.split("-")
            if is_cation_anion(key):
                rho = 0.22 if key == "B-O" else 0.30
                force = COULOMB_EV_A * abs(charges[a] * charges[b]) * charge_scale**2 / d0**2
                A = force * rho * math.exp(d0 / rho)
                C = 0.0
            else:
                rho = 0.30
                A = 0.05 * math.exp(d0 / rho)
                C = {"O-O": 20.0, "Cl-O": 40.0, "Cl-Cl": 80.0}[key]
            B = wall_B(key, charge_scale, C, charges)
            pairs[key] = PairParameters(A=A, rho=rho, C=C, B=B)
    return IonicParameters(
        description="starting values for force matching (not fitted)",
        charges=charges, charge_scale=charge_scale,
        coulomb={"method": "dsf", "alpha": alpha, "cutoff": coulomb_cutoff},
        short_range_cutoff=short_range_cutoff, pairs=pairs,
        three_body=initial_three_body(elements) if three_body else {})
