"""Generic list / create / read / update / delete views for every registry resource."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request, url_for
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from control.api import hooks, registry
from control.api.auth import Principal, require
from control.api.errors import Conflict, Invalid, NotFound, field_error
from control.api.registry import Resource
from control.api.store import bump_config_version, check_references, new_id, referrers

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Invalid([field_error("", "expected a JSON object", "json")], "body is not an object")
    return data


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Invalid(
            [{"loc": ["query", "cursor"], "msg": "bad cursor", "type": "cursor"}]
        ) from None


def page_args() -> tuple[int, str | None]:
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Invalid(
            [{"loc": ["query", "limit"], "msg": f"1..{MAX_LIMIT}", "type": "limit"}],
            "bad limit",
        )
    cursor = request.args.get("cursor")
    return int(raw), decode_cursor(cursor) if cursor else None


def paged(
    query: Any, id_column: Any, account_column: Any, principal: Principal,
    render: Callable[[Any], dict[str, Any]],
) -> Response:  # fmt: skip
    """One keyset page of ``query`` (``?limit``, ``?cursor``) within the principal's reach."""
    limit, after = page_args()
    query = query.order_by(id_column).limit(limit)
    if principal.accounts is not None:
        query = query.where(account_column.in_(principal.accounts))
    if after:
        query = query.where(id_column > after)
    rows = list(g.db.scalars(query))
    next_cursor = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return jsonify(items=[render(r) for r in rows], next_cursor=next_cursor)


def row_dict(resource: Resource, row: Any) -> dict[str, Any]:
    columns = {c.key: getattr(row, c.key) for c in inspect(type(row)).column_attrs}
    for hidden in resource.hidden:
        columns.pop(hidden, None)
    return resource.read_model.model_validate(columns).model_dump(mode="json")


def load_owned(session: Session, principal: Principal, resource: Resource, row_id: str) -> Any:
    row = session.get(resource.model, row_id)
    if row is None or not principal.reaches(row.account_id):
        raise NotFound(f"no {resource.name} {row_id!r}")  # same answer for other tenants' rows
    return row


def _check_unique(
    session: Session,
    resource: Resource,
    values: dict[str, Any],
    account_id: str,
    row_id: str | None,
) -> None:
    model = resource.model
    for column in resource.unique_in_account + resource.unique_global:
        value = values.get(column)
        if value is None:
            continue
        query = select(model.id).where(getattr(model, column) == value)
        if column in resource.unique_in_account:
            query = query.where(model.account_id == account_id)
        if row_id:
            query = query.where(model.id != row_id)
        if session.scalar(query) is not None:
            scope = "in this account" if column in resource.unique_in_account else "platform-wide"
            raise Conflict(f"{column} {value!r} is already taken {scope}", field=column)


def _validate(
    session: Session,
    resource: Resource,
    values: dict[str, Any],
    account_id: str,
    row: Any,
    changes: dict[str, Any],
) -> dict[str, Any]:
    """Cross-row checks, then the resource's own rules; the hook may add derived columns to
    ``values`` and returns fields to show once in the response (a generated password)."""
    errors = check_references(session, account_id, values, resource.refs, resource.dests)
    hook = hooks.BEFORE_WRITE.get(resource.name)
    if hook:
        errors += hook.check(session, values, account_id)
    if errors:
        raise Invalid(errors)
    _check_unique(session, resource, values, account_id, row.id if row is not None else None)
    return hook.derive(session, values, account_id, row, changes) if hook else {}


def _columns(resource: Resource, values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in resource.write_only and k != "account_id"}


def make_blueprint(resource: Resource) -> Blueprint:
    bp = Blueprint(resource.name, __name__, url_prefix=f"/v1/{resource.name}")

    @bp.get("")
    def list_rows() -> Response:
        principal = require(resource.scope)
        model = resource.model
        query = select(model)
        for key, value in request.args.items():
            if key in ("limit", "cursor"):
                continue
            if key == "account_id":
                if not principal.reaches(value):
                    return jsonify(items=[], next_cursor=None)
                query = query.where(model.account_id == value)
            elif key in resource.filters:
                query = query.where(getattr(model, key) == _coerce(model, key, value))
            else:
                raise Invalid(
                    [{"loc": ["query", key], "msg": "unknown filter", "type": "filter"}],
                    f"filters: {', '.join(('account_id', *resource.filters))}",
                )
        return paged(query, model.id, model.account_id, principal, lambda r: row_dict(resource, r))

    @bp.post("")
    def create() -> tuple[Response, int, dict[str, str]]:
        principal = require(resource.scope)
        session: Session = g.db
        values = resource.body.model_validate(json_body()).model_dump()
        account_id = values.pop("account_id") or principal.account_id
        if not principal.reaches(account_id):
            raise Invalid([field_error("account_id", "no such account")])
        extra = _validate(session, resource, values, account_id, None, values)
        row = resource.model(
            id=new_id(resource.prefix), account_id=account_id, **_columns(resource, values)
        )
        session.add(row)
        session.flush()
        bump_config_version(session)
        body = row_dict(resource, row) | extra
        location = url_for(f"{resource.name}.read", row_id=row.id)
        return jsonify(body), 201, {"Location": location}

    @bp.get("/<row_id>")
    def read(row_id: str) -> Response:
        principal = require(resource.scope)
        return jsonify(row_dict(resource, load_owned(g.db, principal, resource, row_id)))

    @bp.patch("/<row_id>")
    def patch(row_id: str) -> Response:
        principal = require(resource.scope)
        session: Session = g.db
        row = load_owned(session, principal, resource, row_id)
        changes = resource.patch_model.model_validate(json_body()).model_dump(exclude_unset=True)
        current = {
            name: getattr(row, name)
            for name in resource.body.model_fields
            if hasattr(row, name) and name != "account_id"
        }
        merged = resource.body.model_validate(current | changes).model_dump()
        merged.pop("account_id", None)
        extra = _validate(session, resource, merged, row.account_id, row, changes)
        for key, value in _columns(resource, merged).items():
            if key in changes or key not in resource.body.model_fields:
                setattr(row, key, value)
        session.flush()
        bump_config_version(session)
        return jsonify(row_dict(resource, row) | extra)

    @bp.delete("/<row_id>")
    def delete(row_id: str) -> tuple[str, int]:
        principal = require(resource.scope)
        session: Session = g.db
        row = load_owned(session, principal, resource, row_id)
        still = referrers(session, resource.name, row.id)
        if still:
            raise Conflict(f"{resource.name} {row.id} is still referenced", referrers=still)
        session.delete(row)
        bump_config_version(session)
        return "", 204

    hooks.extra_routes(bp, resource)
    return bp


def _coerce(model: Any, key: str, value: str) -> Any:
    column = inspect(model).columns[key]
    if column.type.python_type is int:
        if not value.lstrip("-").isdigit():
            raise Invalid([{"loc": ["query", key], "msg": "integer expected", "type": "int"}])
        number = int(value)
        if abs(number) > 2**31 - 1:
            raise Invalid([{"loc": ["query", key], "msg": "out of range", "type": "int"}])
        return number
    return value


def install(app: Flask) -> None:
    for resource in registry.RESOURCES:
        app.register_blueprint(make_blueprint(resource))
