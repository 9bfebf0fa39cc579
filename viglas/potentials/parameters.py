"""Parameters of the classical ionic potential and their YAML file format.

The format (``schema: viglas-ionic/1``) is shared by the MD engine
(:class:`viglas.potentials.IonicPotential`) and the force-matching fitter::

    schema: viglas-ionic/1
    description: ...
    provenance: {reference: chgnet-0.3.0, command: "...", date: ...}
    units: {A: eV, rho: Angstrom, C: eV Angstrom^6, B: eV Angstrom^12, charge: e,
            alpha: 1/Angstrom, cutoff: Angstrom}
    charges: {Li: 1, Na: 1, Al: 3, Ga: 3, In: 3, B: 3, Cl: -1, O: -2}   # formal
    charge_scale: 0.75          # q_i = charge_scale * formal charge
    coulomb: {method: dsf, alpha: 0.2, cutoff: 10.0}
    short_range_cutoff: 7.0     # Buckingham + wall cutoff, energy shifted to 0 there
    pairs:                      # key "X-Y", X and Y in alphabetical order
      Al-Cl: {A: 1500.0, rho: 0.30, C: 0.0, B: 0.0, fixed: [C]}

    three_body:                 # optional angle term, key = centre element
      Al: {k: 2.0, cos0: -0.3333, gamma: 1.0, cutoff: 3.0, neighbours: [Cl, O]}

Pair energy ``A exp(-r/rho) - C/r^6 + B/r^12`` (shifted to zero at
``short_range_cutoff``); Coulomb by damped shifted force (Fennell & Gezelter,
J. Chem. Phys. 124, 234104 (2006)) with ``alpha`` and ``cutoff``. Pairs absent from
the file have no short-range term, only Coulomb.

The optional three-body term holds the angles X-M-Y at a network former M (X, Y among
its ``neighbours``) near ``cos0`` (-1/3 = tetrahedral), in the Stillinger-Weber form
(the three-body part of LAMMPS ``pair_style sw``)::

    E3 = sum_M sum_{X<Y} k (cos theta_XMY - cos0)^2 exp(gamma/(r_MX - rc)) exp(gamma/(r_MY - rc))

for r_MX, r_MY < rc (``cutoff``); the screening makes the term and its derivatives go
smoothly to zero at rc. Pair terms alone cannot keep AlX4 tetrahedra: the Coulomb
attraction of a fifth anion wins (see chgnet_ionic_report.json, improvement_attempts).

Shipped plain sets: ``chgnet-ionic`` (``data/chgnet_ionic.yaml``, fitted to CHGNet 0.3.0;
the default potential until session 10, and the set a plain ``load_parameters()`` reads)
and ``trial``. The *default potential* of viglas is not a plain set: ``parameters:
default`` in a config is the ionic+delta set ``dft-delta`` fitted to PBE-D3
(:data:`viglas.potentials.delta.SHIPPED_DELTA`), which this module cannot read.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from viglas.errors import ConfigError

SCHEMA = "viglas-ionic/1"

DEFAULT_UNITS: dict[str, str] = {
    "A": "eV", "rho": "Angstrom", "C": "eV Angstrom^6", "B": "eV Angstrom^12",
    "charge": "e", "alpha": "1/Angstrom", "cutoff": "Angstrom",
}
#: Units of the three-body term (added to ``units`` of files that have one).
THREE_BODY_UNITS: dict[str, str] = {"k": "eV", "cos0": "1", "gamma": "Angstrom"}

#: Parameter names of a three-body term that a fitter may vary (or list under ``fixed``).
THREE_BODY_FIELDS = ("k", "cos0", "gamma", "cutoff")

#: Parameter names of one pair that a fitter may vary (or list under ``fixed``).
PAIR_FIELDS = ("A", "rho", "C", "B")


def _is_element(symbol: str) -> bool:
    from ase.data import atomic_numbers

    return symbol in atomic_numbers and symbol != "X"


def _check_fixed_names(names: list[str], allowed: tuple[str, ...]) -> list[str]:
    """Validator body of the ``fixed`` lists: every name must be a parameter name."""
    bad = [name for name in names if name not in allowed]
    if bad:
        raise ValueError(f"unknown names in fixed: {bad}; allowed: {list(allowed)}")
    return names


def pair_key(a: str, b: str) -> str:
    """Canonical pair key ``"X-Y"`` with X, Y in alphabetical order (``"Al-Cl"``)."""
    x, y = sorted((a, b))
    return f"{x}-{y}"


class PairParameters(BaseModel):
    """Short-range parameters of one element pair.

    ``A`` (eV), ``rho`` (Å), ``C`` (eV Å^6), ``B`` (eV Å^12); ``fixed`` lists the
    names a fitter must not change.
    """

    model_config = ConfigDict(extra="forbid")

    A: float = Field(ge=0.0, description="Born-Mayer prefactor, eV")
    rho: float = Field(gt=0.0, description="Born-Mayer decay length, Angstrom")
    C: float = Field(default=0.0, ge=0.0, description="dispersion coefficient, eV Angstrom^6")
    B: float = Field(default=0.0, ge=0.0, description="repulsive wall B/r^12, eV Angstrom^12")
    fixed: list[str] = Field(default_factory=list)

    @field_validator("fixed")
    @classmethod
    def _check_fixed(cls, v: list[str]) -> list[str]:
        return _check_fixed_names(v, PAIR_FIELDS)

    def energy(self, r: float, cutoff: float | None = None) -> float:
        """Pair energy in eV at distance ``r`` (Å), shifted to 0 at ``cutoff`` if given."""
        import math

        def raw(x: float) -> float:
            return self.A * math.exp(-x / self.rho) - self.C / x**6 + self.B / x**12

        if cutoff is None:
            return raw(r)
        return raw(r) - raw(cutoff) if r < cutoff else 0.0


class ThreeBodyParameters(BaseModel):
    """Angle term around one centre element (Stillinger-Weber form, see module doc).

    ``k`` (eV) strength, ``cos0`` target cosine (-1/3 tetrahedral, -1/2 trigonal),
    ``gamma`` (Å) and ``cutoff`` (Å) of the screening ``exp(gamma/(r - cutoff))``,
    ``neighbours`` the elements whose angles count; ``fixed`` names a fitter must keep.
    """

    model_config = ConfigDict(extra="forbid")

    k: float = Field(ge=0.0, description="strength, eV")
    cos0: float = Field(ge=-1.0, le=1.0, description="equilibrium cosine")
    gamma: float = Field(gt=0.0, description="screening length, Angstrom")
    cutoff: float = Field(gt=0.0, description="bond cutoff, Angstrom")
    neighbours: list[str] = Field(min_length=1)
    fixed: list[str] = Field(default_factory=list)

    @field_validator("neighbours")
    @classmethod
    def _check_neighbours(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if not _is_element(s)]
        if bad:
            raise ValueError(f"unknown element symbols in neighbours: {bad}")
        return sorted(set(v))

    @field_validator("fixed")
    @classmethod
    def _check_fixed(cls, v: list[str]) -> list[str]:
        return _check_fixed_names(v, THREE_BODY_FIELDS)

    def screening(self, r: float) -> float:
        """exp(gamma/(r - cutoff)) for r < cutoff, else 0."""
        import math

        return math.exp(self.gamma / (r - self.cutoff)) if r < self.cutoff else 0.0


class CoulombSettings(BaseModel):
    """Damped-shifted-force Coulomb: damping ``alpha`` (1/Å) and ``cutoff`` (Å)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["dsf"] = "dsf"
    alpha: float = Field(default=0.2, ge=0.0, description="damping parameter, 1/Angstrom")
    cutoff: float = Field(default=10.0, gt=0.0, description="Coulomb cutoff, Angstrom")


