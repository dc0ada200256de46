"""The rate engine: rounding, longest prefix, direction, inheritance, unrated calls."""

from __future__ import annotations

import pytest

from control.core.rating import (
    Rate,
    RateTable,
    billed_seconds,
    cost_micros,
    dialled_digits,
    price,
    table_of,
)

GERMANY = Rate("outbound", "49", per_minute_micros=20_000)
BERLIN = Rate("outbound", "4930", per_minute_micros=10_000, connect_micros=500)
MOBILE = Rate("outbound", "4917", per_minute_micros=90_000, min_sec=30, increment_sec=6)
ANYWHERE = Rate("outbound", "", per_minute_micros=300_000)
DID = Rate("inbound", "4930", per_minute_micros=1_000)
TABLE = RateTable([GERMANY, BERLIN, MOBILE, ANYWHERE, DID])


@pytest.mark.parametrize(
    ("billsec", "min_sec", "increment", "billed"),
    [
        (0, 0, 1, 0),
        (1, 0, 1, 1),
        (59, 0, 60, 60),
        (60, 0, 60, 60),
        (61, 0, 60, 120),
        (5, 30, 6, 30),  # raised to the minimum ...
        (31, 30, 6, 36),  # ... then to the next increment
        (30, 30, 6, 30),
        (50, 45, 60, 60),  # minimum first, then the increment grid
        (0, 30, 6, 30),  # an answered call of 0 s still pays its minimum
        (7, 0, 0, 7),  # increment 0 behaves as 1
    ],
)
def test_billed_seconds_round_up_to_minimum_then_increment(
    billsec: int, min_sec: int, increment: int, billed: int
) -> None:
    rate = Rate("outbound", "", 60_000, min_sec=min_sec, increment_sec=increment)
    assert billed_seconds(billsec, rate) == billed


def test_price_is_connect_plus_per_minute_rounded_up_to_the_micro() -> None:
    assert price(BERLIN, True, 60) == 500 + 10_000
    assert price(BERLIN, True, 1) == 500 + 167  # 10_000 / 60 = 166.67 -> 167
    assert price(Rate("outbound", "", 7), True, 1) == 1  # a fraction of a micro is a micro
    assert price(MOBILE, True, 31) == 90_000 * 36 // 60
    assert price(BERLIN, False, 120) == 0  # unanswered: nothing, not even the connect fee


def test_longest_prefix_wins_within_the_direction() -> None:
    assert TABLE.match("outbound", "+4930123456") == BERLIN
    assert TABLE.match("outbound", "4917612345") == MOBILE
    assert TABLE.match("outbound", "+4940123") == GERMANY
    assert TABLE.match("outbound", "+14155550100") == ANYWHERE  # only the catch-all fits
    assert TABLE.match("inbound", "+4930123456") == DID
    assert TABLE.match("inbound", "+4940123456") is None  # no inbound catch-all
    assert TABLE.match("internal", "1002") is None
    assert TABLE.match("outbound", "alice") == ANYWHERE  # not a number: the catch-all only
    assert TABLE.match("outbound", "4930") == BERLIN  # the prefix itself


def test_dialled_digits() -> None:
    assert dialled_digits("+4930123") == "4930123"
    assert dialled_digits("4930123") == "4930123"
    assert dialled_digits("*97") == ""
    assert dialled_digits("") == ""


def test_cost_is_none_when_nothing_prices_the_call() -> None:
    assert cost_micros(TABLE, "outbound", "+4930123456", True, 60) == 10_500
    assert cost_micros(TABLE, "outbound", "+4930123456", False, 0) == 0
    assert cost_micros(TABLE, "inbound", "+4940123456", True, 60) is None  # no line
    assert cost_micros(TABLE, "inbound", "+4940123456", False, 0) is None  # unrated, not 0
    assert cost_micros(None, "outbound", "+4930123456", True, 60) is None  # no table
    assert cost_micros(TABLE, None, "+4930123456", True, 60) is None  # direction unknown
    assert cost_micros(TABLE, "outbound", None, True, 60) is None  # number unknown
    assert cost_micros(RateTable([]), "outbound", "+4930", True, 60) is None


def test_an_account_without_a_table_uses_its_nearest_ancestors() -> None:
    parents = {"acc_cust": "acc_resel", "acc_resel": "acc_platform", "acc_platform": None,
               "acc_own": "acc_resel", "acc_loop_a": "acc_loop_b", "acc_loop_b": "acc_loop_a"}  # fmt: skip
    reseller = RateTable([GERMANY])
    platform = RateTable([ANYWHERE])
    own = RateTable([BERLIN])
    tables = {"acc_resel": reseller, "acc_platform": platform, "acc_own": own,
              "acc_empty": RateTable([])}  # fmt: skip
    assert table_of("acc_cust", parents, tables) is reseller
    assert table_of("acc_own", parents, tables) is own  # its own table replaces the parent's
    assert table_of("acc_resel", parents, tables) is reseller
    assert table_of("acc_platform", parents, tables) is platform
    assert table_of("acc_loop_a", parents, tables) is None  # a cycle ends the walk
    assert table_of("acc_unknown", parents, tables) is None
    # the own table does not extend the parent's: a number only the parent prices is unrated
    assert cost_micros(table_of("acc_own", parents, tables), "outbound", "+4940", True, 60) is None
