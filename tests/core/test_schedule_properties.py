"""Property-based checks of schedule evaluation against an independent interval oracle."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from control.core.schedule import (
    HoursState,
    Schedule,
    ScheduleRule,
    evaluate,
    validate_rules,
)

ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Kolkata",  # half-hour offset, no DST
    "Pacific/Chatham",  # 45-minute offset with DST
    "UTC",
]
# Eight-day windows that straddle DST changes in the zones above, so dated rules, overnight
# tails and transitions meet often.
ANCHORS = [
    date(2025, 3, 1),
    date(2025, 3, 24),
    date(2025, 4, 1),
    date(2025, 9, 24),
    date(2025, 10, 20),
    date(2025, 12, 20),
]
SPAN = 8

times = st.builds(
    lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 59])
)
window = st.one_of(
    st.just((None, None)),
    st.tuples(times, st.one_of(times, st.just("24:00"))).filter(lambda w: w[0] != w[1]),
)


@st.composite
def rules(draw: st.DrawFn, anchor: date) -> ScheduleRule:
    kind = draw(st.sampled_from(["weekly", "weekly", "date", "date_range"]))
    start, end = draw(window)
    closed = draw(st.sampled_from([0, 0, 1]))
    if kind == "weekly":
        return ScheduleRule(kind, draw(st.integers(0, 6)), start, end, is_closed=closed)
    first = anchor + timedelta(days=draw(st.integers(0, SPAN - 1)))
    if kind == "date":
        return ScheduleRule(kind, None, start, end, first.isoformat(), is_closed=closed)
    last = first + timedelta(days=draw(st.integers(0, 6)))
    return ScheduleRule(kind, None, start, end, first.isoformat(), last.isoformat(), closed)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, datetime, str]:
    """A schedule, an account zone and an instant in the same eight-day window.

    Half of the instants are aimed at a rule's own day or the day after, at a minute next to
    one of the rules' boundaries, where precedence and overnight tails are decided.
    """
    anchor = draw(st.sampled_from(ANCHORS))
    account_tz = draw(st.sampled_from(ZONES))
    zone = draw(st.sampled_from([*ZONES, None]))
    schedule = Schedule("sch_p", zone, tuple(draw(st.lists(rules(anchor), min_size=1, max_size=8))))
    if draw(st.booleans()):
        minutes = draw(st.integers(0, SPAN * 24 * 60))
        start = datetime.combine(anchor, time(), tzinfo=UTC)
        return schedule, start + timedelta(minutes=minutes, seconds=17), account_tz
    dated = [date.fromisoformat(r.start_date) for r in schedule.rules if r.start_date]
    day = (
        draw(st.sampled_from(dated))
        if dated
        else anchor + timedelta(days=draw(st.integers(0, SPAN)))
    )
    day += timedelta(days=draw(st.integers(0, 1)))
    edges = [t for r in schedule.rules for t in (r.start_time, r.end_time) if t and t != "24:00"]
    clock = _clock(draw(st.sampled_from(edges))) if edges else time(draw(st.integers(0, 23)))
    nudge = timedelta(minutes=draw(st.sampled_from([-1, 0, 1, 30])))
    local = datetime.combine(day, clock) + nudge
    aware = local.replace(tzinfo=ZoneInfo(zone or account_tz), fold=draw(st.integers(0, 1)))
    return schedule, aware.astimezone(UTC), account_tz


instants = st.integers(0, 730 * 24 * 60).map(
    lambda minutes: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes, seconds=17)
)


def _clock(text: str) -> time:
    return time(int(text[:2]), int(text[3:]))


def _intervals(schedule: Schedule, day: date) -> list[tuple[datetime, datetime, HoursState]]:
    """Naive local [start, end) intervals owned by ``day``, written independently of the core."""
    midnight = datetime.combine(day, time())
    dated = [
        r
        for r in schedule.rules
        if r.kind != "weekly"
        and date.fromisoformat(str(r.start_date))
        <= day
        <= date.fromisoformat(str(r.end_date or r.start_date))
    ]
    closures = [r for r in dated if r.is_closed]
    whole_day_closed = any(
        r.start_time in (None, "00:00") and r.end_time in (None, "24:00") for r in closures
    )
    special = [r for r in dated if not r.is_closed]
    weekly = [r for r in schedule.rules if r.kind == "weekly" and r.dow == day.isoweekday() % 7]
    owned = closures if whole_day_closed else closures + (special or weekly)
    found = []
    for rule in owned:
        if rule.start_time is None or rule.end_time is None:
            start, end = midnight, midnight + timedelta(days=1)
        else:
            start = datetime.combine(day, _clock(rule.start_time))
            if rule.end_time == "24:00":
                end = midnight + timedelta(days=1)
            else:
                end = datetime.combine(day, _clock(rule.end_time))
                if end <= start:
                    end += timedelta(days=1)
        if not rule.is_closed:
            state = HoursState.IN_HOURS
        elif rule.kind == "weekly":
            state = HoursState.OUT_OF_HOURS
        else:
            state = HoursState.HOLIDAY
        found.append((start, end, state))
    return found


def _decide(
    intervals: list[tuple[datetime, datetime, HoursState]], at: datetime
) -> HoursState | None:
    covering = {state for start, end, state in intervals if start <= at < end}
    for state in (HoursState.HOLIDAY, HoursState.OUT_OF_HOURS, HoursState.IN_HOURS):
        if state in covering:
            return state
    return None


def oracle(schedule: Schedule, now: datetime, account_tz: str) -> HoursState:
    zone = ZoneInfo(schedule.timezone or account_tz)
    local = now.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    yesterday = _decide(_intervals(schedule, local.date() - timedelta(days=1)), local)
    return (
        yesterday or _decide(_intervals(schedule, local.date()), local) or HoursState.OUT_OF_HOURS
    )


@settings(max_examples=1000, deadline=None)
@given(cases())
def test_evaluation_matches_the_interval_oracle(case: tuple[Schedule, datetime, str]) -> None:
    schedule, now, account_tz = case
    assert validate_rules(schedule.rules) == []
    assert evaluate(schedule, now, account_tz) is oracle(schedule, now, account_tz)


@settings(max_examples=200, deadline=None)
@given(cases(), st.sampled_from(ZONES))
def test_the_same_instant_in_any_zone_gives_the_same_state(
    case: tuple[Schedule, datetime, str], viewer_zone: str
) -> None:
    schedule, now, account_tz = case
    seen_elsewhere = now.astimezone(ZoneInfo(viewer_zone))
    assert evaluate(schedule, seen_elsewhere, account_tz) is evaluate(schedule, now, account_tz)


junk = st.one_of(st.none(), st.integers(-3, 10), st.text(max_size=6), st.booleans(), st.floats())
junk_rows = st.fixed_dictionaries(
    {},
    optional={
        name: junk
        for name in ("kind", "dow", "start_time", "end_time", "start_date", "end_date", "is_closed")
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(junk_rows, max_size=4), instants)
def test_broken_rules_never_raise_and_fail_open(
    rows: list[dict[str, object]], now: datetime
) -> None:
    errors = validate_rules(rows)
    try:
        schedule = Schedule("sch_junk", "Europe/Berlin", tuple(ScheduleRule(**row) for row in rows))  # type: ignore[arg-type]
    except TypeError:
        return  # a row without a kind cannot even be built
    state = evaluate(schedule, now, "UTC")
    if errors or not rows:
        assert state is HoursState.IN_HOURS
    assert all(str(e).startswith("rules[") for e in errors)
