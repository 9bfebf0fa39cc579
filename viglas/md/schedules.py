"""Piecewise-linear schedules of a target (temperature in K, pressure in GPa) over time.

>>> s = Schedule.constant(300.0).then_ramp(1500.0, 10_000).then_hold(20_000)
>>> s(5_000.0), s.duration_fs
(900.0, 30000.0)

Before the first point a schedule holds its first value, after the last its last value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from viglas.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    """Target value at times ``times_fs`` (fs, non-decreasing), linear in between."""

    times_fs: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        t = np.asarray(self.times_fs, dtype=float)
        if len(t) == 0 or len(t) != len(self.values):
            raise ConfigError("a schedule needs matching, non-empty times and values",
                              field="schedule", value={"times_fs": self.times_fs,
                                                       "values": self.values})
        if np.any(np.diff(t) < 0) or t[0] < 0:
            raise ConfigError("schedule times must start at >= 0 fs and not decrease",
                              field="schedule.times_fs", value=list(self.times_fs))
        if not np.all(np.isfinite(self.values)):
            raise ConfigError("schedule values must be finite", field="schedule.values",
                              value=list(self.values))

    # ------------------------------------------------------------- builders
    @classmethod
    def constant(cls, value: float) -> "Schedule":
        """The same ``value`` at all times."""
        return cls((0.0,), (float(value),))

    @classmethod
    def ramp(cls, start: float, end: float, duration_fs: float) -> "Schedule":
        """Linear change from ``start`` to ``end`` over ``duration_fs``."""
        return cls.constant(start).then_ramp(end, duration_fs)

    def then_ramp(self, to: float, duration_fs: float) -> "Schedule":
        """Append a linear ramp to ``to`` lasting ``duration_fs``."""
        if duration_fs < 0:
            raise ConfigError("ramp duration must be >= 0", field="duration_fs",
                              value=duration_fs)
        t_end = self.times_fs[-1] + float(duration_fs)
        return Schedule(self.times_fs + (t_end,), self.values + (float(to),))

    def then_hold(self, duration_fs: float) -> "Schedule":
        """Append a hold of the last value for ``duration_fs``."""
        return self.then_ramp(self.values[-1], duration_fs)

    @classmethod
    def coerce(cls, value: "float | Schedule | dict | None", field: str) -> "Schedule | None":
        """A number (constant), a Schedule, a dict from :meth:`to_dict`, or None."""
        if value is None or isinstance(value, Schedule):
            return value
        if isinstance(value, dict):
            return cls.from_dict(value)
        try:
            return cls.constant(float(value))
        except (TypeError, ValueError) as exc:
            raise ConfigError("expected a number or a schedule", field=field,
                              value=repr(value)) from exc

    # -------------------------------------------------------------- queries
    def __call__(self, t_fs: float) -> float:
        """Target value at time ``t_fs`` (fs)."""
        if len(self.times_fs) == 1:
            return self.values[0]
        return float(np.interp(t_fs, self.times_fs, self.values))

    @property
    def is_constant(self) -> bool:
        return len(set(self.values)) == 1

    @property
    def duration_fs(self) -> float:
        """Time of the last point (fs)."""
        return float(self.times_fs[-1])

    @property
    def max(self) -> float:
        return float(max(self.values))

    @property
    def min(self) -> float:
        return float(min(self.values))

    def to_dict(self) -> dict[str, Any]:
        return {"times_fs": list(self.times_fs), "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Schedule":
        try:
            return cls(tuple(float(x) for x in d["times_fs"]), tuple(float(x) for x in d["values"]))
        except KeyError as exc:
            raise ConfigError("a schedule mapping needs times_fs and values", field="schedule",
                              value=d) from exc
