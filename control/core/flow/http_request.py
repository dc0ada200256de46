"""The ``httpRequest`` node: the interpreter describes the request, the caller performs it under
a strict time budget and reports the result as the next step's outcome and data.

Variables are percent-encoded into the URL and stripped of line breaks in headers, so call data
(a caller's number, collected digits) cannot reshape the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from control.core.flow.actions import Action, Advance, Await, Frame, Result, as_scalar
from control.core.flow.commands import CommandKind
from control.core.flow.expressions import (
    Scalar,
    header_escape,
    render,
    render_json,
    url_escape,
)
from control.core.flow.nodes import HttpRequestData, Outcome


def enter_http(data: HttpRequestData, frame: Frame) -> Action:
    variables = frame.variables
    body = data.body
    rendered = render(body, variables) if isinstance(body, str) else render_json(body, variables)
    return Await(
        CommandKind.HTTP,
        {
            "method": data.method,
            "url": render(data.url, variables, url_escape),
            "headers": {k: render(v, variables, header_escape) for k, v in data.headers.items()},
            "body": rendered,
            "timeoutSec": data.timeout_sec,
        },
    )


def _lookup(response: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """Follow ``status`` / ``headers.<name>`` / ``body.a.0.b`` into an HTTP result."""
    head, *rest = path.split(".")
    value = response.get(head)
    if head == "headers" and rest:
        headers = value if isinstance(value, Mapping) else {}
        folded = {str(k).lower(): v for k, v in headers.items()}  # header names ignore case
        name = rest.pop(0).lower()
        if name not in folded:
            return False, None
        value = folded[name]
    for part in rest:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def resume_http(data: HttpRequestData, frame: Frame, result: Result) -> Action:
    if result.outcome == Outcome.TIMEOUT:
        return Advance(Outcome.TIMEOUT)
    if result.outcome != "response":
        return Advance(Outcome.ERROR, detail=str(result.data.get("reason") or result.outcome))
    status = result.data.get("status")
    ok = isinstance(status, int) and 200 <= status < 300
    response = {
        "status": status,
        "headers": result.data.get("headers") or {},
        "body": result.data.get("body"),
    }
    changed: dict[str, Scalar] = {}
    for variable, path in data.response_variables.items():
        found, value = _lookup(response, path)
        if found:
            changed[variable] = as_scalar(value)
    return Advance(Outcome.SUCCESS if ok else Outcome.ERROR, changed, detail=f"status {status}")
