"""Accounts (the tenant tree), API keys, tokens and ``whoami``."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from control.api import schemas
from control.api.auth import ALL, SCOPES, Principal, mint_token, new_api_key, require
from control.api.crud import json_body, paged
from control.api.errors import Conflict, Forbidden, Invalid, NotFound, field_error
from control.api.registry import patch_model_of
from control.api.store import bump_config_version, check_references, new_id
from control.core.tenancy import ancestors, effective_settings
from control.db import models as m

bp = Blueprint("accounts", __name__, url_prefix="/v1")

# Only an ancestor may change these: an account cannot lift its own limits or status.
PARENT_ONLY = (
    "status", "is_reseller", "max_in", "max_out", "max_dialer", "parent_id", "cac_redis_policy",
)  # fmt: skip
ACCOUNT_DEST = (("did_default_dest_kind", "did_default_dest_id"),)

AccountPatch: type[BaseModel] = patch_model_of(schemas.AccountIn)


def account_dict(session: Session, row: m.Account) -> dict[str, Any]:
    data = {c.key: getattr(row, c.key) for c in inspect(m.Account).column_attrs}
    parents = dict(session.execute(select(m.Account.id, m.Account.parent_id)).all())
    chain = [session.get(m.Account, a) for a in ancestors(row.id, parents)]
    data["effective"] = effective_settings(
        {k: getattr(a, k) for k in ("timezone", "language", "voice_gender", "brand_name",
                                    "brand_domain")}
        for a in chain if a is not None
    )  # fmt: skip
    return data


def _load(session: Session, principal: Principal, account_id: str) -> m.Account:
    row = session.get(m.Account, account_id)
    if row is None or not principal.reaches(row.id):
        raise NotFound(f"no account {account_id!r}")
    return row


@bp.get("/whoami")
def whoami() -> Response:
    principal: Principal = g.principal
    return jsonify(
        accountId=principal.account_id, scopes=sorted(principal.scopes), via=principal.via
    )


@bp.get("/account")
def own_account() -> Response:
    principal: Principal = g.principal
    return jsonify(account_dict(g.db, g.db.get(m.Account, principal.account_id)))


@bp.get("/accounts")
def list_accounts() -> Response:
    principal = require("accounts")
    query = select(m.Account)
    if parent := request.args.get("parent_id"):
        query = query.where(m.Account.parent_id == parent)
    return paged(query, m.Account.id, m.Account.id, principal, lambda r: account_dict(g.db, r))


@bp.post("/accounts")
def create_account() -> tuple[Response, int]:
    principal = require("accounts")
    session: Session = g.db
    values = schemas.AccountIn.model_validate(json_body()).model_dump()
    parent_id = values.pop("parent_id") or principal.account_id
    parent = session.get(m.Account, parent_id)
    if parent is None or not principal.reaches(parent_id):
        raise Invalid([field_error("parent_id", "no such account")])
    if not (parent.is_reseller or parent.is_platform):
        raise Forbidden(f"account {parent_id} is not a reseller and cannot own accounts")
    if values.get("did_default_dest_kind"):
        raise Invalid([field_error("did_default_dest_kind", "set it once the account has rows")])
    _unique_brand(session, values.get("brand_domain"), None)
    row = m.Account(id=new_id("acc"), parent_id=parent_id, **values)
    session.add(row)
    session.flush()
    bump_config_version(session)
    return jsonify(account_dict(session, row)), 201


@bp.get("/accounts/<account_id>")
def read_account(account_id: str) -> Response:
    principal = require("accounts")
    return jsonify(account_dict(g.db, _load(g.db, principal, account_id)))


@bp.patch("/accounts/<account_id>")
def patch_account(account_id: str) -> Response:
    principal = require("accounts")
    session: Session = g.db
    row = _load(session, principal, account_id)
    changes = AccountPatch.model_validate(json_body()).model_dump(exclude_unset=True)
    own = row.id == principal.account_id
    for key in PARENT_ONLY:
        if key in changes and own and not principal.is_platform:
            raise Forbidden(f"{key} of an account is set by its parent")
    if "parent_id" in changes:
        new_parent = changes["parent_id"]
        target = session.get(m.Account, new_parent) if new_parent else None
        if target is None or not principal.reaches(new_parent) or new_parent == row.id:
            raise Invalid([field_error("parent_id", "no such account")])
        if row.id in ancestors(new_parent, dict(session.execute(
            select(m.Account.id, m.Account.parent_id)).all())):  # fmt: skip
            raise Invalid([field_error("parent_id", "an account cannot move below itself")])
    for key in ("name",):
        if key in changes and changes[key] is None:
            raise Invalid([field_error(key, "cannot be null")])
    merged = {k: getattr(row, k) for k in schemas.AccountIn.model_fields} | changes
    errors = check_references(session, row.id, merged, {}, ACCOUNT_DEST)
    if errors:
        raise Invalid(errors)
    _unique_brand(session, changes.get("brand_domain"), row.id)
    for key, value in changes.items():
        setattr(row, key, value)
    session.flush()
    bump_config_version(session)
    return jsonify(account_dict(session, row))


@bp.delete("/accounts/<account_id>")
def delete_account(account_id: str) -> tuple[str, int]:
    principal = require("accounts")
    session: Session = g.db
    row = _load(session, principal, account_id)
    if row.id == principal.account_id or row.is_platform:
        raise Forbidden("an account cannot delete itself")
    children = list(session.scalars(select(m.Account.id).where(m.Account.parent_id == row.id)))
    if children:
        raise Conflict(
            f"account {row.id} still has child accounts",
            referrers=[{"resource": "accounts", "id": c, "field": "parent_id"} for c in children],
        )
    session.delete(row)
    bump_config_version(session)
    return "", 204


def _unique_brand(session: Session, domain: str | None, own_id: str | None) -> None:
    if not domain:
        return
    taken = session.scalar(
        select(m.Account.id).where(m.Account.brand_domain == domain, m.Account.id != own_id)
    )
    if taken:
        raise Conflict(f"brand_domain {domain!r} is already taken", field="brand_domain")


# -- API keys and tokens ----------------------------------------------------------------------
def key_dict(row: m.ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "name": row.name,
        "prefix": row.prefix,
        "scopes": row.scopes,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }


def _grantable(principal: Principal, scopes: list[str]) -> list[str]:
    errors = [
        field_error(f"scopes.{i}", f"unknown scope {s!r}")
        for i, s in enumerate(scopes)
        if s != ALL and s not in SCOPES
    ]
    if errors:
        raise Invalid(errors)
    beyond = [
        s for s in scopes if not principal.has(s) or (s == ALL and ALL not in principal.scopes)
    ]
    if beyond:
        raise Forbidden(f"cannot grant scopes this credential lacks: {', '.join(beyond)}")
    return sorted(set(scopes))


@bp.get("/api_keys")
def list_keys() -> Response:
    principal = require("keys")
    return paged(select(m.ApiKey), m.ApiKey.id, m.ApiKey.account_id, principal, key_dict)


@bp.post("/api_keys")
def create_key() -> tuple[Response, int]:
    principal = require("keys")
    session: Session = g.db
    body = schemas.ApiKeyIn.model_validate(json_body())
    account_id = body.account_id or principal.account_id
    if not principal.reaches(account_id):
        raise Invalid([field_error("account_id", "no such account")])
    scopes = _grantable(principal, body.scopes)
    key, prefix, digest = new_api_key()
    row = m.ApiKey(
        id=new_id("key"), account_id=account_id, name=body.name, prefix=prefix, key_hash=digest,
        scopes=scopes,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return jsonify(key_dict(row) | {"key": key}), 201


@bp.get("/api_keys/<key_id>")
def read_key(key_id: str) -> Response:
    principal = require("keys")
    row = g.db.get(m.ApiKey, key_id)
    if row is None or not principal.reaches(row.account_id):
        raise NotFound(f"no api_key {key_id!r}")
    return jsonify(key_dict(row))


@bp.delete("/api_keys/<key_id>")
def revoke_key(key_id: str) -> tuple[str, int]:
    principal = require("keys")
    row = g.db.get(m.ApiKey, key_id)
    if row is None or not principal.reaches(row.account_id):
        raise NotFound(f"no api_key {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = int(time.time())
    return "", 204


@bp.post("/tokens")
def create_token() -> tuple[Response, int]:
    principal: Principal = g.principal
    if principal.via != "key":
        raise Forbidden("tokens are minted with an API key")
    body = schemas.TokenIn.model_validate(request.get_json(silent=True) or {})
    scopes = _grantable(principal, body.scopes) if body.scopes else sorted(principal.scopes)
    token = mint_token(principal, frozenset(scopes), body.ttl_sec, current_app.config["TOKEN_KEY"])
    return jsonify(token=token, token_type="Bearer", expires_in=body.ttl_sec, scopes=scopes), 201
