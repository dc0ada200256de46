"""Rules of individual objects that the generic views cannot know."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from control.api import schemas
from control.api.errors import Invalid, NotFound, field_error, located_error
from control.core.digest import digest_hashes, new_password
from control.core.schedule import validate_rules
from control.db import models as m
from control.secrets import SecretStore
from control.secrets.rows import RowSecrets, SecretColumn


class Rules:
    """check() returns field errors; derive() adds derived columns, returns show-once fields."""

    def check(self, session: Session, values: dict[str, Any], account_id: str) -> list[Any]:
        return []

    def derive(
        self,
        session: Session,
        values: dict[str, Any],
        account_id: str,
        row: Any,
        changes: dict[str, Any],
    ) -> dict[str, Any]:
        return {}


class DomainRules(Rules):
    def derive(self, session, values, account_id, row, changes):  # type: ignore[no-untyped-def]
        values["domain"] = values["domain"].lower()
        if values.get("is_primary") == 1:  # one primary domain per account
            query = update(m.SipDomain).where(m.SipDomain.account_id == account_id)
            if row is not None:
                query = query.where(m.SipDomain.id != row.id)
            session.execute(query.values(is_primary=0))
        return {}


class DeviceRules(Rules):
    def check(self, session, values, account_id):  # type: ignore[no-untyped-def]
        realm = values["realm"].lower()
        owned = session.scalar(
            select(m.SipDomain.id).where(
                m.SipDomain.domain == realm, m.SipDomain.account_id == account_id
            )
        )
        if owned is None:
            return [field_error("realm", "must be one of this account's sip_domains", "realm")]
        return []

    def derive(self, session, values, account_id, row, changes):  # type: ignore[no-untyped-def]
        values["realm"] = values["realm"].lower()
        identity_changed = row is None or any(
            key in changes for key in ("auth_username", "realm", "password")
        )
        if not identity_changed:
            return {}
        given = values.pop("password", None) or changes.get("password")
        password = given or new_password()
        hashes = digest_hashes(values["auth_username"], values["realm"], password)
        values.update(ha1=hashes.ha1, ha1b=hashes.ha1b, ha1_sha256=hashes.ha1_sha256)
        # A password is shown exactly once: when the platform generated it.
        return {} if given else {"password": password}


class RingGroupMemberRules(Rules):
    def check(self, session, values, account_id):  # type: ignore[no-untyped-def]
        if (values.get("user_id") is None) == (values.get("device_id") is None):
            return [field_error("user_id", "set exactly one of user_id and device_id", "member")]
        return []


@dataclass(frozen=True)
class SecretField:
    """A write-only API field whose value lives in the secret store (SPEC section 22)."""

    column: SecretColumn
    rotation: type[BaseModel]  # body of POST .../rotate_secret
    generate: Callable[[], str] | None = None  # rotation without a value generates one


def new_pin() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


SECRET_FIELDS: dict[str, SecretField] = {
    "sip_trunks": SecretField(
        SecretColumn(m.SipTrunk, "auth_secret_ref", "trunk", "auth_password"),
        schemas.TrunkPasswordRotation,
    ),
    "voicemail_boxes": SecretField(
        SecretColumn(m.VoicemailBox, "pin_secret_ref", "vm", "pin"), schemas.PinRotation, new_pin
    ),
    "conferences": SecretField(
        SecretColumn(m.Conference, "pin_secret_ref", "conf", "pin"), schemas.PinRotation, new_pin
    ),
    "in_queue_options": SecretField(
        SecretColumn(m.InQueueOption, "webhook_secret_ref", "qopt", "webhook_token"),
        schemas.WebhookTokenRotation,
        new_token,
    ),
}


def row_secrets() -> RowSecrets:
    secrets_of_rows: RowSecrets = current_app.config["ROW_SECRETS"]
    return secrets_of_rows


def install_secrets(sessions: Any, store: SecretStore) -> RowSecrets:
    """Bind the store to the app's sessions: values are written at flush, deleted with rows."""
    bound = RowSecrets(store, [f.column for f in SECRET_FIELDS.values()])
    bound.install(sessions)
    return bound


class SecretRules(Rules):
    """A given value is staged for the store; the row keeps only its reference. An explicit
    null (PATCH) removes the secret once the change commits."""

    def __init__(self, spec: SecretField) -> None:
        self.spec = spec

    def derive(self, session, values, account_id, row, changes):  # type: ignore[no-untyped-def]
        column = self.spec.column
        given = column.field in changes
        value = values.pop(column.field, None)
        if not given:
            return {}
        bound = row_secrets()
        old = getattr(row, column.column) if row is not None else None
        if old and (value is None or old != column.ref_for(row.id)):
            bound.doom(session, old)
        values[column.column] = None if value is None else bound.stage(session, value)
        return {}


class InQueueOptionRules(SecretRules):
    def check(self, session, values, account_id):  # type: ignore[no-untyped-def]
        action = values["action"]
        errors = []
        if action == "route" and not values.get("dest_kind"):
            errors.append(field_error("dest_kind", "action 'route' needs a route target", "option"))
        if action != "route" and values.get("dest_kind"):
            errors.append(field_error("dest_kind", f"action {action!r} takes no target", "option"))
        if action in ("webhook", "deflect") and not values.get("webhook_url"):
            errors.append(field_error("webhook_url", f"action {action!r} needs it", "option"))
        return errors


class CallLimitRules(Rules):
    def check(self, session, values, account_id):  # type: ignore[no-untyped-def]
        from control.api.registry import LIMIT_SCOPE
        from control.api.store import exists_in_account

        target = LIMIT_SCOPE[values["scope_kind"]]
        scope_id = values.get("scope_id")
        if target is None:
            return (
                [field_error("scope_id", "scope_kind 'account' takes no scope_id", "scope")]
                if scope_id
                else []
            )
        if not scope_id:
            return [field_error("scope_id", f"scope_kind {values['scope_kind']!r} needs it")]
        if not exists_in_account(session, target, scope_id, account_id):
            return [field_error("scope_id", f"no such {target} in this account", "reference")]
        return []


