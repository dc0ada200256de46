"""Exceptions the API turns into RFC 9457 problem documents."""

from __future__ import annotations

import re
from typing import Any


class ApiProblem(Exception):
    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Unauthorized(ApiProblem):
    status = 401
    title = "Unauthorized"


class Forbidden(ApiProblem):
    status = 403
    title = "Forbidden"


class NotFound(ApiProblem):
    status = 404
    title = "Not Found"


class Conflict(ApiProblem):
    status = 409
    title = "Conflict"


class Invalid(ApiProblem):
    """422 with field-level details: ``errors`` is a list of ``{loc, msg, type}``."""

    status = 422
    title = "Unprocessable Content"

    def __init__(self, errors: list[dict[str, Any]], detail: str = "invalid request") -> None:
        super().__init__(detail, errors=errors)
        self.errors = errors


def field_error(loc: str, msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", *loc.split(".")], "msg": msg, "type": kind}


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def located_error(path: str, msg: str, kind: str, under: str = "") -> dict[str, Any]:
    """A core validator's ``nodes[3].data.maxDigits`` as ``body.<under>.nodes.3.data...``."""
    parts = [name or index for name, index in _STEP.findall(path)]
    return field_error(".".join([under, *parts] if under else parts), msg, kind)
