"""Live state on the public API: admission counters (``/v1/cac``, scope ``limits``), agent
presence (``/v1/agents``, scope ``agents``) and queues (``/v1/queues/<id>/live``, scope
``agents``). The state is in Redis (``control.live``); the config rows that give it meaning
(limits, users, memberships, queues) come from the config DB."""

from __future__ import annotations

from typing import Any, Literal

import redis
from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from control.api import problems
from control.api.auth import Principal, require
from control.api.crud import json_body
from control.api.errors import Conflict, Forbidden, Invalid, NotFound, field_error
from control.api.fields import Id, Text100, Tier
from control.core import presence as core
from control.core.acd import AcdError, QueueConfig
from control.core.admission import parse_field
from control.db import models as m
from control.live.acd import AcdStore
from control.live.admission import AdmissionStore
from control.live.presence import PresenceStore
from control.live.reconcile import reconcile

bp = Blueprint("live", __name__, url_prefix="/v1")


class SeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queueId: Id
    level: Tier | None = Field(None, description="Tier for this login; default tier_level.")


class AgentStateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    userId: Id
    event: Literal["login", "logout", "available", "pause", "break"]
    queues: list[SeatIn] | None = Field(None, max_length=200)
    reason: Text100 | None = Field(None, description="Pause reason.")


class CacResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: Id | None = Field(None, description="Defaults to the credential's account.")
    mode: Literal["clear", "recount"] = Field(
        "clear", description="clear: forget every counter and call; recount: rebuild counters."
    )


def _stores() -> tuple[AdmissionStore, PresenceStore]:
    found: tuple[AdmissionStore, PresenceStore] | None = current_app.extensions.get("sipio_live")
    if found is None:
        url = current_app.config["SIPIO_SETTINGS"].redis_url
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        found = (AdmissionStore(client), PresenceStore(client))
        current_app.extensions["sipio_live"] = found
    return found


@bp.errorhandler(redis.RedisError)
def _redis_down(_exc: redis.RedisError) -> Response:
    return problems.problem(503, "Service Unavailable", "live state store unavailable")


def _query(allowed: tuple[str, ...]) -> None:
    unknown = [k for k in request.args if k not in allowed]
    if unknown:
        errors = [
            {"loc": ["query", k], "msg": "unknown parameter", "type": "extra"} for k in unknown
        ]
        raise Invalid(errors, "unknown query parameter")


def _account(principal: Principal, account_id: str | None) -> m.Account:
    row: m.Account | None = g.db.get(m.Account, account_id or principal.account_id)
    if row is None or not principal.reaches(row.id):
        raise NotFound(f"no account {account_id!r}")
    return row


# -- admission ------------------------------------------------------------------------------------
@bp.get("/cac")
def read_cac() -> Response:
    principal = require("limits")
    _query(("account_id",))
    account = _account(principal, request.args.get("account_id"))
    return jsonify(_cac_view(g.db, account))


def _cac_view(session: Session, account: m.Account) -> dict[str, Any]:
    rules = list(session.scalars(select(m.CallLimit).where(m.CallLimit.account_id == account.id)))
    live = _stores()[0].live(account.id, {r.id: r.period_sec for r in rules})
    tables: dict[str, Any] = {"user": m.SipUser, "did": m.Did, "trunk": m.SipTrunk}
    limit_of = {"user": "max_simultaneous", "did": "max_channels", "trunk": "max_channels"}
    counters = []
    for direction in ("in", "out", "dialer", "internal"):
        if direction != "internal" or direction in live.counters:
            limit = getattr(account, f"max_{direction}", None)
            counters.append(
                {
                    "kind": "account",
                    "direction": direction,
                    "count": live.counters.get(direction, 0),
                    "limit": limit,
                }
            )
    for name, count in sorted(live.counters.items()):
        parsed = parse_field(name)
        if parsed["kind"] == "account":
            continue
        row = session.get(tables[parsed["kind"]], parsed["id"])
        limit = getattr(row, limit_of[parsed["kind"]]) if row is not None else None
        counters.append(parsed | {"count": count, "limit": limit})
    by_id = {r.id: r for r in rules}
    windows = []
    for name, count in live.windows.items():
        _, rule_id, scope = name.split(":", 2)
        rule = by_id.get(rule_id)
        windows.append(
            {
                "rule_id": rule_id,
                "scope_id": scope,
                "count": count,
                "max_count": rule.max_count if rule else None,
                "period_sec": rule.period_sec if rule else None,
                "hard": rule.hard if rule else None,
            }
        )
    return {"account_id": account.id, "calls": live.calls, "counters": counters, "windows": windows}


@bp.post("/cac/reset")
def reset_cac() -> Response:
    principal = require("limits")
    body = CacResetIn.model_validate(json_body())
    account = _account(principal, body.account_id)
    store = _stores()[0]
    if body.mode == "recount":
        report = reconcile(store, live=(), grace=float("inf"), accounts=[account.id])
        repair = report.accounts.get(account.id)
        drift = [{"field": f, "was": a, "now": b} for f, a, b in (repair.drift if repair else [])]
        return jsonify(account_id=account.id, mode="recount", calls_forgotten=0, drift=drift)
    if account.id == principal.account_id and not principal.is_platform:
        # Clearing lets calls past the limits: like the limits themselves, a parent's call.
        raise Forbidden("the counters of an account are cleared by its parent; use mode recount")
    forgotten = store.clear(account.id)
    return jsonify(account_id=account.id, mode="clear", calls_forgotten=forgotten, drift=[])


