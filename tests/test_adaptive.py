"""Precision-targeted runs: stop at the target, at the cap (said so), same path on resume."""

from __future__ import annotations

import numpy as np
import pytest

from viglas.errors import ConfigError
from viglas.md.adaptive import run_to_precision


class FakeRun:
    """A 'trajectory' whose estimate has error 0.6/sqrt(t_ps) (relative)."""

    def __init__(self, fail_below_ps: float = 0.0):
        self.steps = 0
        self.calls = []
        self.fail_below_ps = fail_below_ps

    def extend(self, total):
        assert total >= self.steps  # never asked to shrink
        self.calls.append(total)
        self.steps = total

    def estimate(self):
        t_ps = self.steps * 2.0 / 1000
        if t_ps < self.fail_below_ps:
            raise ValueError("no diffusive regime yet")
        return 1e-6, 1e-6 * 0.6 / np.sqrt(t_ps)


def test_stops_when_the_target_is_reached():
    r = FakeRun()
    out = run_to_precision(r.extend, r.estimate, initial_steps=5000, timestep_fs=2.0,
                           target_rel_err=0.1, max_duration_ps=1000.0)
    assert out.stop_reason == "target_reached" and out.rel_err <= 0.1
    # 0.6/sqrt(t) <= 0.1 needs t >= 36 ps; the prediction overshoots by <= safety^1
    assert 36.0 <= out.duration_ps <= 36.0 * 1.3 * 1.01
    assert len(out.history) <= 3 and r.calls == sorted(r.calls)


def test_cap_is_reported_not_silent():
    r = FakeRun()
    out = run_to_precision(r.extend, r.estimate, initial_steps=5000, timestep_fs=2.0,
                           target_rel_err=0.01, max_duration_ps=50.0)
    assert out.stop_reason == "max_duration_reached"
    assert out.duration_ps == pytest.approx(50.0) and out.rel_err > 0.01
    assert "cap of 50 ps" in out.message


def test_failing_estimates_grow_the_run_and_are_recorded():
    r = FakeRun(fail_below_ps=30.0)
    out = run_to_precision(r.extend, r.estimate, initial_steps=5000, timestep_fs=2.0,
                           target_rel_err=0.15, max_duration_ps=500.0)
    assert out.stop_reason == "target_reached"
    assert out.history[0]["rel_err"] is None and "diffusive" in out.history[0]["message"]
    r2 = FakeRun(fail_below_ps=1e9)
    out2 = run_to_precision(r2.extend, r2.estimate, initial_steps=5000, timestep_fs=2.0,
                            target_rel_err=0.15, max_duration_ps=40.0)
    assert out2.stop_reason == "no_estimate_at_cap"


def test_killed_run_resumes_on_the_same_path(tmp_path):
    a = FakeRun()
    ref = run_to_precision(a.extend, a.estimate, initial_steps=1000, timestep_fs=2.0,
                           target_rel_err=0.05, max_duration_ps=1000.0)
    assert len(a.calls) >= 3

    class Killed(Exception):
        pass

    b = FakeRun()
    state = tmp_path / "adaptive.json"

    def dying(total):  # the run dies during its third extension, part-way
        if len(b.calls) == 2:
            b.steps = (b.steps + total) // 2
            b.calls.append(("killed", total))
            raise Killed
        b.extend(total)

    with pytest.raises(Killed):
        run_to_precision(dying, b.estimate, initial_steps=1000, timestep_fs=2.0,
                         target_rel_err=0.05, max_duration_ps=1000.0, state_path=state)
    # the restart replays the decisions on record and resumes the pending extension
    out = run_to_precision(b.extend, b.estimate, initial_steps=1000, timestep_fs=2.0,
                           target_rel_err=0.05, max_duration_ps=1000.0, state_path=state)
    assert out.steps == ref.steps and out.stop_reason == ref.stop_reason
    assert [h["steps"] for h in out.history] == [h["steps"] for h in ref.history]
    assert b.calls[3:] == a.calls[2:]


def test_bad_settings_name_the_field():
    r = FakeRun()
    with pytest.raises(ConfigError, match="target_d_rel_err"):
        run_to_precision(r.extend, r.estimate, initial_steps=10, timestep_fs=1.0,
                         target_rel_err=1.5, max_duration_ps=10.0)
    with pytest.raises(ConfigError, match="max_duration_ps"):
        run_to_precision(r.extend, r.estimate, initial_steps=10000, timestep_fs=1.0,
                         target_rel_err=0.1, max_duration_ps=1.0)
