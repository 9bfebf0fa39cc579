"""VIGLAS glass compositions A M Cl(4-2x) O(x) and supercell sizing.

A formula unit (f.u.) is ``A1 M1 Cl(4-2x) O(x)`` with A the alkali (Li, Na or a
mixture whose fractions sum to 1), M the network former (Al, Ga, In, B or a
mixture) and x the oxygen content per f.u. (0 <= x < 2). One O replaces two Cl,
so every composition built here is charge neutral:
``+1 (A) +3 (M) -1 * (4 - 2x) (Cl) -2 * x (O) = 0``.

Example::

    >>> comp = GlassComposition.from_formula("LiAlCl2.5O0.75")   # LACO
    >>> comp.counts_per_fu()
    {'Li': 1.0, 'Al': 1.0, 'Cl': 2.5, 'O': 0.75}
    >>> supercell_size(comp, 200).counts
    {'Li': 40, 'Al': 40, 'Cl': 100, 'O': 30}
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from viglas.chemistry import ALKALI, ANIONS, FORMAL_CHARGES, FORMERS
from viglas.errors import CompositionError, StructureError

#: Alkali ions (A site), network formers (M site), anions and the formal charges (e) of
#: the charge balance: :mod:`viglas.chemistry` (ALKALI, FORMERS, ANIONS, FORMAL_CHARGES).
#: Every element a VIGLAS composition may contain.
ALLOWED_ELEMENTS: tuple[str, ...] = ALKALI + FORMERS + ANIONS

_TOL = 1e-6
_ALLOWED_FORMULA = ("A M Cl(4-2x) O(x) with A in {Li, Na} (fractions summing to 1), "
                    "M in {Al, Ga, In, B} (fractions summing to 1), 0 <= x < 2, e.g. "
                    "LiAlCl2.5O0.75, NaGaCl3O0.5, LiAl0.5Ga0.5Cl4")
_TOKEN = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d*)?|\.\d+)?")


def _fmt(value: float) -> str:
    """Number in a formula: '' for 1, otherwise the shortest exact-looking decimal."""
    if abs(value - 1.0) < _TOL:
        return ""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text


def _as_composition_error(exc: ValidationError) -> CompositionError:
    err = exc.errors()[0]
    inner = (err.get("ctx") or {}).get("error")
    if isinstance(inner, CompositionError):
        return inner
    field = ".".join(str(p) for p in err.get("loc", ())) or "composition"
    return CompositionError(err.get("msg", str(exc)), field=field, value=err.get("input"),
                            allowed=_ALLOWED_FORMULA)


def _round(value: float) -> float:
    return float(round(value, 9))


class SupercellSize(NamedTuple):
    """Result of :func:`supercell_size`.

    ``n_formula_units``: formula units in the cell; ``counts``: integer atom count per
    element; ``n_atoms``: total atoms; ``exact``: True when ``n_atoms`` equals the
    requested target; ``message``: a one-line human-readable report.
    """

    n_formula_units: int
    counts: dict[str, int]
    n_atoms: int
    exact: bool
    message: str


class GlassComposition(BaseModel):
    """A VIGLAS glass composition ``A M Cl(4-2x) O(x)`` (immutable).

    Attributes:
        alkali: fraction of each alkali on the A site, e.g. ``{"Li": 1.0}`` or
            ``{"Li": 0.5, "Na": 0.5}``; fractions are > 0 and sum to 1.
        former: fraction of each network former on the M site, e.g. ``{"Al": 1.0}``
            or ``{"Al": 0.5, "Ga": 0.5}``; fractions are > 0 and sum to 1.
        x: oxygen atoms per formula unit, 0 <= x < 2 (Cl = 4 - 2x).
    """

    model_config = ConfigDict(frozen=True)

    alkali: dict[str, float]
    former: dict[str, float]
    x: float = 0.0

    def __init__(self, **data) -> None:  # noqa: ANN003
        # pydantic wraps errors raised in validators into a ValidationError; unwrap them so
        # callers get the one-line viglas CompositionError naming the field.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _as_composition_error(exc) from None

    @field_validator("alkali", "former", mode="before")
    @classmethod
    def _site(cls, value, info):  # noqa: ANN001
        name = info.field_name
        allowed = ALKALI if name == "alkali" else FORMERS
        if isinstance(value, str):
            value = {value: 1.0}
        if not isinstance(value, dict) or not value:
            raise CompositionError(f"{name} must be a non-empty mapping element -> fraction",
                                   field=name, value=value,
                                   allowed=f"e.g. {{'{allowed[0]}': 1.0}}")
        out: dict[str, float] = {}
        for el, frac in value.items():
            if el not in allowed:
                raise CompositionError(f"unknown element {el!r} on the {name} site",
                                       field=name, value=el, allowed=", ".join(allowed))
            try:
                frac = float(frac)
            except (TypeError, ValueError):
                raise CompositionError(f"fraction of {el} is not a number", field=name,
                                       value=frac, allowed="a number in (0, 1]") from None
            if not (frac > 0.0) or not math.isfinite(frac):
                raise CompositionError(f"fraction of {el} must be positive", field=name,
                                       value=frac, allowed="a number in (0, 1]")
            out[el] = out.get(el, 0.0) + frac
        total = sum(out.values())
        if abs(total - 1.0) > _TOL:
            raise CompositionError(f"{name} site fractions must sum to 1 (sum = {total:g})",
                                   field=name, value=dict(value), allowed="fractions summing to 1")
        # canonical order, rounded to kill float noise
        return {el: _round(out[el]) for el in allowed if el in out}

    @field_validator("x", mode="before")
    @classmethod
    def _x(cls, value):  # noqa: ANN001
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise CompositionError("x is not a number", field="x", value=value,
                                   allowed="0 <= x < 2") from None
        if not math.isfinite(value) or value < -_TOL or value >= 2.0 - _TOL:
            raise CompositionError("oxygen content x out of range", field="x", value=value,
                                   allowed="0 <= x < 2 (Cl = 4 - 2x must stay > 0)")
        return _round(max(value, 0.0))

    @model_validator(mode="after")
    def _neutral(self) -> GlassComposition:
        q = self.charge_sum()
        if abs(q) > 1e-6:  # pragma: no cover - guaranteed by construction
            raise CompositionError(f"not charge balanced: charge sum = {q:+.4g} e per formula unit",
                                   field="composition", value=self.formula)
        return self

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_formula(cls, formula: str) -> GlassComposition:
        """Parse a formula such as ``"LiAlCl2.5O0.75"`` or ``"Li0.5Na0.5Al0.5Ga0.5Cl3O0.5"``.

        The formula may be given for any number of formula units (``Li4Al4Cl10O3`` is
        LACO); it is normalised to one M per formula unit. Raises
        :class:`~viglas.errors.CompositionError` for unknown elements, a missing A or
        M, an A:M ratio other than 1:1, or a formula that is not charge balanced (the
        message shows the charge sum).
        """
        if not isinstance(formula, str) or not formula.strip():
            raise CompositionError("empty formula", field="composition", value=formula,
                                   allowed=_ALLOWED_FORMULA)
        text = formula.replace(" ", "")
        counts: dict[str, float] = {}
        pos = 0
        for match in _TOKEN.finditer(text):
            if match.start() != pos:
                break
            el, num = match.group(1), match.group(2)
            if el not in ALLOWED_ELEMENTS:
                raise CompositionError(f"unknown element {el!r} in formula", field="composition",
                                       value=formula, allowed="elements " + ", ".join(ALLOWED_ELEMENTS))
            n = float(num) if num else 1.0
            counts[el] = counts.get(el, 0.0) + n
            pos = match.end()
        if pos != len(text):
            raise CompositionError(f"cannot read the formula at {text[pos:]!r}", field="composition",
                                   value=formula, allowed=_ALLOWED_FORMULA)
        a = sum(counts.get(el, 0.0) for el in ALKALI)
        m = sum(counts.get(el, 0.0) for el in FORMERS)
        if a <= 0 or m <= 0 or counts.get("Cl", 0.0) <= 0:
            raise CompositionError("a VIGLAS formula needs an alkali, a network former and Cl",
                                   field="composition", value=formula, allowed=_ALLOWED_FORMULA)
        q = sum(FORMAL_CHARGES[el] * n for el, n in counts.items())
        if abs(q) > 1e-6 * max(1.0, m):
            qn = q / m
            raise CompositionError(
                f"not charge balanced: charge sum = {q:+.4g} e ({qn:+.4g} e per M)",
                field="composition", value=formula,
                allowed="a neutral formula: +1*A +3*M -1*Cl -2*O = 0, i.e. A M Cl(4-2x) O(x)")
        if abs(a - m) > 1e-6 * m:
            raise CompositionError(f"A:M ratio must be 1:1 (got {a:g}:{m:g})", field="composition",
                                   value=formula, allowed=_ALLOWED_FORMULA)
        x = counts.get("O", 0.0) / m
        return cls(alkali={el: counts[el] / a for el in ALKALI if el in counts},
                   former={el: counts[el] / m for el in FORMERS if el in counts}, x=x)

    @classmethod
    def parse(cls, value: str | GlassComposition) -> GlassComposition:
        """Return ``value`` if it is already a composition, else parse it as a formula."""
        if isinstance(value, GlassComposition):
            return value
        return cls.from_formula(value)

    # --------------------------------------------------------------- properties
    def counts_per_fu(self) -> dict[str, float]:
        """Atoms of each element per formula unit (A, M, Cl, O order; O omitted if x=0)."""
        out: dict[str, float] = {}
        out.update(self.alkali)
        out.update(self.former)
        out["Cl"] = _round(4.0 - 2.0 * self.x)
        if self.x > 0:
            out["O"] = self.x
        return out

    @property
    def atoms_per_fu(self) -> float:
        """Atoms per formula unit, 6 - x."""
        return 6.0 - self.x

    def element_fractions(self) -> dict[str, float]:
        """Atom fraction of each element (sums to 1)."""
        n = self.atoms_per_fu
        return {el: c / n for el, c in self.counts_per_fu().items()}

    @property
    def formula(self) -> str:
        """Formula per formula unit, e.g. ``"LiAlCl2.5O0.75"``; round-trips through
        :meth:`from_formula`."""
        return "".join(f"{el}{_fmt(n)}" for el, n in self.counts_per_fu().items())

    @property
    def label(self) -> str:
        """Short identifier safe for file names (``.`` -> ``p``): ``LiAlCl2p5O0p75``."""
        return self.formula.replace(".", "p")

    @property
    def oxygen_fraction(self) -> float:
        """Anion fraction of oxygen p = O/(O+Cl) = x/(4-x) (the percolation variable)."""
        return self.x / (4.0 - self.x)

    @property
    def mobile_species(self) -> tuple[str, ...]:
        """The alkali symbol(s), e.g. ``("Li",)`` or ``("Li", "Na")``."""
        return tuple(self.alkali)

    @property
    def mass_per_fu_amu(self) -> float:
        """Mass of one formula unit in amu."""
        from ase.data import atomic_masses, atomic_numbers

        return float(sum(n * atomic_masses[atomic_numbers[el]] for el, n in self.counts_per_fu().items()))

    def charge_sum(self) -> float:
        """Sum of formal charges per formula unit in e (0 for every valid composition)."""
        return float(sum(FORMAL_CHARGES[el] * n for el, n in self.counts_per_fu().items()))

    def __str__(self) -> str:
        return self.formula

    def __hash__(self) -> int:  # dict fields are unhashable; the formula identifies the glass
        return hash(("GlassComposition", self.formula))


def _min_units(comp: GlassComposition) -> int:
    """Smallest number of formula units with integer counts of every element."""
    q = 1
    for n in comp.counts_per_fu().values():
        frac = Fraction(n).limit_denominator(10_000)
        if abs(float(frac) - n) > 1e-9:
            raise CompositionError("composition needs more than 10000 formula units for integer "
                                   "atom counts", field="composition", value=comp.formula,
                                   allowed="fractions with denominators <= 10000")
        q = q * frac.denominator // math.gcd(q, frac.denominator)
    return q


def supercell_size(comp: GlassComposition | str, n_atoms: int, *, multiple_of: int = 1) -> SupercellSize:
    """Choose the number of formula units for a cell of about ``n_atoms`` atoms.

    Every element count must be an integer, so the number of formula units is a
    multiple of the smallest such block (x = 0.75 needs multiples of 4: Li4Al4Cl10O3)
    and, if given, of ``multiple_of`` (e.g. the Z = 4 of a crystal prototype). x is
    never changed: when ``n_atoms`` cannot be met exactly, the nearest exact size is
    chosen (the larger one on a tie) and reported in ``message``.

    Args:
        comp: composition or formula string.
        n_atoms: target number of atoms (>= atoms of one formula unit).
        multiple_of: the formula-unit count must also be a multiple of this.

    Raises:
        StructureError: ``n_atoms`` is not an integer or is fewer than one formula unit.
    """
    comp = GlassComposition.parse(comp)
    if isinstance(n_atoms, bool) or not isinstance(n_atoms, (int,)) and not (
            isinstance(n_atoms, float) and float(n_atoms).is_integer()):
        raise StructureError("number of atoms must be an integer", field="n_atoms", value=n_atoms,
                             allowed=f"an integer >= {math.ceil(comp.atoms_per_fu)}")
    n_atoms = int(n_atoms)
    if n_atoms < comp.atoms_per_fu - 1e-9:
        raise StructureError(f"too few atoms for one formula unit of {comp.formula} "
                             f"({comp.atoms_per_fu:g} atoms)", field="n_atoms", value=n_atoms,
                             allowed=f"an integer >= {math.ceil(comp.atoms_per_fu)}")
    if multiple_of < 1:
        raise StructureError("multiple_of must be >= 1", field="multiple_of", value=multiple_of)
    q0 = _min_units(comp)
    q = q0 * multiple_of // math.gcd(q0, multiple_of)
    block_atoms = q * comp.atoms_per_fu  # atoms per exact block (integer)
    k_lo = max(1, math.floor(n_atoms / block_atoms))
    k_hi = max(1, math.ceil(n_atoms / block_atoms))
    k = k_lo if abs(k_lo * block_atoms - n_atoms) < abs(k_hi * block_atoms - n_atoms) else k_hi
    n_fu = k * q
    counts = {el: int(round(c * n_fu)) for el, c in comp.counts_per_fu().items()}
    total = sum(counts.values())
    exact = total == n_atoms
    if exact:
        msg = f"{n_fu} formula units of {comp.formula}: {total} atoms, as requested"
    else:
        msg = (f"{n_atoms} atoms is not a whole number of {comp.formula} cells (needs multiples of "
               f"{q} formula units = {int(round(block_atoms))} atoms); using the nearest exact "
               f"size: {n_fu} formula units = {total} atoms")
    return SupercellSize(n_fu, counts, total, exact, msg)