# -- agents ---------------------------------------------------------------------------------------
def _agent_view(user: m.SipUser, agent: core.Agent, now: int) -> dict[str, Any]:
    settled = core.settle(agent, now)
    current = settled.after if settled else agent
    return {
        "userId": user.id,
        "accountId": user.account_id,
        "username": user.username,
        "status": current.status,
        "state": current.state,
        "reachable": current.reachable,
        "bucket": core.bucket(current, now),
        "queues": [{"queueId": s.queue_id, "level": s.level} for s in current.queues],
        "pauseReason": current.pause_reason,
        "wrapUntil": current.wrap_until,
        "since": current.since or None,
    }


@bp.get("/agents")
def list_agents() -> Response:
    principal = require("agents")
    _query(("account_id", "userId"))
    presence = _stores()[1]
    user_id = request.args.get("userId")
    if user_id is not None:
        user = g.db.get(m.SipUser, user_id)
        if user is None or not user.is_agent or not principal.reaches(user.account_id):
            return jsonify(items=[])
        return jsonify(
            items=[_agent_view(user, presence.get(user.account_id, user.id), presence.now())]
        )
    account = _account(principal, request.args.get("account_id"))
    users = g.db.scalars(
        select(m.SipUser)
        .where(m.SipUser.account_id == account.id, m.SipUser.is_agent == 1)
        .order_by(m.SipUser.username)
    )
    live, now = presence.agents(account.id), presence.now()
    return jsonify(items=[_agent_view(u, live.get(u.id, core.Agent(u.id)), now) for u in users])


@bp.post("/agents/state")
def agent_state() -> Response:
    principal = require("agents")
    body = AgentStateIn.model_validate(json_body())
    user = g.db.get(m.SipUser, body.userId)
    if user is None or not principal.reaches(user.account_id):
        raise NotFound(f"no sip_user {body.userId!r}")
    if not user.is_agent:
        raise Invalid([field_error("userId", "the user is not an agent (is_agent = 0)")])
    queues = None if body.queues is None else [(q.queueId, q.level) for q in body.queues]
    event = core.control_event(body.event, queues, body.reason)
    presence = _stores()[1]
    try:
        transition = presence.apply(user.account_id, user.id, event, _profile(g.db, user))
    except core.UnknownQueue as exc:
        index = next(i for i, q in enumerate(body.queues or []) if q.queueId == exc.queue_id)
        raise Invalid([field_error(f"queues.{index}.queueId", str(exc))]) from None
    except core.PresenceError as exc:
        raise Conflict(str(exc)) from None
    view = _agent_view(user, transition.after, transition.at)
    return jsonify(
        view
        | {
            "changed": transition.changed,
            "previousBucket": core.bucket(transition.before, transition.at),
        }
    )


def _profile(session: Session, user: m.SipUser) -> core.Profile:
    rows = session.scalars(
        select(m.AgentQueueAssignment).where(m.AgentQueueAssignment.user_id == user.id)
    )
    return core.Profile(
        auto_ready_on_login=bool(user.auto_ready_on_login),
        auto_queue_login=bool(user.auto_queue_login),
        memberships=tuple(core.Membership(r.queue_id, r.tier_level, r.mode) for r in rows),
    )


# -- queues ---------------------------------------------------------------------------------------
def _acd() -> AcdStore:
    found: AcdStore | None = current_app.extensions.get("sipio_acd")
    if found is None:
        found = AcdStore(_stores()[1].redis)
        current_app.extensions["sipio_acd"] = found
    return found


@bp.get("/queues/<queue_id>/live")
def queue_live(queue_id: str) -> Response:
    """Callers waiting (position, wait, agents ringing) and agents ready, now."""
    principal = require("agents")
    _query(())
    row = g.db.get(m.Queue, queue_id)
    if row is None or not principal.reaches(row.account_id):
        raise NotFound(f"no queue {queue_id!r}")
    return jsonify(_acd().live(row.account_id, row.id) | {"name": row.name})


@bp.delete("/queues/<queue_id>/callbacks/<call_id>")
def cancel_callback(queue_id: str, call_id: str) -> Response:
    """Withdraw a courtesy callback that is waiting (in the queue, or for its next try): 204;
    409 while the dialer is placing it; 404 when there is none."""
    principal = require("agents")
    _query(())
    row = g.db.get(m.Queue, queue_id)
    if row is None or not principal.reaches(row.account_id):
        raise NotFound(f"no queue {queue_id!r}")
    try:
        cancelled = _acd().cancel_callback(QueueConfig(row.id, row.account_id), call_id)
    except AcdError as exc:
        raise Conflict(str(exc)) from None
    if not cancelled:
        raise NotFound(f"no pending callback {call_id!r} in queue {queue_id!r}")
    return Response(status=204)
