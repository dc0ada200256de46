"""Business hours: is a schedule open, closed or on holiday at a given instant?

Pure and clock-free: the caller passes ``now``. Rules are read in the schedule's wall-clock time
(IANA zone, DST-aware), so "09:00-17:00" means nine to five local time on both sides of a DST
change. A missing or broken schedule fails open (``in_hours``) so a call is never stranded; the
API uses :func:`validate_schedule` to refuse broken rules before they are stored.

Precedence on a local date D, checked in this order (docs/schedules.md):

1. the post-midnight part of D-1's overnight windows (it belongs to the previous day's rule);
2. D's own windows: a closed window beats an open one;
3. otherwise ``out_of_hours``.

D's windows are its open ``date``/``date_range`` rules if it has any (they replace the weekly
hours), else its weekly rules; closed ``date``/``date_range`` rules apply on top, and a
whole-day closure cancels the day's hours outright (so its overnight tail goes too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from control.core.targets import RouteTarget

DAY = 24 * 60  # minutes
_TIME = re.compile(r"^(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RULE_FIELDS = ("kind", "dow", "start_time", "end_time", "start_date", "end_date", "is_closed")


class HoursState(StrEnum):
    IN_HOURS = "in_hours"
    OUT_OF_HOURS = "out_of_hours"
    HOLIDAY = "holiday"


class RuleKind(StrEnum):
    WEEKLY = "weekly"
    DATE = "date"
    DATE_RANGE = "date_range"


@dataclass(frozen=True)
class ScheduleRule:
    """One ``time_schedule_rule`` row. ``dow``: 0 = Sunday … 6 = Saturday."""

    kind: str
    dow: int | None = None
    start_time: str | None = None
    end_time: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    is_closed: int = 0

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> ScheduleRule:
        """Build from an API body or DB row; unrelated keys (``schedule_id``…) are ignored."""
        values = {name: row[name] for name in _RULE_FIELDS if name in row}
        if values.get("is_closed") is None:
            values.pop("is_closed", None)
        return cls(**values)


@dataclass(frozen=True)
class Schedule:
    """A ``time_schedule`` with its rules. ``timezone`` None inherits the account's."""

    id: str
    timezone: str | None = None
    rules: tuple[ScheduleRule, ...] = ()
    name: str = ""
    account_id: str | None = None


@dataclass(frozen=True)
class ScheduleError:
    """A located validation error, e.g. ``rules[2].start_time: expected HH:MM``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# --- validation -------------------------------------------------------------------------------


def validate_schedule(
    timezone: str | None, rules: Sequence[ScheduleRule | Mapping[str, Any]]
) -> list[ScheduleError]:
    """Everything wrong with a schedule, located; empty when it is usable."""
    errors: list[ScheduleError] = []
    if timezone is not None and zone_or_none(timezone) is None:
        errors.append(ScheduleError("timezone", f"unknown IANA time zone {timezone!r}"))
    return errors + validate_rules(rules)


def validate_rules(rules: Sequence[ScheduleRule | Mapping[str, Any]]) -> list[ScheduleError]:
    errors: list[ScheduleError] = []
    for index, raw in enumerate(rules):
        row = raw if isinstance(raw, Mapping) else vars(raw)
        for field, message in _rule_problems(row):
            errors.append(ScheduleError(f"rules[{index}].{field}", message))
    return errors


def _rule_problems(row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    kind = row.get("kind")
    if kind is None:
        yield "kind", "required: weekly, date or date_range"
        return
    if not isinstance(kind, str) or kind not in set(RuleKind):
        yield "kind", f"unknown kind {kind!r}; expected weekly, date or date_range"
        return
    yield from _time_problems(row.get("start_time"), row.get("end_time"))
    closed = row.get("is_closed", 0)
    if closed is not None and (not isinstance(closed, int) or closed not in (0, 1)):
        yield "is_closed", "must be 0 or 1"
    dow, start, end = row.get("dow"), row.get("start_date"), row.get("end_date")
    if kind == RuleKind.WEEKLY:
        if dow is None:
            yield "dow", "required for a weekly rule"
        elif type(dow) is not int or not 0 <= dow <= 6:
            yield "dow", "must be an integer 0 (Sunday) … 6 (Saturday)"
        for name in ("start_date", "end_date"):
            if row.get(name) is not None:
                yield name, "not allowed on a weekly rule"
        return
    if dow is not None:
        yield "dow", f"not allowed on a {kind} rule"
    first = _date_or_none(start)
    if first is None:
        yield "start_date", "required: YYYY-MM-DD" if start is None else "expected YYYY-MM-DD"
    if kind == RuleKind.DATE:
        if end is not None and end != start:
            yield "end_date", "a date rule covers one day; use date_range for a span"
        return
    last = _date_or_none(end)
    if last is None:
        yield "end_date", "required: YYYY-MM-DD" if end is None else "expected YYYY-MM-DD"
    elif first is not None and last < first:
        yield "end_date", "before start_date"


def _time_problems(start: Any, end: Any) -> Iterable[tuple[str, str]]:
    if start is None and end is None:
        return  # the whole day
    for name, value in (("start_time", start), ("end_time", end)):
        if value is None:
            yield name, "required when the other time is set (omit both for the whole day)"
        elif _minutes_or_none(value) is None:
            yield name, "expected HH:MM (00:00-23:59; 24:00 as an end time)"
    if start == "24:00":
        yield "start_time", "24:00 is only valid as an end time"
    elif start is not None and start == end:
        yield "end_time", "equals start_time; omit both times for a whole day"


def _minutes_or_none(value: Any) -> int | None:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    hours, minutes = match.group(1) or match.group(3), match.group(2) or match.group(4)
    return int(hours) * 60 + int(minutes)


def _date_or_none(value: Any) -> date | None:
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def zone_or_none(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """Minutes after the anchor day's midnight; ``end`` > DAY spills into the next day."""

    start: int
    end: int
    state: HoursState


