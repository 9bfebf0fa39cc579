"""YAML run configurations, validated by pydantic models.

A config says *what* to compute (one composition, an oxygen sweep or a screening
over formers/alkalis/x), *with which* potential, and the MD/analysis settings.
``load_config(path)`` reads and validates it; every problem is raised as one
:class:`viglas.errors.ConfigError` naming the dotted key path, e.g.
``production.timestep_fs: must be > 0 (got -1.0; allowed: a time > 0 in fs)``.

Units live in the key names (``t_melt_K``, ``timestep_fs``, ``duration_ps``,
``pressure_GPa``). A value may also be written as a string with its unit
(``"2 ps"`` for a ``*_fs`` key is converted to 2000 fs); a unit of the wrong kind
(``"300 fs"`` for a temperature) is rejected. Unknown keys are rejected with a
"did you mean" hint (``timestep_ps`` -> ``timestep_fs``).

Example (see ``configs/*.yaml`` for commented presets)::

    kind: composition
    name: quick
    seed: 1
    composition: LiAlCl2.5O0.75
    calculator: {name: ionic, params: {parameters: default}}
    structure: {n_atoms: 120}
    melt_quench: {t_melt_K: 1500, t_final_K: 600, hold_ps: 5, cool_rate_K_ps: 100}
    production: {temperatures_K: [600, 700, 800], replicas: 2, duration_ps: 20}
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Optional, Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)

from viglas.errors import ConfigError, ViglasError
from viglas.units import md_steps

__all__ = [
    "Config", "CalculatorConfig", "StructureConfig", "MeltQuenchConfig",
    "ProductionConfig", "AnalysisConfig", "SweepConfig", "ScreeningConfig",
    "load_config", "parse_config", "KNOWN_CALCULATORS",
]

#: Calculator names understood by ``viglas.calculators.get_calculator`` (plus any
#: ``"package.module:factory"`` import path).
KNOWN_CALCULATORS = ("ionic", "emt", "chgnet", "sevennet", "mace-mp", "mattersim", "orb")

# --------------------------------------------------------------------------- units
_UNITS: dict[str, dict[str, float]] = {
    # dimension -> {unit spelling: factor to the field's base unit}
    "fs": {"fs": 1.0, "ps": 1e3, "ns": 1e6},
    "ps": {"fs": 1e-3, "ps": 1.0, "ns": 1e3},
    "K": {"K": 1.0},
    "GPa": {"GPa": 1.0, "MPa": 1e-3, "bar": 1e-4, "atm": 1.01325e-4, "Pa": 1e-9},
    "K/ps": {"K/ps": 1.0, "K/fs": 1e3, "K/ns": 1e-3},
    "g/cm3": {"g/cm3": 1.0, "g/cm^3": 1.0, "g cm-3": 1.0, "kg/m3": 1e-3},
    "A": {"A": 1.0, "Angstrom": 1.0, "Å": 1.0, "nm": 10.0},
}
_NUM_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*)?$")


def _quantity(base: str):
    """A BeforeValidator turning ``3``, ``"3"`` or ``"3 <unit>"`` into a float in ``base``."""

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a number in {base}, not a true/false value")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            m = _NUM_UNIT.match(value)
            if not m:
                raise ValueError(f"expected a number in {base} (optionally with a unit, "
                                 f"e.g. '2 {base}')")
            number, unit = float(m.group(1)), (m.group(2) or base).strip()
            table = _UNITS[base]
            if unit not in table:
                raise ValueError(f"wrong unit '{unit}' (this key is in {base}; accepted: "
                                 f"{', '.join(table)})")
            return number * table[unit]
        return value

    return BeforeValidator(convert)


Time_fs = Annotated[float, _quantity("fs")]
Time_ps = Annotated[float, _quantity("ps")]
Temp_K = Annotated[float, _quantity("K")]
Pressure_GPa = Annotated[float, _quantity("GPa")]
Rate_K_ps = Annotated[float, _quantity("K/ps")]
Density = Annotated[float, _quantity("g/cm3")]
Length_A = Annotated[float, _quantity("A")]


class _Strict(BaseModel):
    """Base: unknown keys forbidden, values validated on assignment, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _positive(name: str, value: float | None, unit: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        op = ">= 0" if allow_zero else "> 0"
        if not unit and "_" in name:
            unit = name.rsplit("_", 1)[1].replace("cm3", "cm^3")
            unit = {"A": "Angstrom"}.get(unit, unit)
            if unit in ("ratio", "atoms"):
                unit = ""
        raise ValueError(f"must be {op}" + (f" {unit}" if unit else ""))


# --------------------------------------------------------------------------- sections
class CalculatorConfig(_Strict):
    """Which interatomic potential: ``name`` (ionic, chgnet, ...) and its ``params``.

    ``params`` are passed to ``viglas.calculators.get_calculator`` unchanged, e.g.
    ``{parameters: default}`` (or no ``parameters``) for the default potential, the
    ionic+delta set ``dft-delta`` fitted to PBE-D3 (with its ACE-MLP correction;
    ``{parameters: dft-delta-linear}`` without it, faster); ``{parameters: chgnet-ionic}``
    for the plain ionic set fitted to CHGNet; ``{model: 0.3.0}`` for CHGNet itself.
    """

    name: str = "ionic"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        value = value.strip()
        if ":" in value:  # "package.module:factory"
            return value
        known = _known_calculators()
        if value.lower() not in known:
            raise ValueError(f"unknown calculator '{value}'; allowed: {', '.join(known)} "
                             "or 'package.module:factory'")
        return value.lower()


def _known_calculators() -> tuple[str, ...]:
    try:  # the registry is the authority once it exists
        from viglas import calculators as _calc

        names = getattr(_calc, "CALCULATOR_NAMES", None) or getattr(_calc, "KNOWN_CALCULATORS", None)
        if names:
            extra = tuple(getattr(_calc, "registered_calculators", dict)())
            return tuple(str(n) for n in names) + extra
    except Exception:  # noqa: BLE001 - registry missing or broken: fall back to the list
        pass
    return KNOWN_CALCULATORS


#: Largest cell viglas builds and runs: MD with the ionic potential needs ~10 kB per
#: atom (neighbour lists), so 1e6 atoms need ~10 GB (viglas.structures.check_memory
#: also compares the estimate with the memory of the machine that runs the job).
MAX_ATOMS = 1_000_000


class StructureConfig(_Strict):
    """How the starting glass model is built (``viglas.structures.build_glass``)."""

    n_atoms: int = Field(120, description="target atoms per cell (rounded to whole formula units)")
    method: Literal["substitution", "packing"] = "substitution"
    density_g_cm3: Density | None = Field(None, description="start density; None = estimate")
    min_distance_A: Length_A | None = None

    @field_validator("n_atoms")
    @classmethod
    def _n(cls, v: int) -> int:
        if v < 6:
            raise ValueError("must be >= 6 atoms")
        if v > MAX_ATOMS:
            raise ValueError(f"must be <= {MAX_ATOMS:,} atoms (MD needs ~10 kB per atom: "
                             f"{v:,} atoms would need ~{v * 1e4 / 1e9:.0f} GB)")
        return v

    @field_validator("density_g_cm3", "min_distance_A")
    @classmethod
    def _pos(cls, v, info):
        _positive(info.field_name, v, "")
        return v


class MeltQuenchConfig(_Strict):
    """Heat, hold at ``t_melt_K``, cool at ``cool_rate_K_ps`` to ``t_final_K`` (NPT at
    ``pressure_GPa``); the cooling curve V(T) gives Tg."""

    enabled: bool = True
    t_melt_K: Temp_K = 1500.0
    t_final_K: Temp_K = 300.0
    hold_ps: Time_ps = 5.0
    cool_rate_K_ps: Rate_K_ps = 100.0
    pressure_GPa: Pressure_GPa = Field(0.0, description="NPT pressure of the melt-quench "
                                       "(the default potential, dft-delta, holds every "
                                       "preset melt together at 0 GPa, default_report.json; "
                                       "the plain chgnet-ionic set needs 0.5 GPa)")
    timestep_fs: Time_fs = 1.0
    tg_min_cooling_ps: Time_ps = Field(
        20.0, description="fit Tg only when the cooling stage lasts at least this long; in a "
        "faster quench the volume lags the barostat and the V(T) kink is not Tg")
    tg_cooling_rates_K_ps: list[Rate_K_ps] = Field(
        default_factory=list, description="extra continuous NPT quenches from the melt at "
        "these rates (K/ps) for Tg(q); with the main quench they give Tg extrapolated to "
        "10 K/min (viglas.analysis.tg_rate); [] = no extra quenches")

    @field_validator("t_melt_K", "t_final_K", "cool_rate_K_ps", "timestep_fs")
    @classmethod
    def _pos(cls, v, info):
        _positive(info.field_name, v, "")
        return v

    @field_validator("hold_ps")
    @classmethod
    def _nonneg(cls, v, info):
        _positive(info.field_name, v, "", allow_zero=True)
        return v

    @model_validator(mode="after")
    def _order(self):
        for r in self.tg_cooling_rates_K_ps:
            if r <= 0:
                raise ValueError(f"tg_cooling_rates_K_ps: rate {r:g} K/ps is not > 0")
        rates = [self.cool_rate_K_ps, *self.tg_cooling_rates_K_ps]
        if len(set(rates)) != len(rates):
            raise ValueError("tg_cooling_rates_K_ps must differ from each other and from "
                             f"cool_rate_K_ps ({self.cool_rate_K_ps:g})")
        if self.t_final_K >= self.t_melt_K:
            raise ValueError(f"t_final_K ({self.t_final_K:g}) must be below t_melt_K "
                             f"({self.t_melt_K:g})")
        return self


class ProductionConfig(_Strict):
    """Production MD at each temperature x replica (different seeds)."""

    temperatures_K: list[Temp_K] = Field(default_factory=lambda: [600.0, 700.0, 800.0])
    replicas: int = 2
    ensemble: Literal["nvt", "npt"] = "nvt"
    thermostat: Literal["langevin", "bussi", "nose-hoover"] = "bussi"
    pressure_GPa: Pressure_GPa = 0.0
    timestep_fs: Time_fs = 1.0
    equilibration_ps: Time_ps = 2.0
    equilibration_ensemble: Literal["npt", "nvt"] = Field(
        "npt", description="npt: find the density at T (Langevin barostat at pressure_GPa), "
        "then production at that mean volume")
    duration_ps: Time_ps = 20.0
    save_every_fs: Time_fs = 20.0
    checkpoint_every_ps: Time_ps = 1.0
    target_d_rel_err: Optional[float] = Field(
        None, description="run until D's relative error (1 sd / D) is at most this, e.g. "
        "0.15; the first duration_ps is the minimum; null = fixed duration_ps")
    max_duration_ps: Optional[Time_ps] = Field(
        None, description="cap of an adaptive run (required with target_d_rel_err); a run "
        "that reaches it is reported as such")
    max_duration_ps_by_T: dict[float, float] = Field(
        default_factory=dict, description="per-temperature caps (K -> ps) overriding "
        "max_duration_ps, e.g. {300: 5000, 400: 2000}: slow, cold runs get longer")

    @field_validator("temperatures_K")
    @classmethod
    def _temps(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("give at least one temperature in K")
        for t in v:
            if t <= 0:
                raise ValueError(f"temperature {t:g} K is not > 0 K")
        if len(set(v)) != len(v):
            raise ValueError("temperatures must be distinct")
        return sorted(v)

    @field_validator("replicas")
    @classmethod
    def _rep(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("timestep_fs", "duration_ps", "save_every_fs", "checkpoint_every_ps")
    @classmethod
    def _pos(cls, v, info):
        _positive(info.field_name, v, "")
        return v

    @field_validator("equilibration_ps")
    @classmethod
    def _nonneg(cls, v, info):
        _positive(info.field_name, v, "", allow_zero=True)
        return v

    @model_validator(mode="after")
    def _steps(self):
        if self.ensemble == "npt" and self.thermostat == "bussi":
            raise ValueError("thermostat 'bussi' is NVT only; for ensemble npt use "
                             "'langevin' or 'nose-hoover'")
        if self.save_every_fs < self.timestep_fs:
            raise ValueError(f"save_every_fs ({self.save_every_fs:g}) must be >= timestep_fs "
                             f"({self.timestep_fs:g})")
        if self.target_d_rel_err is not None:
            if not (0.0 < self.target_d_rel_err < 1.0):
                raise ValueError(f"target_d_rel_err must be between 0 and 1, e.g. 0.15 "
                                 f"(got {self.target_d_rel_err:g})")
            if self.max_duration_ps is None:
                raise ValueError("target_d_rel_err needs max_duration_ps, the cap of the "
                                 "adaptive run (e.g. max_duration_ps: 2000)")
        for t, cap in self.max_duration_ps_by_T.items():
            if t not in self.temperatures_K:
                raise ValueError(f"max_duration_ps_by_T: {t:g} K is not one of temperatures_K")
            if cap < self.duration_ps:
                raise ValueError(f"max_duration_ps_by_T: cap {cap:g} ps at {t:g} K is shorter "
                                 f"than duration_ps ({self.duration_ps:g})")
        if self.max_duration_ps_by_T and self.target_d_rel_err is None:
            raise ValueError("max_duration_ps_by_T needs target_d_rel_err (it caps adaptive "
                             "runs)")
        if self.max_duration_ps is not None and self.max_duration_ps < self.duration_ps:
            raise ValueError(f"max_duration_ps ({self.max_duration_ps:g}) must be >= "
                             f"duration_ps ({self.duration_ps:g}), the first run length")
        if self.duration_ps * 1000.0 < 10 * self.save_every_fs:
            raise ValueError("duration_ps must hold at least 10 saved frames "
                             f"(duration {self.duration_ps:g} ps, save_every_fs "
                             f"{self.save_every_fs:g})")
        return self

    # derived step counts
    @property
    def steps(self) -> int:
        """Production steps per run."""
        return md_steps(self.duration_ps * 1000.0, self.timestep_fs)

    @property
    def max_steps(self) -> int | None:
        """Step cap of an adaptive run (None: fixed length)."""
        if self.target_d_rel_err is None or self.max_duration_ps is None:
            return None
        return md_steps(self.max_duration_ps * 1000.0, self.timestep_fs)

    def max_steps_at(self, t_K: float) -> int | None:
        """Step cap of the adaptive run at ``t_K`` (per-temperature cap if given)."""
        if self.target_d_rel_err is None:
            return None
        for t, cap in self.max_duration_ps_by_T.items():
            if abs(float(t) - float(t_K)) < 1e-9:
                return md_steps(cap * 1000.0, self.timestep_fs)
        return self.max_steps

    @property
    def equilibration_steps(self) -> int:
        """Equilibration steps per run (not analysed)."""
        return md_steps(self.equilibration_ps * 1000.0, self.timestep_fs)

    @property
    def save_every(self) -> int:
        """Steps between saved frames."""
        return max(1, md_steps(self.save_every_fs, self.timestep_fs))

    @property
    def checkpoint_every(self) -> int:
        """Steps between checkpoints."""
        return max(1, md_steps(self.checkpoint_every_ps * 1000.0, self.timestep_fs))


class AnalysisConfig(_Strict):
    """Diffusion, conductivity and fit settings."""

    species: str | None = Field(None, description="mobile species; None = the alkali")
    skip_ps: Time_ps = Field(0.0, description="discard this much of each production run")
    report_temperature_K: Temp_K = 300.0
    haven_ratio: float = Field(1.0, description="Haven ratio used in Nernst-Einstein sigma")
    vft: bool = True
    structure_metrics: bool = True
    plots: bool = True

    @field_validator("skip_ps")
    @classmethod
    def _nonneg(cls, v, info):
        _positive(info.field_name, v, "", allow_zero=True)
        return v

    @field_validator("report_temperature_K", "haven_ratio")
    @classmethod
    def _pos(cls, v, info):
        _positive(info.field_name, v, "")
        return v


CompositionInput = str | dict[str, Any]


def _composition(value: Any):
    """Validate a composition (formula string or {alkali, former, x}) via viglas.structures."""
    from viglas.structures import GlassComposition

    if isinstance(value, GlassComposition):
        return value
    if isinstance(value, str):
        return GlassComposition.from_formula(value)
    if isinstance(value, dict):
        data = dict(value)
        for key in ("alkali", "former"):
            if isinstance(data.get(key), str):
                data[key] = {data[key]: 1.0}
        return GlassComposition(**data)
    raise ValueError("expected a formula such as 'LiAlCl2.5O0.75' or a mapping "
                     "{alkali: Li, former: Al, x: 0.75}")


def _as_fraction_map(value: Any, what: str) -> dict[str, float]:
    if isinstance(value, str):
        return {value: 1.0}
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    raise ValueError(f"{what} must be an element symbol or a mapping like {{Al: 0.5, Ga: 0.5}}")


class SweepConfig(_Strict):
    """Oxygen sweep: one alkali/former pair at several x (O per formula unit)."""

    alkali: str | dict[str, float] = "Li"
    former: str | dict[str, float] = "Al"
    x: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0, 1.25])
    percolation_seed: int = 0

    @field_validator("x")
    @classmethod
    def _x(cls, v: list[float]) -> list[float]:
        if len(v) < 2:
            raise ValueError("give at least 2 oxygen contents x")
        for xi in v:
            if not 0 <= xi < 2:
                raise ValueError(f"x = {xi:g} outside 0 <= x < 2")
        if len(set(v)) != len(v):
            raise ValueError("x values must be distinct")
        return sorted(v)


class ScreeningConfig(_Strict):
    """Screening: every combination of alkali x former x x, or an explicit list."""

    alkali: list[str | dict[str, float]] = Field(default_factory=lambda: ["Li"])
    former: list[str | dict[str, float]] = Field(default_factory=lambda: ["Al", "Ga", "In"])
    x: list[float] = Field(default_factory=lambda: [0.75])
    compositions: list[CompositionInput] | None = Field(
        None, description="explicit formulas; replaces the product of alkali/former/x")

    @field_validator("x")
    @classmethod
    def _x(cls, v: list[float]) -> list[float]:
        for xi in v:
            if not 0 <= xi < 2:
                raise ValueError(f"x = {xi:g} outside 0 <= x < 2")
        return v


class Config(_Strict):
    """A whole viglas run. ``kind`` picks the flow; the sections hold the settings."""

    kind: Literal["composition", "oxygen_sweep", "screening"] = "composition"
    name: str = "viglas"
    seed: int = 0
    composition: CompositionInput | None = None
    sweep: SweepConfig | None = None
    screening: ScreeningConfig | None = None
    calculator: CalculatorConfig = Field(default_factory=CalculatorConfig)
    structure: StructureConfig = Field(default_factory=StructureConfig)
    melt_quench: MeltQuenchConfig = Field(default_factory=MeltQuenchConfig)
    production: ProductionConfig = Field(default_factory=ProductionConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,80}", v):
            raise ValueError("use letters, digits, '_', '-', '.', '+' only (max 80)")
        return v

    @field_validator("composition")
    @classmethod
    def _comp(cls, v):
        if v is None:
            return v
        try:
            _composition(v)
        except ViglasError as exc:
            raise ValueError(exc.message + (f" ({exc.allowed})" if exc.allowed else "")) from exc
        return v

    @model_validator(mode="after")
    def _kind(self):
        if self.kind == "composition" and self.composition is None:
            raise _KeyMissing("composition", "kind 'composition' needs a composition, e.g. "
                              "composition: LiAlCl2.5O0.75")
        if self.kind == "oxygen_sweep" and self.sweep is None:
            raise _KeyMissing("sweep", "kind 'oxygen_sweep' needs a sweep section "
                              "{alkali, former, x: [...]} with >= 2 x values")
        if self.kind == "screening" and self.screening is None:
            raise _KeyMissing("screening", "kind 'screening' needs a screening section "
                              "{alkali: [...], former: [...], x: [...]}")
        # all compositions must be valid
        for i, comp in enumerate(self._composition_inputs()):
            try:
                _composition(comp)
            except ViglasError as exc:
                raise _KeyMissing(f"{self._composition_key()}[{i}]", exc.one_line()) from exc
        return self

    def _composition_key(self) -> str:
        return {"composition": "composition", "oxygen_sweep": "sweep.x",
                "screening": "screening"}[self.kind]

    def _composition_inputs(self) -> list[Any]:
        if self.kind == "composition":
            return [self.composition]
        if self.kind == "oxygen_sweep":
            s = self.sweep
            return [{"alkali": _as_fraction_map(s.alkali, "alkali"),
                     "former": _as_fraction_map(s.former, "former"), "x": x} for x in s.x]
        s = self.screening
        if s.compositions:
            return list(s.compositions)
        return [{"alkali": _as_fraction_map(a, "alkali"), "former": _as_fraction_map(f, "former"),
                 "x": x} for a in s.alkali for f in s.former for x in s.x]

    def compositions(self) -> list:
        """The :class:`viglas.structures.GlassComposition` objects this run covers."""
        out, seen = [], set()
        for comp in self._composition_inputs():
            c = _composition(comp)
            if c.formula not in seen:
                seen.add(c.formula)
                out.append(c)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the validated config (units as in the key names)."""
        return self.model_dump(mode="json")


class _KeyMissing(ValueError):
    """Raised inside model validators to point at a specific key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


# --------------------------------------------------------------------------- loading
def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (sub)model at ``loc`` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            return []
        current = nxt
    return list(getattr(current, "model_fields", {}))


def _dotted(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("str", "dict[str,float]", "dict[str,any]", "function-after[_x(), list[float]]"):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def _to_config_error(exc: ValidationError, data: Any) -> ConfigError:
    """First pydantic error -> one ConfigError with the dotted key path."""
    errors = exc.errors(include_url=False)
    # prefer errors that are not union-branch noise
    err = errors[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in
                                                                         ("str", "dict", "int", "float"))))
    key = _dotted(loc)
    etype = err["type"]
    ctx_err = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_err, _KeyMissing):
        return ConfigError(ctx_err.message, field=ctx_err.key)
    if etype == "extra_forbidden":
        allowed = _allowed_fields(Config, loc)
        name = str(loc[-1]) if loc else ""
        hint = None
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
        stem = re.sub(r"_[A-Za-z0-9]+$", "", name)
        same_stem = [a for a in allowed if re.sub(r"_[A-Za-z0-9]+$", "", a) == stem and a != name]
        if same_stem:
            hint = f"did you mean '{same_stem[0]}'? (units are part of the key name)"
        elif close:
            hint = f"did you mean '{close[0]}'?"
        return ConfigError("unknown key", field=key, allowed=", ".join(allowed) or None, hint=hint)
    if etype == "missing":
        return ConfigError("required key is missing", field=key)
    msg = err["msg"]
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    value = err.get("input")
    if isinstance(value, (dict, list)) and len(repr(value)) > 80:
        return ConfigError(msg, field=key)
    return ConfigError(msg, field=key, value=value)


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a mapping (parsed YAML) into a :class:`Config`; ConfigError on failure."""
    if data is None:
        raise ConfigError("config is empty", field=source,
                          hint="start from configs/quick.yaml")
    if not isinstance(data, dict):
        raise ConfigError("the top level of a config must be a mapping of keys",
                          field=source, value=type(data).__name__)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _to_config_error(exc, data) from None


def load_config(path: str | Path) -> Config:
    """Read a YAML file and validate it; errors are one-line :class:`ConfigError`.

    Malformed YAML gives ``"<path>: malformed YAML at line L, column C: <problem>"``.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", field="config", value=str(path),
                          hint="try configs/quick.yaml")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML{where}: {problem}", field=str(path)) from None
    return parse_config(data, source=str(path))
