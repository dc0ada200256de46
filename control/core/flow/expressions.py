"""Condition expressions and ``{{variable}}`` templates over call variables.

A flow is tenant-written code running inside the platform, so expressions go through two
locks: the parsed tree must only use whitelisted syntax (comparisons, boolean logic, simple
arithmetic, literals, a few named functions: no attributes, subscripts, comprehensions, powers
or lambdas), and only then does simpleeval run it with matching operator and node tables.
Unknown variables read as ``None`` so ``vip == "1"`` is simply false until ``vip`` is set.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from simpleeval import DEFAULT_OPERATORS, EvalWithCompoundTypes

Scalar = str | int | float | bool | None

MAX_EXPRESSION_CHARS = 500
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


class ExpressionError(ValueError):
    """An expression that is not allowed or failed to evaluate."""


def _lower(value: Any) -> str:
    return str(value).lower()


def _upper(value: Any) -> str:
    return str(value).upper()


def _startswith(value: Any, prefix: Any) -> bool:
    return str(value).startswith(str(prefix))


def _endswith(value: Any, suffix: Any) -> bool:
    return str(value).endswith(str(suffix))


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "len": len,
    "int": int,
    "float": float,
    "str": str,
    "abs": abs,
    "min": min,
    "max": max,
    "lower": _lower,
    "upper": _upper,
    "startswith": _startswith,
    "endswith": _endswith,
}

_OPERATOR_NODES: tuple[type[ast.AST], ...] = (
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Not, ast.USub, ast.UAdd,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
)  # fmt: skip
_EVAL_NODES: tuple[type[ast.AST], ...] = (
    ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Compare, ast.IfExp, ast.Call,
    ast.Constant, ast.Name, ast.Tuple, ast.List,
)  # fmt: skip
_GLUE_NODES: tuple[type[ast.AST], ...] = (ast.Expression, ast.Load, ast.And, ast.Or)
_OPERATORS = {op: fn for op, fn in DEFAULT_OPERATORS.items() if op in _OPERATOR_NODES}


def check_expression(text: str) -> str | None:
    """Why ``text`` is not an allowed expression, or None when it is."""
    try:
        _parse(text)
    except ExpressionError as exc:
        return str(exc)
    return None


def _parse(text: str) -> ast.expr:
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}") from None
    except ValueError as exc:  # e.g. NUL bytes
        raise ExpressionError(str(exc)) from None
    for node in ast.walk(tree):
        if not isinstance(node, _OPERATOR_NODES + _EVAL_NODES + _GLUE_NODES):
            raise ExpressionError(f"{type(node).__name__} is not allowed")
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords
        ):
            raise ExpressionError(f"only these functions are allowed: {', '.join(FUNCTIONS)}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, Scalar):
            raise ExpressionError(f"literal {node.value!r} is not allowed")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"name {node.id!r} is not allowed")
    return tree.body


class _Variables(dict[str, Any]):
    def __missing__(self, key: str) -> None:
        return None


def _run(text: str, variables: Mapping[str, Scalar]) -> Any:
    tree = _parse(text)
    evaluator = EvalWithCompoundTypes(
        operators=dict(_OPERATORS),
        functions=dict(FUNCTIONS),
        names=_Variables(variables),
        allowed_attrs={},
    )
    evaluator.nodes = {k: v for k, v in evaluator.nodes.items() if k in _EVAL_NODES}
    try:
        return evaluator.eval(text, previously_parsed=tree)
    except Exception as exc:  # simpleeval and the operators raise many types; all are errors
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def evaluate(text: str, variables: Mapping[str, Scalar]) -> bool:
    """Truth of ``text`` over ``variables``; raises :class:`ExpressionError`."""
    return bool(_run(text, variables))


def compute(text: str, variables: Mapping[str, Scalar]) -> Scalar:
    """Value of ``text`` over ``variables``; raises :class:`ExpressionError`."""
    value = _run(text, variables)
    if not isinstance(value, Scalar):
        raise ExpressionError(f"result is a {type(value).__name__}, not a single value")
    return value


# --- templates --------------------------------------------------------------------------------


def check_template(text: str) -> str | None:
    """Why ``text`` is not a valid template, or None. Placeholders hold a variable name only."""
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1).strip()
        if not VARIABLE_NAME.match(name):
            return f"{match.group(0)!r} must name a variable, e.g. {{{{caller_number}}}}"
    return None


def as_text(value: Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(text: str, variables: Mapping[str, Scalar], escape: Callable[[str], str] = str) -> str:
    """Substitute ``{{name}}``; unknown names render empty, ``escape`` guards the context."""

    def substitute(match: re.Match[str]) -> str:
        return escape(as_text(variables.get(match.group(1).strip())))

    return _PLACEHOLDER.sub(substitute, text)


def url_escape(text: str) -> str:
    return quote(text, safe="")


def header_escape(text: str) -> str:
    """A variable must never start a new header line."""
    return text.replace("\r", " ").replace("\n", " ")


def render_json(value: Any, variables: Mapping[str, Scalar]) -> Any:
    """Render templates inside the string leaves of a JSON body; structure stays intact."""
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, list):
        return [render_json(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: render_json(item, variables) for key, item in value.items()}
    return value
