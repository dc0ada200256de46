"""Live media-engine control: conference members (scope ``conferences``) and on-demand
recording of a call the media engine holds (scope ``media``).

Commands go to FreeSWITCH's inbound event socket (``esl.conference.MediaControl``), with the
password resolved from the secret store at use time. A room is always named from a
conference row the credential reaches (``<account>-<conference id>``), and a call from the
flow session of an account it reaches, so no request can name another tenant's room or call.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import redis
import structlog
from flask import Blueprint, Response, current_app, g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from control.api import problems
from control.api.auth import require
from control.api.crud import json_body, load_owned
from control.api.errors import Invalid, NotFound, field_error
from control.api.registry import BY_NAME
from control.db import models as m
from esl import apps
from esl.conference import (
    ControlError,
    EslTarget,
    MediaControl,
    recording_name,
    room_name,
    run_sync,
)
from esl.conference import NotFound as EngineNotFound
from esl.session_store import session_key
from esl.voicemail import private_path

bp = Blueprint("media_control", __name__, url_prefix="/v1")
log = structlog.get_logger("sipio.api")
ACTIONS = ("mute", "unmute", "kick")


class RecordingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["start", "stop"]
    account_id: str | None = Field(None, description="Defaults to the credential's account.")


def _control() -> MediaControl:
    settings = current_app.config["SIPIO_SETTINGS"]
    store = current_app.config["ROW_SECRETS"].store
    ref = settings.freeswitch_esl_password_ref
    target = EslTarget(
        settings.freeswitch_esl_host, settings.freeswitch_esl_port, lambda: store.resolve(ref)
    )
    return MediaControl(target)


@bp.errorhandler(ControlError)
def _engine_down(exc: ControlError) -> Response:
    log.warning("media engine control failed", error=str(exc))
    return problems.problem(503, "Service Unavailable", "the media engine is unavailable")


@bp.errorhandler(EngineNotFound)
def _engine_not_found(exc: EngineNotFound) -> Response:
    return problems.problem(404, "Not Found", "no such member or call on the media engine")


def _room(conference_id: str) -> str:
    principal = require("conferences")
    row: m.Conference = load_owned(g.db, principal, BY_NAME["conferences"], conference_id)
    return room_name(row.account_id, row.id)


@bp.get("/conferences/<conference_id>/members")
def list_members(conference_id: str) -> Response:
    members = run_sync(_control().members(_room(conference_id)))
    return jsonify(items=[member.to_json() for member in members])


@bp.post("/conferences/<conference_id>/members/<member_id>/<action>")
def member_action(conference_id: str, member_id: str, action: str) -> Response:
    room = _room(conference_id)
    if action not in ACTIONS:
        raise NotFound(f"no member action {action!r}; one of {', '.join(ACTIONS)}")
    if not member_id.isdigit() or not 0 < int(member_id) < 2**31:
        raise NotFound(f"no member {member_id!r}")
    run_sync(_control().member(room, action, int(member_id)))
    return jsonify(conferenceId=conference_id, memberId=int(member_id), action=action)


@bp.post("/calls/<call_id>/recording")
def call_recording(call_id: str) -> Response:
    principal = require("media")
    body = RecordingIn.model_validate(json_body())
    account_id = body.account_id or principal.account_id
    if not principal.reaches(account_id):
        raise Invalid([field_error("account_id", "no such account")])
    uuid = _live_channel(account_id, call_id)
    control = _control()
    if body.action == "stop":
        run_sync(control.record(uuid, "stop"))
        return jsonify(call_id=call_id, action="stop")
    name = recording_name(account_id, uuid)
    path = private_path(current_app.config["SIPIO_SETTINGS"].recordings_dir, name)
    run_sync(control.record(uuid, "start", str(path)))
    return jsonify(call_id=call_id, action="start", recording=name)


def _live_channel(account_id: str, call_id: str) -> str:
    """The FreeSWITCH channel of a call the controller runs for this account (its session)."""
    client = current_app.extensions.get("sipio_media_redis")
    if client is None:
        url = current_app.config["SIPIO_SETTINGS"].redis_url
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        current_app.extensions["sipio_media_redis"] = client
    try:
        raw = client.hget(session_key(account_id, call_id), "context")
    except redis.RedisError:
        raise ControlError("live state store unavailable") from None
    try:
        uuid = json.loads(raw or b"{}").get("uuid")
    except ValueError:
        uuid = None
    if not isinstance(uuid, str) or not apps.SAFE_ID.match(uuid):
        raise NotFound(f"no live call {call_id!r} on the media engine")
    return uuid


def openapi_paths() -> dict[str, Any]:
    """Path items for the OpenAPI document (``control.api.openapi``)."""
    problem = {"$ref": "#/components/responses/Problem"}
    security: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]

    def op(summary: str, scope: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
        ok = {"description": "OK", "content": {"application/json": {"schema": schema}}}
        return {"summary": f"{summary} (scope `{scope}`)", "security": security,
                "responses": {"200": ok, "default": problem}, **extra}  # fmt: skip

    def path(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}

    member = {
        "type": "object",
        "properties": {
            "memberId": {"type": "integer"}, "uuid": {"type": "string"},
            "callerName": {"type": "string"}, "callerNumber": {"type": "string"},
            "muted": {"type": "boolean"}, "moderator": {"type": "boolean"},
            "talking": {"type": "boolean"},
        },
    }  # fmt: skip
    members = {"type": "object", "properties": {"items": {"type": "array", "items": member}}}
    done = {"type": "object"}
    action = {"name": "action", "in": "path", "required": True,
              "schema": {"type": "string", "enum": list(ACTIONS)}}  # fmt: skip
    recording = RecordingIn.model_json_schema()
    return {
        "/v1/conferences/{conference_id}/members": {
            "parameters": [path("conference_id")],
            "get": op("Members of a live conference room", "conferences", members),
        },
        "/v1/conferences/{conference_id}/members/{member_id}/{action}": {
            "parameters": [path("conference_id"), path("member_id"), action],
            "post": op("Mute, unmute or kick a member", "conferences", done),
        },
        "/v1/calls/{call_id}/recording": {
            "parameters": [path("call_id")],
            "post": op(
                "Start or stop recording a call the media engine holds", "media", done,
                requestBody={"required": True,
                             "content": {"application/json": {"schema": recording}}},
            ),
        },
    }  # fmt: skip
