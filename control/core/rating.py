"""The rate engine (SPEC 19.2 ``cost_micros``): what a finished call costs. Pure.

An account's rate table prices a call by the longest prefix of the dialled number (digits,
no ``+``; the empty prefix matches every number) among the lines of the call's direction. An
account without a table of its own uses the nearest ancestor's (its reseller's), as a whole:
an account's own table replaces its parent's, it does not extend it.

Billing: answered seconds are raised to ``min_sec``, then rounded up to a multiple of
``increment_sec``; cost = ``connect_micros`` + ⌈``per_minute_micros`` * billed / 60⌉.
An unanswered call costs 0. A call no line prices is unrated (None), never a made-up 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from control.core.tenancy import ancestors


@dataclass(frozen=True)
class Rate:
    direction: str  # inbound | outbound | internal
    prefix: str  # digits; "" matches every number
    per_minute_micros: int
    connect_micros: int = 0
    min_sec: int = 0
    increment_sec: int = 1


class RateTable:
    """One account's lines, indexed for longest-prefix lookups (one dict probe per digit)."""

    def __init__(self, rates: Iterable[Rate]) -> None:
        self._lines: dict[tuple[str, str], Rate] = {(r.direction, r.prefix): r for r in rates}

    def __bool__(self) -> bool:
        return bool(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def match(self, direction: str, number: str) -> Rate | None:
        digits = dialled_digits(number)
        for end in range(len(digits), -1, -1):
            rate = self._lines.get((direction, digits[:end]))
            if rate is not None:
                return rate
        return None


def dialled_digits(number: str) -> str:
    """The number as rate prefixes are written: no ``+``, and only its leading digits (a
    non-numeric target such as a SIP user name can only match the empty prefix)."""
    text = number.removeprefix("+")
    end = 0
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[:end] if end == len(text) else ""


def billed_seconds(billsec: int, rate: Rate) -> int:
    seconds = max(billsec, rate.min_sec, 0)
    step = max(rate.increment_sec, 1)
    return -(-seconds // step) * step


def price(rate: Rate, answered: bool, billsec: int) -> int:
    if not answered:
        return 0
    billed = billed_seconds(billsec, rate)
    return rate.connect_micros + -(-(rate.per_minute_micros * billed) // 60)


def table_of(
    account_id: str, parents: Mapping[str, str | None], tables: Mapping[str, RateTable]
) -> RateTable | None:
    """The account's own table, else the nearest ancestor's that has one."""
    for account in ancestors(account_id, parents):
        table = tables.get(account)
        if table:
            return table
    return None


def cost_micros(
    table: RateTable | None,
    direction: str | None,
    number: str | None,
    answered: bool,
    billsec: int | None,
) -> int | None:
    """What the call costs, or None when no line of the table prices it."""
    if table is None or direction is None or number is None:
        return None
    rate = table.match(direction, number)
    if rate is None:
        return None
    return price(rate, answered, billsec or 0)