@dataclass(frozen=True)
class _Dated:
    first: date
    last: date
    window: _Window


@dataclass(frozen=True)
class _Compiled:
    zone: ZoneInfo
    weekly: Mapping[int, tuple[_Window, ...]]
    dated: tuple[_Dated, ...]

    def windows(self, day: date) -> list[_Window]:
        dated = [d.window for d in self.dated if d.first <= day <= d.last]
        special = [w for w in dated if w.state is HoursState.IN_HOURS]
        closures = [w for w in dated if w.state is not HoursState.IN_HOURS]
        if any(w.start == 0 and w.end >= DAY for w in closures):
            return closures  # a closed day cancels its own hours, overnight tails included
        base = special or list(self.weekly.get(_dow(day), ()))
        return closures + base


def _dow(day: date) -> int:
    return (day.weekday() + 1) % 7  # Python's Monday=0 → the spec's Sunday=0


def _window(rule: ScheduleRule) -> _Window:
    dated = rule.kind != RuleKind.WEEKLY
    if rule.is_closed:
        state = HoursState.HOLIDAY if dated else HoursState.OUT_OF_HOURS
    else:
        state = HoursState.IN_HOURS
    start = _minutes_or_none(rule.start_time)
    end = _minutes_or_none(rule.end_time)
    if start is None or end is None:
        return _Window(0, DAY, state)
    return _Window(start, end if end > start else end + DAY, state)


def _compile(schedule: Schedule, account_timezone: str) -> _Compiled | None:
    """None when the schedule cannot be trusted: the caller then fails open."""
    if not schedule.rules or validate_rules(schedule.rules):
        return None
    zone = zone_or_none(schedule.timezone or account_timezone)
    if zone is None:
        return None
    weekly: dict[int, list[_Window]] = {}
    dated: list[_Dated] = []
    for rule in schedule.rules:
        window = _window(rule)
        if rule.kind == RuleKind.WEEKLY:
            weekly.setdefault(int(rule.dow or 0), []).append(window)
        else:
            first = date.fromisoformat(str(rule.start_date))
            last = date.fromisoformat(str(rule.end_date)) if rule.kind == "date_range" else first
            dated.append(_Dated(first, last, window))
    return _Compiled(zone, {k: tuple(v) for k, v in weekly.items()}, tuple(dated))


def _state_at(windows: Iterable[_Window], minute: int) -> HoursState | None:
    covering = [w.state for w in windows if w.start <= minute < w.end]
    closed = [s for s in covering if s is not HoursState.IN_HOURS]
    if closed:
        return HoursState.HOLIDAY if HoursState.HOLIDAY in closed else closed[0]
    return HoursState.IN_HOURS if covering else None


def evaluate(schedule: Schedule | None, now: datetime, account_timezone: str) -> HoursState:
    """The schedule's state at ``now`` (timezone-aware). Fails open to ``in_hours``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    compiled = None if schedule is None else _compile(schedule, account_timezone)
    if compiled is None:
        return HoursState.IN_HOURS
    local = now.astimezone(compiled.zone)
    today, minute = local.date(), local.hour * 60 + local.minute
    spill = _state_at(compiled.windows(today - timedelta(days=1)), minute + DAY)
    if spill is not None:
        return spill
    return _state_at(compiled.windows(today), minute) or HoursState.OUT_OF_HOURS


def is_usable(schedule: Schedule | None, account_timezone: str) -> bool:
    """False when :func:`evaluate` would fail open: lets callers trace why."""
    return schedule is not None and _compile(schedule, account_timezone) is not None


def override_target(
    state: HoursState, closed: RouteTarget | None, holiday: RouteTarget | None
) -> RouteTarget | None:
    """The route target that replaces an object's normal one, or None to keep it.

    Holiday falls back to the closed target; with neither set the normal target stands.
    """
    if state is HoursState.IN_HOURS:
        return None
    if state is HoursState.HOLIDAY and holiday is not None:
        return holiday
    return closed


def override_for(state: HoursState, row: Mapping[str, Any]) -> RouteTarget | None:
    """:func:`override_target` read from an object's ``closed_dest_*`` / ``holiday_dest_*``."""
    closed = RouteTarget.of(row.get("closed_dest_kind"), row.get("closed_dest_id"))
    holiday = RouteTarget.of(row.get("holiday_dest_kind"), row.get("holiday_dest_id"))
    return override_target(state, closed, holiday)
