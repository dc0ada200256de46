"""Voicemail messages of a box (scope ``voicemail``): list, read, mark heard, delete, and the
audio itself. The audio is served only here, to a credential that reaches the box's account:
the media store has no public path. Another tenant's box or message is a 404, as if absent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, send_file
from pydantic import BaseModel, ConfigDict
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from control.api.auth import require
from control.api.crud import load_owned, paged
from control.api.errors import Invalid, NotFound
from control.api.registry import BY_NAME
from control.db import models as m
from esl.voicemail import KEY_PATTERN, remove_file

bp = Blueprint("voicemail_messages", __name__, url_prefix="/v1/voicemail_boxes")
FOLDERS = ("new", "saved")


class VoicemailMessageOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    account_id: str
    box_id: str
    call_id: str
    caller_number: str | None
    caller_name: str | None
    duration_sec: int
    size_bytes: int
    folder: str
    heard_at: int | None
    created_at: int
    audio_url: str


def _view(row: m.VoicemailMessage) -> dict[str, Any]:
    return VoicemailMessageOut(
        id=row.id, account_id=row.account_id, box_id=row.box_id, call_id=row.call_id,
        caller_number=row.caller_number, caller_name=row.caller_name,
        duration_sec=row.duration_sec, size_bytes=row.size_bytes, folder=row.folder,
        heard_at=row.heard_at, created_at=row.created_at,
        audio_url=f"/v1/voicemail_boxes/{row.box_id}/messages/{row.id}/audio",
    ).model_dump()  # fmt: skip


def _message(box_id: str, message_id: str) -> m.VoicemailMessage:
    principal = require("voicemail")
    box = load_owned(g.db, principal, BY_NAME["voicemail_boxes"], box_id)
    row: m.VoicemailMessage | None = g.db.get(m.VoicemailMessage, message_id)
    if row is None or row.box_id != box.id or row.account_id != box.account_id:
        raise NotFound(f"no voicemail message {message_id!r}")
    return row


def audio_path(row: m.VoicemailMessage) -> Path:
    """The message's file in the media store; a key that is not one of ours never becomes a
    path (no traversal, no other account's directory)."""
    key = row.media_key
    if not KEY_PATTERN.match(key) or not key.startswith(f"{row.account_id}/vm/"):
        raise NotFound("the message has no audio")
    return Path(current_app.config["SIPIO_SETTINGS"].media_dir) / key


@bp.get("/<box_id>/messages")
def list_messages(box_id: str) -> Response:
    principal = require("voicemail")
    box = load_owned(g.db, principal, BY_NAME["voicemail_boxes"], box_id)
    unknown = [k for k in request.args if k not in ("folder", "limit", "cursor")]
    if unknown:
        errors = [
            {"loc": ["query", k], "msg": "unknown parameter", "type": "extra"} for k in unknown
        ]
        raise Invalid(errors, "unknown query parameter")
    folder = request.args.get("folder")
    if folder is not None and folder not in FOLDERS:
        raise Invalid([{"loc": ["query", "folder"], "msg": "new or saved", "type": "filter"}])
    t = m.VoicemailMessage
    query = select(t).where(t.box_id == box.id, t.account_id == box.account_id)
    if folder:
        query = query.where(t.folder == folder)
    return paged(query, t.id, t.account_id, principal, _view)


@bp.get("/<box_id>/messages/<message_id>")
def read_message(box_id: str, message_id: str) -> Response:
    return jsonify(_view(_message(box_id, message_id)))


@bp.post("/<box_id>/messages/<message_id>/heard")
def mark_heard(box_id: str, message_id: str) -> Response:
    row = _message(box_id, message_id)
    if row.heard_at is None:
        row.heard_at = int(time.time())
    g.db.flush()
    return jsonify(_view(row))


@bp.delete("/<box_id>/messages/<message_id>")
def delete_message(box_id: str, message_id: str) -> tuple[str, int]:
    row = _message(box_id, message_id)
    path = audio_path(row)
    session: Session = g.db
    session.delete(row)
    # The file goes once the row is gone for good: a rolled-back delete keeps both.
    event.listen(session, "after_commit", lambda _s: remove_file(path), once=True)
    return "", 204


@bp.get("/<box_id>/messages/<message_id>/audio")
def message_audio(box_id: str, message_id: str) -> Response:
    path = audio_path(_message(box_id, message_id))
    if not path.is_file():
        raise NotFound("the message's audio is no longer in the media store")
    response = send_file(path, mimetype="audio/wav", max_age=0, conditional=True)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def openapi_paths() -> dict[str, Any]:
    """Path items for the OpenAPI document (``control.api.openapi``)."""
    problem = {"$ref": "#/components/responses/Problem"}
    security: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]
    message = VoicemailMessageOut.model_json_schema()
    ids = [
        {"name": "box_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}},
    ]

    def op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"summary": f"{summary} (scope `voicemail`)", "security": security,
                "responses": responses | {"default": problem}, **extra}  # fmt: skip

    def json(schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}

    page = {
        "type": "object", "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": message},
                       "next_cursor": {"type": ["string", "null"]}},
    }  # fmt: skip
    listing = [
        ids[0],
        {"name": "folder", "in": "query", "schema": {"type": "string", "enum": list(FOLDERS)}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                     "maximum": 500}},
        {"name": "cursor", "in": "query", "schema": {"type": "string",
                                                      "pattern": "^[A-Za-z0-9_-]*$"}},
    ]  # fmt: skip
    base = "/v1/voicemail_boxes/{box_id}/messages"
    wav = {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}
    audio = {"description": "The message (WAV)", "content": wav}
    return {
        base: {"get": op("List a box's messages, oldest id first", {"200": json(page)},
                         parameters=listing)},
        base + "/{message_id}": {
            "parameters": ids,
            "get": op("Read a message", {"200": json(message)}),
            "delete": op("Delete a message and its audio", {"204": {"description": "Deleted"}}),
        },
        base + "/{message_id}/heard": {
            "parameters": ids, "post": op("Mark a message heard", {"200": json(message)}),
        },
        base + "/{message_id}/audio": {
            "parameters": ids, "get": op("The message's audio", {"200": audio}),
        },
    }  # fmt: skip
