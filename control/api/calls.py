"""``GET /v1/calls`` (scope ``cdr``): CDR export from the Iceberg lake (SPEC 19.2).

Rows are limited to the accounts the credential reaches. JSON is ``{ok, count, rows,
next_cursor}``; ``format=csv`` is RFC 4180 text with the cursor in the ``X-Next-Cursor`` header.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from control.api.auth import Principal, require
from control.api.errors import Invalid

bp = Blueprint("calls", __name__, url_prefix="/v1")

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_MS = 2**53 - 1  # beyond any epoch-ms; JSON-safe
FILTERS = {
    "direction": ("inbound", "outbound", "internal"),
    "disposition": ("in_progress", "answered", "no_answer", "busy", "cancelled", "rejected",
                    "failed"),
}  # fmt: skip
PARAMS = {"since", "until", "limit", "cursor", "format", "account_id", *FILTERS}


def _bad(name: str, msg: str) -> Invalid:
    return Invalid([{"loc": ["query", name], "msg": msg, "type": name}], f"bad {name}")


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _bad(name, f"an integer in {low}..{high}")
    return int(raw)


def _lake() -> Any:
    from control.cdr.lake import Lake  # pyarrow and pyiceberg load on first use only

    lake = current_app.extensions.get("sipio_lake")
    if lake is None:
        lake = current_app.extensions["sipio_lake"] = Lake(current_app.config["SIPIO_SETTINGS"])
    return lake


@bp.get("/calls")
def list_calls() -> Response:
    principal: Principal = require("cdr")
    from control.cdr import query

    unknown = sorted(set(request.args) - PARAMS)
    if unknown:
        raise _bad(unknown[0], f"unknown parameter; known: {', '.join(sorted(PARAMS))}")
    since = _int_arg("since", 0, 0, MAX_MS)
    until = _int_arg("until", int(time.time() * 1000), 0, MAX_MS)
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise _bad("format", "json or csv")
    cursor = None
    if raw := request.args.get("cursor"):
        try:
            cursor = query.decode_cursor(raw)
        except query.BadCursor:
            raise _bad("cursor", "not a cursor this endpoint returned") from None
    filters = {}
    for name, allowed in FILTERS.items():
        if (value := request.args.get(name)) is not None:
            if value not in allowed:
                raise _bad(name, f"one of {', '.join(allowed)}")
            filters[name] = value
    accounts = principal.accounts
    if (account := request.args.get("account_id")) is not None:
        accounts = frozenset({account} if principal.reaches(account) else set())
    page = query.list_calls(
        _lake(), accounts=accounts, since=since, until=until, limit=limit, cursor=cursor,
        filters=filters,
    )  # fmt: skip
    if fmt == "csv":
        response = Response(
            query.to_csv(page.rows, query.CDR_FIELDS), mimetype="text/csv; charset=utf-8"
        )
        if page.next_cursor:
            response.headers["X-Next-Cursor"] = page.next_cursor
        return response
    return jsonify(ok=True, count=len(page.rows), rows=page.rows, next_cursor=page.next_cursor)


CDR_ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["call_id", "start_ts"],
    "properties": {
        "call_id": {"type": "string"},
        "start_ts": {"type": "integer"},
        **{
            name: {"type": ["string", "null"]}
            for name in ("account_id", "direction", "from_num", "to_num", "disposition",
                         "hangup_cause", "queue_id", "agent_id", "route_kind", "device_id",
                         "trunk_id")
        },
        **{
            name: {"type": ["integer", "null"]}
            for name in ("answer_ts", "end_ts", "duration_sec", "billsec", "answered",
                         "cost_micros", "sip_code", "updated_ts")
        },
    },
}  # fmt: skip


def openapi_paths() -> dict[str, Any]:
    """The path item for the OpenAPI document (``control.api.openapi``)."""
    params: list[dict[str, Any]] = [
        {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                     "maximum": MAX_MS}},
        {"name": "until", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                     "maximum": MAX_MS}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                     "maximum": MAX_LIMIT}},
        {"name": "cursor", "in": "query", "schema": {"type": "string",
                                                      "pattern": "^[A-Za-z0-9_-]*$"}},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}},
        {"name": "account_id", "in": "query", "schema": {"type": "string"}},
        *({"name": name, "in": "query", "schema": {"type": "string", "enum": list(allowed)}}
          for name, allowed in FILTERS.items()),
    ]  # fmt: skip
    page = {
        "type": "object",
        "required": ["ok", "count", "rows", "next_cursor"],
        "properties": {
            "ok": {"type": "boolean"},
            "count": {"type": "integer"},
            "rows": {"type": "array", "items": CDR_ROW_SCHEMA},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    return {
        "/v1/calls": {
            "get": {
                "summary": "Export CDRs, oldest first (scope `cdr`); keyset-paginated",
                "parameters": params,
                "responses": {
                    "200": {
                        "description": "A page of CDRs; with format=csv the next cursor is in "
                        "the X-Next-Cursor header",
                        "content": {
                            "application/json": {"schema": page},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "default": {"$ref": "#/components/responses/Problem"},
                },
                "security": [{"apiKey": []}, {"bearer": []}],
            }
        }
    }
