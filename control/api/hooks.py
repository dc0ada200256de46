"""Rules of individual objects that the generic views cannot know."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from control.api.errors import field_error
from control.core.digest import digest_hashes, new_password
from control.db import models as m


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


class InQueueOptionRules(Rules):
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
        from control.api.schedules import rule_errors

        return rule_errors(values.get("rules") or [])


BEFORE_WRITE: dict[str, Rules] = {
    "sip_domains": DomainRules(),
    "sip_devices": DeviceRules(),
    "ring_group_members": RingGroupMemberRules(),
    "in_queue_options": InQueueOptionRules(),
    "call_limits": CallLimitRules(),
    "time_schedules": ScheduleRules(),
}


def extra_routes(bp: Blueprint, resource: Any) -> None:
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