class ScheduleRules(Rules):
    def check(self, session, values, account_id):  # type: ignore[no-untyped-def]
        return [
            located_error(e.path, e.message, "schedule")
            for e in validate_rules(values.get("rules") or [])
        ]


BEFORE_WRITE: dict[str, Rules] = {
    "sip_domains": DomainRules(),
    "sip_devices": DeviceRules(),
    "ring_group_members": RingGroupMemberRules(),
    "in_queue_options": InQueueOptionRules(SECRET_FIELDS["in_queue_options"]),
    "sip_trunks": SecretRules(SECRET_FIELDS["sip_trunks"]),
    "voicemail_boxes": SecretRules(SECRET_FIELDS["voicemail_boxes"]),
    "conferences": SecretRules(SECRET_FIELDS["conferences"]),
    "call_limits": CallLimitRules(),
    "time_schedules": ScheduleRules(),
}


def extra_routes(bp: Blueprint, resource: Any) -> None:
    if resource.name in SECRET_FIELDS:
        secret_routes(bp, resource, SECRET_FIELDS[resource.name])
    if resource.name != "sip_devices":
        return

    @bp.post("/<row_id>/reset_password")
    def reset_password(row_id: str) -> Response:
        from control.api.auth import require
        from control.api.crud import load_owned, row_dict
        from control.api.store import bump_config_version

        principal = require(resource.scope)
        session: Session = g.db
        row = load_owned(session, principal, resource, row_id)
        password = new_password()
        hashes = digest_hashes(row.auth_username, row.realm, password)
        row.ha1, row.ha1b, row.ha1_sha256 = hashes.ha1, hashes.ha1b, hashes.ha1_sha256
        session.flush()
        bump_config_version(session)
        return jsonify(row_dict(resource, row) | {"password": password})


def secret_routes(bp: Blueprint, resource: Any, spec: SecretField) -> None:
    """``POST .../rotate_secret``: a new version (check-and-set with ``expected_version``);
    ``GET .../secret``: its reference and versions, never its value."""
    from control.api.auth import require
    from control.api.crud import json_body, load_owned
    from control.api.store import bump_config_version

    column = spec.column

    @bp.post("/<row_id>/rotate_secret")
    def rotate_secret(row_id: str) -> Response:
        principal = require(resource.scope)
        session: Session = g.db
        row = load_owned(session, principal, resource, row_id)
        body = spec.rotation.model_validate(json_body())
        given: str | None = getattr(body, column.field)
        if given is not None:
            value = given
        elif spec.generate is not None:
            value = spec.generate()
        else:  # the body model requires it; kept for the type checker
            raise Invalid([field_error(column.field, "required", "missing")])
        bound, ref, old = row_secrets(), column.ref_for(row.id), getattr(row, column.column)
        version = bound.store.put(ref, value, cas=getattr(body, "expected_version", None))
        if old != ref:
            if old:
                bound.doom(session, old)
            else:
                bound.created(session, ref)
            setattr(row, column.column, ref)
            session.flush()
        bump_config_version(session)
        shown = {} if given is not None else {column.field: value}  # generated: shown once
        return jsonify({"id": row.id, column.column: ref, "version": version} | shown)

    @bp.get("/<row_id>/secret")
    def secret_versions(row_id: str) -> Response:
        principal = require(resource.scope)
        row = load_owned(g.db, principal, resource, row_id)
        ref = getattr(row, column.column)
        if not ref:
            raise NotFound(f"{resource.name} {row_id} has no {column.field}")
        versions = row_secrets().store.versions(ref)
        if not versions:  # every version deleted behind our back (Vault soft deletes)
            raise NotFound(f"{resource.name} {row_id}: no live version of {column.field}")
        return jsonify({"ref": ref, "version": versions[-1], "versions": versions})


def document_secret_routes(document: dict[str, Any]) -> dict[str, Any]:
    """Add the routes of ``secret_routes`` to the OpenAPI document built from the registry."""
    from control.api.openapi import ERROR, ID_PARAM, SECURITY
    from control.api.registry import BY_NAME

    components = document["components"]["schemas"]
    for name, spec in SECRET_FIELDS.items():
        column, model = spec.column, spec.rotation
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        rotated = {
            "type": "object",
            "required": ["id", column.column, "version"],
            "properties": {
                "id": {"type": "string"},
                column.column: {"type": "string"},
                "version": {"type": "integer"},
                column.field: {"type": "string", "description": "Only when generated."},
            },
        }
        listed = {
            "type": "object",
            "required": ["ref", "version", "versions"],
            "properties": {
                "ref": {"type": "string"},
                "version": {"type": "integer"},
                "versions": {"type": "array", "items": {"type": "integer"}},
            },
        }
        scope = BY_NAME[name].scope
        document["paths"][f"/v1/{name}/{{row_id}}/rotate_secret"] = {
            "parameters": [ID_PARAM],
            "post": {
                "summary": f"New version of the {column.field} secret (scope `{scope}`)",
                "security": SECURITY,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}},
                "responses": {"200": _json(rotated), "default": ERROR},
            },
        }  # fmt: skip
        document["paths"][f"/v1/{name}/{{row_id}}/secret"] = {
            "parameters": [ID_PARAM],
            "get": {
                "summary": f"Reference and versions of the {column.field} secret (scope `{scope}`)",
                "security": SECURITY,
                "responses": {"200": _json(listed), "default": ERROR},
            },
        }
    return document


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}
