"""Run MD until a quantity is known well enough: precision-targeted production runs.

:func:`run_to_precision` alternates *extend the run* and *estimate the quantity* until
the relative error of the estimate reaches ``target_rel_err`` or the run reaches
``max_duration_ps``. It knows nothing about MD or diffusion: ``extend(total_steps)``
must run (or resume) the trajectory up to ``total_steps`` steps — with viglas's
``run_md`` that is a call with a larger ``steps`` in the same folder, which resumes
from the last checkpoint — and ``estimate()`` returns ``(value, error)`` from what is
on disk (e.g. D and its 1σ error from the trajectory so far).

Length of the next extension: the error of a time-averaged transport coefficient
falls as 1/√t once the diffusive regime is sampled, so the run needed is predicted as
t·(rel_err/target)² × ``safety`` and clamped to [1.25·t, ``max_growth``·t] and to the
cap. With ``state_path`` every estimate and the next target length are written to a
small JSON file before the run is extended; a run cut by a wall-time limit or a kill
(an HPC segment, ``kill -9``) replays those decisions and resumes the pending
extension, so it takes exactly the same path as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any

from viglas.errors import ConfigError
from viglas.files import atomic_write_text
from viglas.units import md_steps

#: Values of :attr:`AdaptiveOutcome.stop_reason`.
STOP_REASONS = ("target_reached", "max_duration_reached", "no_estimate_at_cap")


@dataclass
class AdaptiveOutcome:
    """What an adaptive run did: why it stopped, how long it ran, the error history.

    ``history``: one entry per estimate: ``duration_ps``, ``value``, ``error``,
    ``rel_err`` (None where the estimate failed, with ``message``).
    """

    stop_reason: str
    message: str
    duration_ps: float
    steps: int
    target_rel_err: float
    max_duration_ps: float
    rel_err: float | None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rel(value: float | None, error: float | None) -> float | None:
    if value is None or error is None:
        return None
    if not (math.isfinite(value) and math.isfinite(error)) or value <= 0:
        return None
    return float(error) / float(value)


def run_to_precision(extend: Callable[[int], Any], estimate: Callable[[], tuple[float, float]],
                     *, initial_steps: int, timestep_fs: float, target_rel_err: float,
                     max_duration_ps: float, safety: float = 1.3, max_growth: float = 4.0,
                     min_step_increment: int = 1, state_path: str | Path | None = None,
                     log: Callable[[str], None] | None = None) -> AdaptiveOutcome:
    """Extend a run until ``estimate()``'s relative error ≤ ``target_rel_err`` or the
    run is ``max_duration_ps`` long (see the module docstring).

    ``estimate`` may raise (e.g. no diffusive regime yet): that counts as "not yet"
    and the run grows by ``max_growth``. Returns an :class:`AdaptiveOutcome`; a run
    that hits the cap says so in ``stop_reason`` and ``message``, never silently.
    """
    if not (0 < target_rel_err < 1):
        raise ConfigError("target relative error must be between 0 and 1",
                          field="production.target_d_rel_err", value=target_rel_err,
                          allowed="e.g. 0.15 for 15 %")
    if timestep_fs <= 0:
        raise ConfigError("time step must be > 0", field="production.timestep_fs",
                          value=timestep_fs)
    max_steps = md_steps(max_duration_ps * 1000.0, timestep_fs, "down")
    if max_steps < initial_steps:
        raise ConfigError("the cap is shorter than the first production run",
                          field="production.max_duration_ps", value=max_duration_ps,
                          allowed=f">= {initial_steps * timestep_fs / 1000:g} ps "
                                  "(production_ps)")
    say = log or (lambda _m: None)
    steps = int(initial_steps)
    history: list[dict[str, Any]] = []
    state = Path(state_path) if state_path is not None else None
    if state is not None and state.exists():
        saved = json.loads(state.read_text())
        if saved.get("initial_steps") == int(initial_steps) and saved.get(
                "target_rel_err") == target_rel_err and saved.get("max_steps") == max_steps:
            history = list(saved["history"])
            steps = int(saved["next_steps"])
            say(f"adaptive run resumed: {len(history)} estimates on record, extending to "
                f"{steps * timestep_fs / 1000:g} ps")

    def save(next_steps: int) -> None:
        if state is None:
            return
        state.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(state, json.dumps({"initial_steps": int(initial_steps),
                                             "target_rel_err": target_rel_err,
                                             "max_steps": max_steps, "history": history,
                                             "next_steps": int(next_steps)}))

    save(steps)
    while True:
        extend(steps)
        dur = steps * timestep_fs / 1000.0
        try:
            value, error = estimate()
            rel = _rel(value, error)
            msg = None if rel is not None else "estimate not positive/finite"
        except Exception as exc:  # noqa: BLE001 - any analysis failure is "not yet"
            value = error = rel = None
            msg = f"{type(exc).__name__}: {exc}"
        history.append({"duration_ps": dur, "value": value, "error": error,
                        "rel_err": rel, "message": msg, "steps": int(steps)})
        save(steps)
        if rel is not None and rel <= target_rel_err:
            return AdaptiveOutcome("target_reached",
                                   f"relative error {rel:.3f} <= target {target_rel_err:g} "
                                   f"after {dur:g} ps", dur, steps, target_rel_err,
                                   max_duration_ps, rel, history)
        if steps >= max_steps:
            if rel is None:
                return AdaptiveOutcome("no_estimate_at_cap",
                                       f"no usable estimate after {dur:g} ps (cap "
                                       f"{max_duration_ps:g} ps): {msg}", dur, steps,
                                       target_rel_err, max_duration_ps, None, history)
            return AdaptiveOutcome("max_duration_reached",
                                   f"cap of {max_duration_ps:g} ps reached with relative "
                                   f"error {rel:.3f} (target {target_rel_err:g})", dur,
                                   steps, target_rel_err, max_duration_ps, rel, history)
        if rel is None:
            factor = max_growth
        else:
            factor = min(max(safety * (rel / target_rel_err) ** 2, 1.25), max_growth)
        new = min(max_steps, max(steps + min_step_increment, int(math.ceil(steps * factor))))
        say(f"relative error {'n/a' if rel is None else f'{rel:.3f}'} after {dur:g} ps "
            f"(target {target_rel_err:g}): extending to {new * timestep_fs / 1000:g} ps")
        steps = new
        save(steps)