class IonicParameters(BaseModel):
    """All parameters of the ionic potential, as stored in a ``viglas-ionic/1`` YAML file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(default=SCHEMA, alias="schema")
    description: str = ""
    provenance: dict[str, Any] = Field(default_factory=dict)
    units: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_UNITS))
    charges: dict[str, float]
    charge_scale: float = Field(default=1.0, gt=0.0, le=1.0)
    coulomb: CoulombSettings = Field(default_factory=CoulombSettings)
    short_range_cutoff: float = Field(default=7.0, gt=0.0)
    pairs: dict[str, PairParameters] = Field(default_factory=dict)
    three_body: dict[str, ThreeBodyParameters] = Field(default_factory=dict)

    @field_validator("schema_")
    @classmethod
    def _check_schema(cls, v: str) -> str:
        if v != SCHEMA:
            raise ValueError(f"unsupported schema {v!r}; allowed: {SCHEMA!r}")
        return v

    @field_validator("charges")
    @classmethod
    def _check_charges(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [s for s in v if not _is_element(s)]
        if bad:
            raise ValueError(f"unknown element symbols in charges: {bad}")
        return v

    @field_validator("pairs", mode="before")
    @classmethod
    def _canonical_pairs(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}
        for key, val in v.items():
            parts = str(key).split("-")
            if len(parts) != 2 or not all(_is_element(p) for p in parts):
                raise ValueError(f"pair key {key!r} is not 'X-Y' with element symbols")
            canon = pair_key(*parts)
            if canon in out:
                raise ValueError(f"pair {canon} given twice (as {key!r})")
            out[canon] = val
        return dict(sorted(out.items()))

    @model_validator(mode="after")
    def _check_consistency(self) -> "IonicParameters":
        for key in self.pairs:
            for sym in key.split("-"):
                if sym not in self.charges:
                    raise ValueError(f"pair {key} uses {sym}, which has no entry in charges")
        for centre, tb in self.three_body.items():
            for sym in [centre, *tb.neighbours]:
                if sym not in self.charges:
                    raise ValueError(f"three_body {centre} uses {sym}, which has no entry "
                                     "in charges")
            if tb.cutoff > self.short_range_cutoff:
                raise ValueError(f"three_body {centre} cutoff {tb.cutoff} is beyond "
                                 f"short_range_cutoff {self.short_range_cutoff}")
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def elements(self) -> list[str]:
        """Element symbols this parameter set knows (those with a charge)."""
        return sorted(self.charges)

    def charge(self, symbol: str) -> float:
        """Partial charge (e) used in the Coulomb term: ``charge_scale * formal``."""
        return self.charge_scale * self.charges[symbol]

    def pair(self, a: str, b: str) -> PairParameters | None:
        """Short-range parameters of pair (a, b) or None if it has only Coulomb."""
        return self.pairs.get(pair_key(a, b))

    def check_elements(self, symbols: list[str] | set[str]) -> None:
        """Raise :class:`ConfigError` if a symbol has no charge in this parameter set."""
        missing = sorted(set(symbols) - set(self.charges))
        if missing:
            raise ConfigError("elements without parameters in the ionic potential",
                              field="charges", value=missing, allowed=", ".join(self.elements),
                              hint="add charges (and pairs) for them to the parameter file")

    def identity_dict(self) -> dict[str, Any]:
        """JSON dict for hashing (checkpoints, provenance): an empty ``three_body`` is
        left out, so sets without one hash as they did before the term existed."""
        d = self.model_dump(mode="json")
        if not d.get("three_body"):
            d.pop("three_body", None)
        return d

    def to_yaml_dict(self) -> dict[str, Any]:
        """Plain dict in the file layout (``schema`` key first, pairs sorted)."""
        d = self.model_dump(by_alias=True, mode="json")
        d["pairs"] = {k: {kk: vv for kk, vv in p.items() if kk != "fixed" or vv}
                      for k, p in d["pairs"].items()}
        order = ["schema", "description", "provenance", "units", "charges", "charge_scale",
                 "coulomb", "short_range_cutoff", "pairs"]
        if d["three_body"]:
            d["units"] = {**d["units"], **THREE_BODY_UNITS}
            d["three_body"] = {k: {kk: vv for kk, vv in t.items() if kk != "fixed" or vv}
                               for k, t in sorted(d["three_body"].items())}
            order.append("three_body")
        return {k: d[k] for k in order}


def chgnet_ionic_path() -> Path:
    """Path of the shipped plain ionic set fitted to CHGNet (``chgnet-ionic``,
    ``viglas/potentials/data/chgnet_ionic.yaml``)."""
    return Path(str(resources.files("viglas.potentials") / "data" / "chgnet_ionic.yaml"))


def trial_parameters_path() -> Path:
    """Path of the shipped *trial* parameter file (hand-picked guesses, not fitted)."""
    return Path(str(resources.files("viglas.potentials") / "data" / "trial.yaml"))


#: names that mean the default potential, an ionic+delta set this module cannot read
DEFAULT_NAMES = ("default",)


def _shipped(name: str) -> Path | None:
    if name in ("chgnet-ionic", "chgnet_ionic.yaml"):
        return chgnet_ionic_path()
    if name in ("trial", "trial.yaml"):
        return trial_parameters_path()
    return None


def load_parameters(path: str | Path | None = None) -> IonicParameters:
    """Read a ``viglas-ionic/1`` YAML file (a plain ionic set).

    ``path=None`` (or ``"chgnet-ionic"``) loads the shipped plain set fitted to CHGNet,
    the start and baseline of fits; ``"trial"`` the shipped trial set. ``"default"`` is
    refused: the default potential is the ionic+delta set ``dft-delta``
    (:func:`viglas.potentials.delta.make_potential` builds it).
    Raises :class:`ConfigError` naming the offending key on a bad file.
    """
    import yaml

    if path is not None and str(path) in DEFAULT_NAMES:
        raise ConfigError("'default' names the default potential, the ionic+delta set "
                          "dft-delta, which is not a plain ionic parameter set",
                          field="parameters", value=str(path),
                          allowed="chgnet-ionic, trial, or a viglas-ionic/1 YAML path",
                          hint="a config's calculator {name: ionic, params: {parameters: "
                               "default}} builds dft-delta; for the plain ionic set fitted "
                               "to CHGNet name it 'chgnet-ionic'")
    shipped = _shipped(str(path)) if path is not None else chgnet_ionic_path()
    p = Path(shipped) if shipped is not None else Path(path)  # type: ignore[arg-type]
    if not p.exists():
        if path is None or str(path) in ("chgnet-ionic", "chgnet_ionic.yaml"):
            raise ConfigError("the shipped chgnet-ionic parameter file is not installed",
                              field="parameters", value=str(p),
                              allowed="a viglas-ionic/1 YAML path, or 'trial'",
                              hint=f"use the trial set {trial_parameters_path()} "
                                   "(parameters: trial) or fit one with 'viglas potential fit'")
        raise ConfigError("parameter file not found", field="parameters", value=str(p))
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML ({exc})", field="parameters", value=str(p)) from exc
    if not isinstance(data, dict):
        raise ConfigError("parameter file must be a YAML mapping", field="parameters",
                          value=str(p))
    return parameters_from_dict(data, source=str(p))


def parameters_from_dict(data: dict[str, Any], source: str = "<dict>") -> IonicParameters:
    """Validate a dict in the file layout; errors name the first bad key."""
    try:
        return IonicParameters.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        if not loc:  # a whole-model check: its message starts with what it is about
            import re

            m = re.match(r"(?:Value error, )?(three_body|pair) (\S+)", err["msg"])
            loc = (f"three_body.{m.group(2)}" if m.group(1) == "three_body"
                   else f"pairs.{m.group(2)}") if m else "parameters"
        loc = loc.replace("schema_", "schema")
        raise ConfigError(f"invalid ionic parameters in {source}: {err['msg']}", field=loc,
                          value=err.get("input") if not isinstance(err.get("input"), dict)
                          else None,
                          allowed="see the viglas-ionic/1 format in "
                                  "viglas/potentials/parameters.py") from exc


def save_parameters(params: IonicParameters, path: str | Path) -> Path:
    """Write ``params`` as YAML, atomically (:func:`viglas.files.atomic_write_text`).
    Returns the path."""
    import yaml

    from viglas.files import atomic_write_text

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, yaml.safe_dump(params.to_yaml_dict(), sort_keys=False,
                                        default_flow_style=None, width=100))
    return p
