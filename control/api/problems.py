"""RFC 9457 ``application/problem+json`` for every error the API returns."""

from __future__ import annotations

from typing import Any

import structlog
from flask import Flask, Response, json
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from control.api.errors import ApiProblem

PROBLEM_TYPE_BASE = "urn:sipio:problem:"
log = structlog.get_logger("sipio.api")


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def install(app: Flask) -> None:
    @app.errorhandler(ApiProblem)
    def _api(exc: ApiProblem) -> Response:
        response = problem(exc.status, exc.title, exc.detail, **exc.extra)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="sipio", ApiKey header="x-api-key"'
        return response

    @app.errorhandler(ValidationError)
    def _invalid(exc: ValidationError) -> Response:
        errors = [
            {"loc": ["body", *(str(p) for p in err["loc"])], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        return problem(422, "Unprocessable Content", "invalid request body", errors=errors)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        return problem(status, HTTP_STATUS_CODES.get(status, "Error"), exc.description)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Logged with its traceback for operators; the caller only learns that it failed.
        log.exception("unhandled error", error_type=type(exc).__name__)
        return problem(500, HTTP_STATUS_CODES[500], "The server could not complete the request.")
