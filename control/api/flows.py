"""Call flows: versioned documents. Drafts are edited; publishing freezes a version, and a
call runs the version published when it started."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from control.api import schemas
from control.api.auth import Principal, require
from control.api.crud import json_body, paged
from control.api.errors import Conflict, Invalid, NotFound, field_error
from control.api.flow_checks import document_errors, document_references, draft_issues
from control.api.store import bump_config_version, new_id, referrers
from control.db import models as m

bp = Blueprint("call_flows", __name__, url_prefix="/v1/call_flows")
SCOPE = "flows"


def flow_dict(session: Session, flow: m.CallFlow) -> dict[str, Any]:
    draft = session.scalar(
        select(m.CallFlowVersion.version).where(
            m.CallFlowVersion.flow_id == flow.id, m.CallFlowVersion.status == "draft"
        )
    )
    return {
        "id": flow.id,
        "account_id": flow.account_id,
        "name": flow.name,
        "published_version": flow.published_version,
        "draft_version": draft,
        "created_at": flow.created_at,
        "updated_at": flow.updated_at,
    }


def version_dict(row: m.CallFlowVersion) -> dict[str, Any]:
    data = {
        "flow_id": row.flow_id,
        "version": row.version,
        "status": row.status,
        "document": row.document,
        "created_at": row.created_at,
        "published_at": row.published_at,
    }
    if row.status == "draft":
        data["issues"] = draft_issues(row.document)  # what would block a publish today
    return data


def _load(session: Session, principal: Principal, flow_id: str) -> m.CallFlow:
    flow = session.get(m.CallFlow, flow_id)
    if flow is None or not principal.reaches(flow.account_id):
        raise NotFound(f"no call_flow {flow_id!r}")
    return flow


def _draft(session: Session, flow: m.CallFlow) -> m.CallFlowVersion | None:
    return session.scalar(
        select(m.CallFlowVersion).where(
            m.CallFlowVersion.flow_id == flow.id, m.CallFlowVersion.status == "draft"
        )
    )


def _shape_checked(document: Any) -> dict[str, Any]:
    errors = document_errors(document, refs=None)
    if errors:
        raise Invalid(errors, "flow document is not valid")
    return dict(document)


@bp.get("")
def list_flows() -> Response:
    principal = require(SCOPE)
    query = select(m.CallFlow)
    if name := request.args.get("name"):
        query = query.where(m.CallFlow.name == name)
    if "account_id" in request.args:
        query = query.where(m.CallFlow.account_id == request.args["account_id"])
    return paged(
        query, m.CallFlow.id, m.CallFlow.account_id, principal, lambda r: flow_dict(g.db, r)
    )


@bp.post("")
def create_flow() -> tuple[Response, int]:
    principal = require(SCOPE)
    session: Session = g.db
    body = schemas.CallFlowIn.model_validate(json_body())
    account_id = body.account_id or principal.account_id
    if not principal.reaches(account_id):
        raise Invalid([field_error("account_id", "no such account")])
    document = _shape_checked(body.document)
    flow = m.CallFlow(id=new_id("flow"), account_id=account_id, name=body.name)
    session.add(flow)
    session.flush()
    session.add(
        m.CallFlowVersion(
            id=new_id("flowv"),
            account_id=account_id,
            flow_id=flow.id,
            version=1,
            status="draft",
            document=document,
        )
    )
    session.flush()
    bump_config_version(session)
    return jsonify(flow_dict(session, flow)), 201


@bp.get("/<flow_id>")
def read_flow(flow_id: str) -> Response:
    return jsonify(flow_dict(g.db, _load(g.db, require(SCOPE), flow_id)))


@bp.patch("/<flow_id>")
def rename_flow(flow_id: str) -> Response:
    session: Session = g.db
    flow = _load(session, require(SCOPE), flow_id)
    flow.name = schemas.CallFlowRename.model_validate(json_body()).name
    session.flush()
    bump_config_version(session)
    return jsonify(flow_dict(session, flow))


@bp.put("/<flow_id>/draft")
def save_draft(flow_id: str) -> Response:
    """Replace the draft; after a publish the first save opens version latest+1."""
    session: Session = g.db
    flow = _load(session, require(SCOPE), flow_id)
    body = json_body()
    if set(body) != {"document"}:
        raise Invalid([field_error("document", 'send exactly {"document": {...}}')])
    document = _shape_checked(body["document"])
    draft = _draft(session, flow)
    if draft is None:
        latest = session.scalar(
            select(func.max(m.CallFlowVersion.version)).where(m.CallFlowVersion.flow_id == flow.id)
        )
        draft = m.CallFlowVersion(
            id=new_id("flowv"), account_id=flow.account_id, flow_id=flow.id,
            version=(latest or 0) + 1, status="draft", document=document,
        )  # fmt: skip
        session.add(draft)
    else:
        draft.document = document
    session.flush()
    bump_config_version(session)
    return jsonify(version_dict(draft))


@bp.post("/<flow_id>/publish")
def publish(flow_id: str) -> Response:
    session: Session = g.db
    flow = _load(session, require(SCOPE), flow_id)
    draft = _draft(session, flow)
    if draft is None:
        raise Conflict("nothing to publish: the flow has no draft")
    errors = document_errors(draft.document, refs=_account_refs(session, flow.account_id))
    if errors:
        raise Invalid(errors, "flow document is not valid")
    draft.status = "published"
    draft.published_at = int(time.time())
    flow.published_version = draft.version
    session.execute(delete(m.FlowReference).where(m.FlowReference.version_id == draft.id))
    for table, ref_id in sorted(document_references(draft.document)):
        session.add(
            m.FlowReference(
                version_id=draft.id, ref_table=table, ref_id=ref_id, account_id=flow.account_id
            )
        )
    session.flush()
    bump_config_version(session)
    return jsonify(flow_dict(session, flow) | {"published": version_dict(draft)})


@bp.get("/<flow_id>/versions")
def list_versions(flow_id: str) -> Response:
    flow = _load(g.db, require(SCOPE), flow_id)
    rows = g.db.scalars(
        select(m.CallFlowVersion)
        .where(m.CallFlowVersion.flow_id == flow.id)
        .order_by(m.CallFlowVersion.version)
    )
    return jsonify(items=[version_dict(r) for r in rows])


@bp.get("/<flow_id>/versions/<int:version>")
def read_version(flow_id: str, version: int) -> Response:
    flow = _load(g.db, require(SCOPE), flow_id)
    row = g.db.scalar(
        select(m.CallFlowVersion).where(
            m.CallFlowVersion.flow_id == flow.id, m.CallFlowVersion.version == version
        )
    )
    if row is None:
        raise NotFound(f"call_flow {flow_id} has no version {version}")
    return jsonify(version_dict(row))


@bp.delete("/<flow_id>")
def delete_flow(flow_id: str) -> tuple[str, int]:
    session: Session = g.db
    flow = _load(session, require(SCOPE), flow_id)
    still = referrers(session, "call_flows", flow.id)
    if still:
        raise Conflict(f"call_flows {flow.id} is still referenced", referrers=still)
    session.delete(flow)
    bump_config_version(session)
    return "", 204


def _account_refs(session: Session, account_id: str) -> dict[str, set[str]]:
    """Ids a flow of this account may point at, by table."""
    tables: dict[str, Any] = {
        "media_files": m.MediaFile, "queues": m.Queue, "voicemail_boxes": m.VoicemailBox,
        "time_schedules": m.TimeSchedule, "sip_users": m.SipUser, "extensions": m.Extension,
        "ring_groups": m.RingGroup, "conferences": m.Conference, "call_flows": m.CallFlow,
    }  # fmt: skip
    return {
        name: set(session.scalars(select(model.id).where(model.account_id == account_id)))
        for name, model in tables.items()
    }
