"""The lifecycle function alone: single steps as Prometheus's AlertingRule.Eval takes them, and
properties of any run of evaluations (random conditions at random, increasing times)."""

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from alerting.lifecycle import AlertState, Notice, Step, Timers, transition

MINUTE = 60_000_000
T0 = 1_000 * MINUTE


def test_first_active_evaluation_is_pending_and_says_nothing():
    assert transition(None, True, T0, 2 * MINUTE, 0) == Step(
        Timers(AlertState.PENDING, T0, T0), None
    )


def test_without_for_the_first_active_evaluation_fires():
    assert transition(None, True, T0, 0, 0) == Step(
        Timers(AlertState.FIRING, T0, T0, fired_us=T0), Notice.FIRING
    )


def test_pending_fires_once_for_has_passed_since_it_became_active():
    pending = Timers(AlertState.PENDING, T0, T0)
    early = transition(pending, True, T0 + 2 * MINUTE - 1, 2 * MINUTE, 0)
    assert early == Step(Timers(AlertState.PENDING, T0, T0 + 2 * MINUTE - 1), None)
    fired = transition(pending, True, T0 + 2 * MINUTE, 2 * MINUTE, 0)
    assert fired == Step(
        Timers(AlertState.FIRING, T0, T0 + 2 * MINUTE, T0 + 2 * MINUTE), Notice.FIRING
    )


def test_pending_that_stops_is_dropped_silently():
    assert transition(Timers(AlertState.PENDING, T0, T0), False, T0 + MINUTE, MINUTE, 0) == Step(
        None, None
    )


def test_firing_is_kept_while_keep_firing_for_lasts_then_resolves():
    firing = Timers(AlertState.FIRING, T0, T0 + MINUTE, T0)
    kept = transition(firing, False, T0 + 4 * MINUTE - 1, 0, 3 * MINUTE)
    assert kept == Step(firing, Notice.FIRING)
    assert transition(firing, False, T0 + 4 * MINUTE, 0, 3 * MINUTE) == Step(None, Notice.RESOLVED)


def test_firing_resolves_at_once_without_keep_firing_for():
    firing = Timers(AlertState.FIRING, T0, T0 + MINUTE, T0)
    assert transition(firing, False, T0 + MINUTE, 0, 0) == Step(None, Notice.RESOLVED)


def test_a_clock_stepped_back_keeps_a_firing_alert_firing():
    """As the engine always did: an evaluation before the last active one (an NTP step back)
    is inside keep_firing_for, even when that is zero."""
    firing = Timers(AlertState.FIRING, T0, T0 + MINUTE, T0)
    assert transition(firing, False, T0 + MINUTE - 1, 0, 0) == Step(firing, Notice.FIRING)


def test_states_are_the_strings_the_ledger_stores():
    assert [s.value for s in AlertState] == ["pending", "firing"]
    assert [n.value for n in Notice] == ["firing", "resolved"]


@dataclass
class Run:
    """A rule's settings and its evaluations: (time, whether the condition held)."""

    for_us: int
    keep_us: int
    evaluations: list[tuple[int, bool]]


@st.composite
def runs(draw: st.DrawFn) -> Run:
    for_us = draw(st.integers(0, 5)) * MINUTE
    keep_us = draw(st.integers(0, 5)) * MINUTE
    gaps = draw(st.lists(st.integers(1, 3 * MINUTE), min_size=1, max_size=40))
    held = draw(st.lists(st.booleans(), min_size=len(gaps), max_size=len(gaps)))
    times, now = [], T0
    for gap in gaps:
        now += gap
        times.append(now)
    return Run(for_us, keep_us, list(zip(times, held, strict=True)))


def steps(run: Run) -> list[tuple[Timers | None, int, bool, Step]]:
    """(state before, time, condition, step) of each evaluation of the run."""
    found, timers = [], None
    for now, active in run.evaluations:
        step = transition(timers, active, now, run.for_us, run.keep_us)
        found.append((timers, now, active, step))
        timers = step.after
    return found


@given(runs())
def test_firing_exactly_when_a_firing_notice_is_due(run):
    for _, _, _, step in steps(run):
        firing = step.after is not None and step.after.state == AlertState.FIRING
        assert firing == (step.notice == Notice.FIRING)


@given(runs())
def test_an_alert_whose_condition_holds_is_never_inactive(run):
    for _, now, active, step in steps(run):
        if active:
            assert step.after is not None and step.after.last_active_us == now


@given(runs())
def test_timers_are_ordered_and_fired_after_for(run):
    for _, now, _, step in steps(run):
        if step.after is not None:
            timers = step.after
            assert timers.active_since_us <= timers.last_active_us <= now
            assert (timers.fired_us is not None) == (timers.state == AlertState.FIRING)
            if timers.fired_us is not None:
                assert timers.fired_us - timers.active_since_us >= run.for_us


@given(runs())
def test_fired_at_the_first_evaluation_that_held_for_long_enough(run):
    """Firing starts at the first evaluation at least ``for`` after the start of an unbroken
    run of evaluations at which the condition held; the timers keep the start of that run."""
    since = None
    for before, now, active, step in steps(run):
        was_firing = before is not None and before.state == AlertState.FIRING
        if not active:
            if not was_firing or step.after is None:
                since = None
            continue
        since = now if since is None else since
        if not was_firing:
            assert step.after.active_since_us == since
            expected = AlertState.FIRING if now - since >= run.for_us else AlertState.PENDING
            assert step.after.state == expected


@given(runs())
def test_resolved_once_per_episode_and_only_after_firing(run):
    told_firing = False
    for _, _, _, step in steps(run):
        if step.notice == Notice.RESOLVED:
            assert told_firing and step.after is None
            told_firing = False
        elif step.notice == Notice.FIRING:
            told_firing = True


@given(runs())
def test_a_firing_alert_resolves_when_keep_firing_for_has_passed_since_it_last_held(run):
    for before, now, active, step in steps(run):
        if before is not None and before.state == AlertState.FIRING and not active:
            kept = run.keep_us > 0 and now - before.last_active_us < run.keep_us
            assert step == (Step(before, Notice.FIRING) if kept else Step(None, Notice.RESOLVED))


@given(runs())
def test_fired_us_never_changes_while_firing(run):
    for before, _, _, step in steps(run):
        if before is not None and before.state == AlertState.FIRING and step.after is not None:
            assert step.after.fired_us == before.fired_us
            assert step.after.active_since_us == before.active_since_us
