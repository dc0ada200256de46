"""Persistence helpers shared by the API views: ids, config version, references."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String, cast, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from control.api import registry
from control.api.errors import field_error
from control.core.targets import DEST_TABLE, DestKind
from control.db import models as m


def new_id(prefix: str) -> str:
    return f"{prefix}_{str(ULID()).lower()}"


def bump_config_version(session: Session) -> None:
    """Every provisioning write moves the version; routing caches reload when it changes."""
    session.execute(
        update(m.ConfigMeta)
        .where(m.ConfigMeta.key == "config_version")
        .values(value=cast(cast(m.ConfigMeta.value, Integer) + 1, String))
    )


def config_version(session: Session) -> int:
    value = session.scalar(select(m.ConfigMeta.value).where(m.ConfigMeta.key == "config_version"))
    return int(value or 0)


def model_for(resource_name: str) -> type[Any]:
    if resource_name == "call_flows":
        return m.CallFlow
    return registry.BY_NAME[resource_name].model


def exists_in_account(session: Session, resource_name: str, row_id: str, account_id: str) -> bool:
    model = model_for(resource_name)
    found = session.scalar(
        select(model.id).where(model.id == row_id, model.account_id == account_id)
    )
    return found is not None


def check_references(
    session: Session,
    account_id: str,
    values: dict[str, Any],
    refs: dict[str, str],
    dests: tuple[tuple[str, str], ...],
) -> list[dict[str, Any]]:
    """Every id a row points at must be a row of the implied table in the same account.
    Another tenant's id gets the same answer as an id that does not exist."""
    errors = []
    for column, target in refs.items():
        value = values.get(column)
        if value and not exists_in_account(session, target, value, account_id):
            errors.append(field_error(column, f"no such {target} in this account", "reference"))
    for kind_col, id_col in dests:
        kind, dest_id = values.get(kind_col), values.get(id_col)
        if kind is None:
            if dest_id is not None:
                errors.append(field_error(id_col, f"set {kind_col} as well", "dest_pair"))
            continue
        table = DEST_TABLE[DestKind(kind)]
        if table is None:
            if dest_id is not None:
                errors.append(field_error(id_col, f"{kind_col} {kind!r} takes no id", "dest_pair"))
        elif dest_id is None:
            errors.append(field_error(id_col, f"{kind_col} {kind!r} needs an id", "dest_pair"))
        elif not exists_in_account(session, table, dest_id, account_id):
            errors.append(field_error(id_col, f"no such {table} in this account", "reference"))
    return errors


def referrers(session: Session, resource_name: str, row_id: str) -> list[dict[str, str]]:
    """Rows that still point at ``row_id`` through a route target, a reference column or a
    flow document; deleting it would leave them dangling."""
    found: list[dict[str, str]] = []
    kind = registry.KIND_OF.get(resource_name)
    for other in registry.RESOURCES:
        model = other.model
        for kind_col, id_col in other.dests:
            if kind is None:
                break
            rows = session.scalars(
                select(model.id).where(
                    getattr(model, kind_col) == kind.value, getattr(model, id_col) == row_id
                )
            )
            found += [{"resource": other.name, "id": r, "field": id_col} for r in rows]
        for column, target in other.refs.items():
            if target != resource_name or column in OWNED_BY.get(other.name, ()):
                continue
            rows = session.scalars(select(model.id).where(getattr(model, column) == row_id))
            found += [{"resource": other.name, "id": r, "field": column} for r in rows]
    if kind:
        rows = session.scalars(
            select(m.Account.id).where(
                m.Account.did_default_dest_kind == kind.value,
                m.Account.did_default_dest_id == row_id,
            )
        )
        found += [{"resource": "accounts", "id": r, "field": "did_default_dest_id"} for r in rows]
    if resource_name == "call_limits":
        return found
    scoped = session.scalars(select(m.CallLimit.id).where(m.CallLimit.scope_id == row_id))
    found += [{"resource": "call_limits", "id": r, "field": "scope_id"} for r in scoped]
    flows = session.execute(
        select(m.CallFlowVersion.flow_id, m.CallFlowVersion.version)
        .join(m.FlowReference, m.FlowReference.version_id == m.CallFlowVersion.id)
        .where(m.FlowReference.ref_table == resource_name, m.FlowReference.ref_id == row_id)
    )
    found += [
        {"resource": "call_flows", "id": flow_id, "field": f"versions[{version}].document"}
        for flow_id, version in flows
    ]
    return found


# Child rows deleted together with their parent (a membership is part of the user and of the
# queue); they never block a delete.
OWNED_BY: dict[str, tuple[str, ...]] = {
    "sip_devices": ("user_id",),
    "agent_queue_assignments": ("queue_id", "user_id"),
    "in_queue_options": ("queue_id",),
    "ring_group_members": ("ring_group_id", "user_id", "device_id"),
}
