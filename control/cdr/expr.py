"""Row filters for pyiceberg scans, typed.

pyiceberg's predicates are pydantic models whose constructors take a column name and a plain
value; the pydantic mypy plugin sees only their field types, so every call would need a
``type: ignore``. These helpers are the one place that goes through ``Any``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyiceberg.expressions as _expressions
from pyiceberg.expressions import And, BooleanExpression, Or

_ex: Any = _expressions

__all__ = ["And", "BooleanExpression", "Or", "eq", "ge", "is_in", "is_null", "lt", "owner"]


def eq(column: str, value: Any) -> BooleanExpression:
    result: BooleanExpression = _ex.EqualTo(column, value)
    return result


def ge(column: str, value: Any) -> BooleanExpression:
    result: BooleanExpression = _ex.GreaterThanOrEqual(column, value)
    return result


def lt(column: str, value: Any) -> BooleanExpression:
    result: BooleanExpression = _ex.LessThan(column, value)
    return result


def is_in(column: str, values: Iterable[Any]) -> BooleanExpression:
    result: BooleanExpression = _ex.In(column, set(values))
    return result


def is_null(column: str) -> BooleanExpression:
    result: BooleanExpression = _ex.IsNull(column)
    return result


def owner(account: str | None) -> BooleanExpression:
    """Rows of one account; events with no account live in the null partition."""
    return is_null("account_id") if account is None else eq("account_id", account)
