"""Condition expressions are evaluated safely; templates substitute only variable names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.core.flow.expressions import (
    ExpressionError,
    Scalar,
    check_expression,
    compute,
    evaluate,
    header_escape,
    render,
    render_json,
    url_escape,
)

VARS: dict[str, Scalar] = {"caller_number": "4930123456", "tier": "gold", "tries": 2, "vip": True}

TRUTHS = [
    ('tier == "gold"', True),
    ('tier != "gold"', False),
    ("tries >= 2 and vip", True),
    ("tries > 2 or not vip", False),
    ('startswith(caller_number, "4930")', True),
    ('caller_number in ("100", "200")', False),
    ("len(caller_number) == 10", True),
    ("int(tries) * 3 - 1 == 5", True),
    ("unknown_variable == None", True),
    ('unknown_variable == "1"', False),
    ('upper(tier) if vip else "none"', True),
    ("10 // 3 == 3 and 10 % 3 == 1", True),
]


@pytest.mark.parametrize(("text", "expected"), TRUTHS)
def test_expressions_over_call_variables(text: str, expected: bool) -> None:
    assert check_expression(text) is None
    assert evaluate(text, VARS) is expected


BLOCKED = [
    ("().__class__.__bases__", "Attribute is not allowed"),
    ("caller_number.upper()", "only these functions are allowed: len, int, float, str, abs, min, max, lower, upper, startswith, endswith"),
    ("__import__('os')", "only these functions are allowed: len, int, float, str, abs, min, max, lower, upper, startswith, endswith"),
    ("open('/etc/passwd')", "only these functions are allowed: len, int, float, str, abs, min, max, lower, upper, startswith, endswith"),
    ("9 ** 9 ** 9", "Pow is not allowed"),
    ("1 << 100000", "LShift is not allowed"),
    ("[x for x in 'abc']", "ListComp is not allowed"),
    ("caller_number[0]", "Subscript is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("f'{tier}'", "JoinedStr is not allowed"),
    ("{'a': 1}", "Dict is not allowed"),
    ("(x := 1)", "NamedExpr is not allowed"),
    ("_secret", "name '_secret' is not allowed"),
    ("b'x'", "literal b'x' is not allowed"),
    ("len(x=1)", "only these functions are allowed: len, int, float, str, abs, min, max, lower, upper, startswith, endswith"),
    ("tier ==", "syntax error: invalid syntax"),
    ("a; b", "syntax error: invalid syntax"),
    ("a\x00", "source code string cannot contain null bytes"),
    ("", "empty expression"),
    ("1 + " * 200 + "1", "longer than 500 characters"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "reason"), BLOCKED)
def test_unsafe_or_broken_expressions_are_refused(text: str, reason: str) -> None:
    assert check_expression(text) == reason
    with pytest.raises(ExpressionError) as caught:
        evaluate(text, VARS)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "text", ["1 / 0", "int(tier)", "len(tries)", "'x' * 200000", "lower(tier) > 3"]
)
def test_runtime_failures_raise_expression_error(text: str) -> None:
    assert check_expression(text) is None
    with pytest.raises(ExpressionError):
        evaluate(text, VARS)


def test_compute_returns_single_values_only() -> None:
    assert compute("tries + 1", VARS) == 3
    assert compute('lower("ABC")', VARS) == "abc"
    with pytest.raises(ExpressionError, match="not a single value"):
        compute("(1, 2)", VARS)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_never_escapes_the_evaluator(text: str) -> None:
    try:
        result = evaluate(text, VARS)
    except ExpressionError:
        return
    assert isinstance(result, bool)


def test_templates_escape_for_their_context() -> None:
    variables: dict[str, Scalar] = {"n": "a b&c/d", "crlf": "x\r\nInjected: 1", "flag": False}
    assert render("https://h/x?n={{n}}&m={{ missing }}", variables, url_escape) == (
        "https://h/x?n=a%20b%26c%2Fd&m="
    )
    assert render("Bearer {{crlf}}", variables, header_escape) == "Bearer x  Injected: 1"
    assert render_json({"a": ["{{n}}", 3, {"b": "{{flag}}"}]}, variables) == {
        "a": ["a b&c/d", 3, {"b": "false"}]
    }
    # A substituted value is never rendered a second time.
    assert render("{{n}}", {"n": "{{crlf}}", "crlf": "boom"}) == "{{crlf}}"
