"""Business-hours evaluation, table-driven: precedence, overnight windows, DST, fail-open."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from control.core.schedule import (
    HoursState,
    Schedule,
    ScheduleRule,
    evaluate,
    is_usable,
    override_for,
    override_target,
    validate_rules,
    validate_schedule,
)
from control.core.targets import DestKind, RouteTarget

IN, OUT, HOLIDAY = HoursState.IN_HOURS, HoursState.OUT_OF_HOURS, HoursState.HOLIDAY
MON, TUE, WED, THU, FRI, SAT, SUN = 1, 2, 3, 4, 5, 6, 0


def weekly(dow: int, start: str | None, end: str | None, closed: int = 0) -> ScheduleRule:
    return ScheduleRule("weekly", dow=dow, start_time=start, end_time=end, is_closed=closed)


def on(day: str, start: str | None = None, end: str | None = None, closed: int = 0) -> ScheduleRule:
    return ScheduleRule("date", start_date=day, start_time=start, end_time=end, is_closed=closed)


def span(first: str, last: str, closed: int = 1) -> ScheduleRule:
    return ScheduleRule("date_range", start_date=first, end_date=last, is_closed=closed)


def office(*extra: ScheduleRule, tz: str | None = "Europe/Berlin") -> Schedule:
    days = (MON, TUE, WED, THU, FRI)
    return Schedule("sch_office", tz, tuple(weekly(d, "09:00", "17:00") for d in days) + extra)


def every_day(start: str, end: str, tz: str) -> Schedule:
    return Schedule("sch_daily", tz, tuple(weekly(d, start, end) for d in range(7)))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Berlin is UTC+1 in winter (CET) and UTC+2 in summer (CEST).
BERLIN_CASES = [
    ("monday morning, summer", office(), utc(2025, 6, 2, 7, 30), IN),
    ("one minute before opening", office(), utc(2025, 6, 2, 6, 59), OUT),
    ("closing minute is closed", office(), utc(2025, 6, 2, 15, 0), OUT),
    ("last open minute", office(), utc(2025, 6, 2, 14, 59, 59), IN),
    ("sunday", office(), utc(2025, 6, 1, 10, 0), OUT),
    ("christmas, a thursday", office(on("2025-12-25", closed=1)), utc(2025, 12, 25, 10), HOLIDAY),
    ("christmas at night", office(on("2025-12-25", closed=1)), utc(2025, 12, 25, 22), HOLIDAY),
    ("range covers friday", office(span("2025-12-24", "2025-12-26")), utc(2025, 12, 26, 9), HOLIDAY),
    ("day after the range", office(span("2025-12-24", "2025-12-26")), utc(2025, 12, 29, 9), IN),
    ("special hours replace weekly", office(on("2025-12-31", "10:00", "13:00")), utc(2025, 12, 31, 8, 30), OUT),
    ("inside special hours", office(on("2025-12-31", "10:00", "13:00")), utc(2025, 12, 31, 11), IN),
    ("after special hours", office(on("2025-12-31", "10:00", "13:00")), utc(2025, 12, 31, 13), OUT),
    ("special hours on a sunday", office(on("2025-12-28", "10:00", "12:00")), utc(2025, 12, 28, 10), IN),
    ("partial closure: before it", office(on("2025-12-23", "14:00", "24:00", 1)), utc(2025, 12, 23, 9), IN),
    ("partial closure: inside it", office(on("2025-12-23", "14:00", "24:00", 1)), utc(2025, 12, 23, 14), HOLIDAY),
    ("closure beats special hours", office(on("2025-12-31", "09:00", "17:00"), on("2025-12-31", "12:00", "13:00", 1)), utc(2025, 12, 31, 11, 30), HOLIDAY),
    ("weekly lunch break", office(weekly(MON, "12:00", "13:00", 1)), utc(2025, 6, 2, 10, 30), OUT),
    ("after lunch", office(weekly(MON, "12:00", "13:00", 1)), utc(2025, 6, 2, 11, 0), IN),
]  # fmt: skip

# A Friday night shift 22:00-06:00 (Europe/Berlin, CEST = UTC+2 in June 2025).
NIGHT = weekly(FRI, "22:00", "06:00")
NIGHT_CASES = [
    ("friday before the shift", (NIGHT,), utc(2025, 6, 6, 19, 59), OUT),
    ("friday in the shift", (NIGHT,), utc(2025, 6, 6, 21, 0), IN),
    ("saturday 03:00 belongs to friday", (NIGHT,), utc(2025, 6, 7, 1, 0), IN),
    ("shift ends at 06:00", (NIGHT,), utc(2025, 6, 7, 4, 0), OUT),
    ("thursday night is not friday", (NIGHT,), utc(2025, 6, 6, 1, 0), OUT),
    ("holiday saturday keeps friday's tail", (NIGHT, on("2025-06-07", closed=1)), utc(2025, 6, 7, 1), IN),
    ("holiday saturday after the tail", (NIGHT, on("2025-06-07", closed=1)), utc(2025, 6, 7, 5), HOLIDAY),
    ("holiday friday cancels the shift", (NIGHT, on("2025-06-06", closed=1)), utc(2025, 6, 6, 21), HOLIDAY),
    ("and its tail", (NIGHT, on("2025-06-06", closed=1)), utc(2025, 6, 7, 1), OUT),
    ("overnight special hours spill", (on("2025-12-31", "20:00", "02:00"), on("2026-01-01", closed=1)), utc(2026, 1, 1, 0, 30), IN),
    ("after the spill, the holiday", (on("2025-12-31", "20:00", "02:00"), on("2026-01-01", closed=1)), utc(2026, 1, 1, 1, 0), HOLIDAY),
    ("open until midnight: 23:59", (weekly(MON, "20:00", "24:00"),), utc(2025, 6, 2, 21, 59), IN),
    ("open until midnight: 00:00", (weekly(MON, "20:00", "24:00"),), utc(2025, 6, 2, 22, 0), OUT),
    ("whole-day weekly rule", (weekly(SUN, None, None),), utc(2025, 6, 1, 21, 30), IN),
    ("whole-day rule ends at midnight", (weekly(SUN, None, None),), utc(2025, 6, 1, 22, 0), OUT),
]  # fmt: skip

DST_CASES = [
    # America/New_York: EST = UTC-5 until 2025-03-09 02:00, EDT = UTC-4 until 2025-11-02 02:00.
    ("NY same UTC time, winter: 08:30", every_day("09:00", "17:00", "America/New_York"), utc(2025, 3, 7, 13, 30), OUT),
    ("NY same UTC time, summer: 09:30", every_day("09:00", "17:00", "America/New_York"), utc(2025, 3, 10, 13, 30), IN),
    ("NY spring forward: 01:59 EST", Schedule("s", "America/New_York", (weekly(SUN, "01:00", "03:00"),)), utc(2025, 3, 9, 6, 59), IN),
    ("NY spring forward: 03:00 EDT", Schedule("s", "America/New_York", (weekly(SUN, "01:00", "03:00"),)), utc(2025, 3, 9, 7, 0), OUT),
    ("NY window in the skipped hour opens at 03:00", Schedule("s", "America/New_York", (weekly(SUN, "02:30", "04:00"),)), utc(2025, 3, 9, 7, 0), IN),
    ("NY fall back: first 01:30 (EDT)", Schedule("s", "America/New_York", (weekly(SAT, "22:00", "02:00"),)), utc(2025, 11, 2, 5, 30), IN),
    ("NY fall back: second 01:30 (EST)", Schedule("s", "America/New_York", (weekly(SAT, "22:00", "02:00"),)), utc(2025, 11, 2, 6, 30), IN),
    ("NY fall back: 02:30 EST", Schedule("s", "America/New_York", (weekly(SAT, "22:00", "02:00"),)), utc(2025, 11, 2, 7, 30), OUT),
    # Europe/Berlin: CET = UTC+1, CEST = UTC+2 from 2025-03-30 02:00 to 2025-10-26 03:00.
    ("Berlin before spring forward: 08:30 CET", every_day("09:00", "17:00", "Europe/Berlin"), utc(2025, 3, 28, 7, 30), OUT),
    ("Berlin after spring forward: 09:30 CEST", every_day("09:00", "17:00", "Europe/Berlin"), utc(2025, 3, 31, 7, 30), IN),
    ("Berlin fall back: first 02:30 (CEST)", Schedule("s", "Europe/Berlin", (weekly(SAT, "22:00", "03:00"),)), utc(2025, 10, 26, 0, 30), IN),
    ("Berlin fall back: second 02:30 (CET)", Schedule("s", "Europe/Berlin", (weekly(SAT, "22:00", "03:00"),)), utc(2025, 10, 26, 1, 30), IN),
    ("Berlin fall back: 03:30 CET", Schedule("s", "Europe/Berlin", (weekly(SAT, "22:00", "03:00"),)), utc(2025, 10, 26, 2, 30), OUT),
    # Australia/Sydney: AEDT = UTC+11 until 2025-04-06 03:00, AEST = UTC+10 until 2025-10-05 02:00.
    ("Sydney summer time: 09:30 AEDT", every_day("09:00", "17:00", "Australia/Sydney"), utc(2025, 4, 4, 22, 30), IN),
    ("Sydney standard time: 08:30 AEST", every_day("09:00", "17:00", "Australia/Sydney"), utc(2025, 4, 6, 22, 30), OUT),
    ("Sydney DST starts: 01:59 AEST", Schedule("s", "Australia/Sydney", (weekly(SUN, "01:00", "02:30"),)), utc(2025, 10, 4, 15, 59), IN),
    ("Sydney DST starts: 03:00 AEDT", Schedule("s", "Australia/Sydney", (weekly(SUN, "01:00", "02:30"),)), utc(2025, 10, 4, 16, 0), OUT),
]  # fmt: skip


@pytest.mark.parametrize(("name", "schedule", "now", "expected"), BERLIN_CASES)
def test_precedence(name: str, schedule: Schedule, now: datetime, expected: HoursState) -> None:
    assert evaluate(schedule, now, "UTC") is expected, name


@pytest.mark.parametrize(("name", "rules", "now", "expected"), NIGHT_CASES)
def test_overnight(
    name: str, rules: tuple[ScheduleRule, ...], now: datetime, expected: HoursState
) -> None:
    assert evaluate(Schedule("s", "Europe/Berlin", rules), now, "UTC") is expected, name


@pytest.mark.parametrize(("name", "schedule", "now", "expected"), DST_CASES)
def test_dst(name: str, schedule: Schedule, now: datetime, expected: HoursState) -> None:
    assert evaluate(schedule, now, "UTC") is expected, name


def test_null_timezone_inherits_the_account_timezone() -> None:
    schedule = office(tz=None)
    now = utc(2025, 6, 2, 13, 30)  # 09:30 in New York, 15:30 in Berlin, 13:30 in UTC
    assert evaluate(schedule, now, "America/New_York") is IN
    assert evaluate(schedule, utc(2025, 6, 2, 12, 30), "America/New_York") is OUT
    assert evaluate(schedule, utc(2025, 6, 2, 12, 30), "UTC") is IN


FAIL_OPEN = [
    ("no schedule", None, "UTC"),
    ("no rules", Schedule("s", "UTC", ()), "UTC"),
    ("unknown schedule zone", Schedule("s", "Mars/Olympus", (weekly(SUN, "01:00", "02:00"),)), "UTC"),
    ("unknown account zone", Schedule("s", None, (weekly(SUN, "01:00", "02:00"),)), "Nowhere/x"),
    ("bad time", Schedule("s", "UTC", (weekly(SUN, "1:00", "02:00"),)), "UTC"),
    ("bad kind", Schedule("s", "UTC", (ScheduleRule("monthly"),)), "UTC"),
    ("bad dow", Schedule("s", "UTC", (weekly(7, "01:00", "02:00"),)), "UTC"),
    ("inverted range", Schedule("s", "UTC", (span("2025-02-01", "2025-01-01"),)), "UTC"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "schedule", "account_tz"), FAIL_OPEN)
def test_misconfigured_schedules_fail_open(
    name: str, schedule: Schedule | None, account_tz: str
) -> None:
    # Sunday 12:00 UTC: outside every rule above, so only failing open gives in_hours.
    assert evaluate(schedule, utc(2025, 6, 1, 12), account_tz) is IN, name
    assert not is_usable(schedule, account_tz)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(office(), datetime(2025, 6, 2, 10), "UTC")


RULE_ERRORS = [
    ({"dow": 1}, "rules[0].kind: required: weekly, date or date_range"),
    ({"kind": "monthly"}, "rules[0].kind: unknown kind 'monthly'; expected weekly, date or date_range"),
    ({"kind": "weekly"}, "rules[0].dow: required for a weekly rule"),
    ({"kind": "weekly", "dow": 7}, "rules[0].dow: must be an integer 0 (Sunday) … 6 (Saturday)"),
    ({"kind": "weekly", "dow": True}, "rules[0].dow: must be an integer 0 (Sunday) … 6 (Saturday)"),
    ({"kind": "weekly", "dow": 1, "start_date": "2025-01-01"}, "rules[0].start_date: not allowed on a weekly rule"),
    ({"kind": "weekly", "dow": 1, "start_time": "9:00", "end_time": "17:00"}, "rules[0].start_time: expected HH:MM (00:00-23:59; 24:00 as an end time)"),
    ({"kind": "weekly", "dow": 1, "start_time": "09:00"}, "rules[0].end_time: required when the other time is set (omit both for the whole day)"),
    ({"kind": "weekly", "dow": 1, "start_time": "24:00", "end_time": "02:00"}, "rules[0].start_time: 24:00 is only valid as an end time"),
    ({"kind": "weekly", "dow": 1, "start_time": "09:00", "end_time": "09:00"}, "rules[0].end_time: equals start_time; omit both times for a whole day"),
    ({"kind": "weekly", "dow": 1, "is_closed": 2}, "rules[0].is_closed: must be 0 or 1"),
    ({"kind": "date"}, "rules[0].start_date: required: YYYY-MM-DD"),
    ({"kind": "date", "start_date": "2025-02-30"}, "rules[0].start_date: expected YYYY-MM-DD"),
    ({"kind": "date", "start_date": "20250101"}, "rules[0].start_date: expected YYYY-MM-DD"),
    ({"kind": "date", "start_date": "2025-01-01", "dow": 3}, "rules[0].dow: not allowed on a date rule"),
    ({"kind": "date", "start_date": "2025-01-01", "end_date": "2025-01-02"}, "rules[0].end_date: a date rule covers one day; use date_range for a span"),
    ({"kind": "date_range", "start_date": "2025-01-01"}, "rules[0].end_date: required: YYYY-MM-DD"),
    ({"kind": "date_range", "start_date": "2025-01-02", "end_date": "2025-01-01"}, "rules[0].end_date: before start_date"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "expected"), RULE_ERRORS)
def test_rule_validation_is_located(row: dict[str, object], expected: str) -> None:
    assert [str(e) for e in validate_rules([row])] == [expected]


def test_valid_rules_pass_and_errors_carry_their_index() -> None:
    good = {"kind": "weekly", "dow": 1, "start_time": "22:00", "end_time": "06:00", "is_closed": 0}
    holiday = {"kind": "date", "start_date": "2025-12-25", "is_closed": 1, "schedule_id": "sch_1"}
    assert validate_rules([good, holiday, office().rules[0]]) == []
    errors = validate_schedule("Europe/Nowhere", [good, {"kind": "weekly", "dow": 9}])
    assert [str(e) for e in errors] == [
        "timezone: unknown IANA time zone 'Europe/Nowhere'",
        "rules[1].dow: must be an integer 0 (Sunday) … 6 (Saturday)",
    ]


def test_rule_from_a_row_ignores_foreign_keys_and_null_is_closed() -> None:
    row = {"id": 4, "schedule_id": "sch_1", "kind": "date", "start_date": "2025-05-01"}
    assert ScheduleRule.from_mapping({**row, "is_closed": None}) == ScheduleRule(
        "date", start_date="2025-05-01"
    )


VOICEMAIL = RouteTarget(DestKind.VOICEMAIL, "vm_1")
HOLIDAY_FLOW = RouteTarget(DestKind.FLOW, "flow_holiday")

OVERRIDES = [
    (IN, VOICEMAIL, HOLIDAY_FLOW, None),
    (OUT, VOICEMAIL, HOLIDAY_FLOW, VOICEMAIL),
    (HOLIDAY, VOICEMAIL, HOLIDAY_FLOW, HOLIDAY_FLOW),
    (HOLIDAY, VOICEMAIL, None, VOICEMAIL),
    (OUT, None, HOLIDAY_FLOW, None),
    (HOLIDAY, None, None, None),
]


@pytest.mark.parametrize(("state", "closed", "holiday", "expected"), OVERRIDES)
def test_override_target(
    state: HoursState,
    closed: RouteTarget | None,
    holiday: RouteTarget | None,
    expected: RouteTarget | None,
) -> None:
    assert override_target(state, closed, holiday) == expected


def test_override_from_a_queue_row() -> None:
    queue = {
        "id": "q_1",
        "closed_dest_kind": "voicemail",
        "closed_dest_id": "vm_1",
        "holiday_dest_kind": None,
        "holiday_dest_id": None,
    }
    assert override_for(HOLIDAY, queue) == VOICEMAIL
    assert override_for(IN, queue) is None
    assert override_for(OUT, {"closed_dest_kind": "hangup"}) == RouteTarget(DestKind.HANGUP)
    assert override_for(OUT, {}) is None
