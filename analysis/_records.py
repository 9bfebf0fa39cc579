"""Shared base of the analysis result dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Any, Self


class DictRecord:
    """Mixin for result dataclasses: ``from_dict`` builds one from a dict such as
    ``to_dict()`` or ``dataclasses.asdict`` wrote, ignoring keys that are not fields
    (derived values like ``d_300K_cm2_s``, or keys of a newer version)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})
