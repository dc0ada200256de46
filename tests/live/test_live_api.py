"""``/v1/cac`` and ``/v1/agents`` on a real config DB (SQLite) and the stack's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.core.admission import CallFacts, LimitBook
from control.core.presence import Register
from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from control.live.admission import AdmissionStore
from control.live.presence import PresenceStore
from control.settings import Settings


class Client:
    def __init__(self, app: Any) -> None:
        self.http = app.test_client()

    def __call__(self, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
        response = self.http.open(path, method=method, json=body, headers={"x-api-key": key})
        return response.status_code, response.get_json()

    def ok(self, method: str, path: str, key: str, body: Any = None) -> Any:
        status, data = self(method, path, key, body)
        assert status in (200, 201), (method, path, data)
        return data

    def key(self, root: str, account_id: str, scopes: list[str]) -> str:
        body = {"name": "t", "scopes": scopes, "account_id": account_id}
        return str(self.ok("POST", "/v1/api_keys", root, body)["key"])


@pytest.fixture
def world(tmp_path: Path, stack: Settings, redis_client: redis.Redis) -> Iterator[dict[str, Any]]:
    """A reseller with a child account (max_in 5): a limited user, a DID, a 5/10 s rule, an
    agent in a queue and a plain user; and a key of each with the scopes the tests need."""
    url = f"sqlite:///{tmp_path / 'config.db'}"
    upgrade(url)
    _, root = bootstrap(url)
    api = Client(
        create_app(Settings(state_dir=tmp_path / "s", db_url=url, redis_port=stack.redis_port))
    )
    reseller = api.ok("POST", "/v1/accounts", root, {"name": "r", "is_reseller": 1})["id"]
    r_key = api.key(root, reseller, ["*"])
    child = api.ok("POST", "/v1/accounts", r_key, {"name": "c", "max_in": 5})["id"]
    c_key = api.key(root, child, ["*"])
    user = api.ok("POST", "/v1/sip_users", c_key, {"username": "100", "max_simultaneous": 1})
    agent = api.ok("POST", "/v1/sip_users", c_key, {"username": "200", "is_agent": 1})
    queue = api.ok("POST", "/v1/queues", c_key, {"name": "sales"})
    api.ok(
        "POST",
        "/v1/agent_queue_assignments",
        c_key,
        {"queue_id": queue["id"], "user_id": agent["id"], "tier_level": 2},
    )
    did = api.ok("POST", "/v1/dids", c_key, {"e164": "15550001111", "max_channels": 3})
    rule = api.ok(
        "POST",
        "/v1/call_limits",
        c_key,
        {"scope_kind": "account", "direction": "in", "period_sec": 10, "max_count": 5},
    )
    outsider = api.ok("POST", "/v1/sip_users", r_key, {"username": "900", "is_agent": 1})
    yield {
        "api": api,
        "root": root,
        "reseller": reseller,
        "r_key": r_key,
        "child": child,
        "c_key": c_key,
        "user": user["id"],
        "agent": agent["id"],
        "queue": queue["id"],
        "did": did["id"],
        "rule": rule["id"],
        "outsider": outsider["id"],
        "url": url,
        "agents_key": api.key(root, child, ["agents"]),
    }
    AdmissionStore(redis_client).clear(child)
    presence = PresenceStore(redis_client)
    redis_client.delete(presence.agents_key(child), presence.log_key(child))


def limit_book(url: str) -> LimitBook:
    with Session(make_engine(url)) as s:
        return LimitBook.from_rows(
            *(
                s.scalars(select(model)).all()
                for model in (m.Account, m.SipUser, m.Did, m.SipTrunk, m.CallLimit)
            )
        )


def test_cac_shows_live_counters_with_their_limits(
    world: dict[str, Any], redis_client: redis.Redis
) -> None:
    api, child = world["api"], world["child"]
    store, book = AdmissionStore(redis_client), limit_book(world["url"])
    for n in range(2):
        facts = CallFacts(
            f"api-{n}-{child}",
            child,
            callee_user_id=world["user"] if n == 0 else None,
            did_id=world["did"],
        )
        assert store.admit(facts, book).admitted
    view = api.ok("GET", "/v1/cac", world["c_key"])
    assert view["account_id"] == child and view["calls"] == 2
    counters = {
        (c["kind"], c.get("direction") or c.get("id")): (c["count"], c["limit"])
        for c in view["counters"]
    }
    assert counters == {
        ("account", "in"): (2, 5),
        ("account", "out"): (0, None),
        ("account", "dialer"): (0, None),
        ("did", world["did"]): (2, 3),
        ("user", world["user"]): (1, 1),
    }
    assert view["windows"] == [
        {
            "rule_id": world["rule"],
            "scope_id": child,
            "count": 2,
            "max_count": 5,
            "period_sec": 10,
            "hard": 1,
        }
    ]
    # The reseller reads its child's counters; the child cannot read its parent's.
    assert api.ok("GET", f"/v1/cac?account_id={child}", world["r_key"]) == view
    status, _ = api("GET", f"/v1/cac?account_id={world['reseller']}", world["c_key"])
    assert status == 404
    status, problem = api("GET", "/v1/cac", world["agents_key"])
    assert (status, problem["required_scope"]) == (403, "limits")


def test_reset_clear_is_the_parents_and_recount_anyones(
    world: dict[str, Any], redis_client: redis.Redis
) -> None:
    api, child = world["api"], world["child"]
    store = AdmissionStore(redis_client)
    assert store.admit(
        CallFacts(f"reset-{child}", child, did_id=world["did"]), limit_book(world["url"])
    ).admitted
    redis_client.hset(store.keys.account(child)[0], "in", 9)  # drift
    status, problem = api("POST", "/v1/cac/reset", world["c_key"], {})
    assert status == 403 and "parent" in problem["detail"]
    recount = api.ok("POST", "/v1/cac/reset", world["c_key"], {"mode": "recount"})
    assert recount["drift"] == [{"field": "in", "was": 9, "now": 1}]
    cleared = api.ok("POST", "/v1/cac/reset", world["r_key"], {"account_id": child})
    assert cleared == {"account_id": child, "mode": "clear", "calls_forgotten": 1, "drift": []}
    assert api.ok("GET", "/v1/cac", world["c_key"])["calls"] == 0


def test_agent_control_follows_explicit_ready(
    world: dict[str, Any], redis_client: redis.Redis
) -> None:
    api, key, agent = world["api"], world["agents_key"], world["agent"]
    status, problem = api("POST", "/v1/agents/state", key, {"userId": agent, "event": "available"})
    assert status == 409 and "not logged in" in problem["detail"]
    login = api.ok("POST", "/v1/agents/state", key, {"userId": agent, "event": "login"})
    assert (login["status"], login["bucket"], login["pauseReason"]) == (
        "on_break",
        "unreachable",
        "not_ready",
    )
    PresenceStore(redis_client).apply(world["child"], agent, Register("dev_1"))  # the phone
    ready = api.ok(
        "POST",
        "/v1/agents/state",
        key,
        {"userId": agent, "event": "available", "queues": [{"queueId": world["queue"]}]},
    )
    assert (ready["bucket"], ready["previousBucket"], ready["changed"]) == ("ready", "paused", True)
    assert ready["queues"] == [{"queueId": world["queue"], "level": 2}]
    listed = api.ok("GET", "/v1/agents", key)["items"]
    assert [a["userId"] for a in listed] == [agent]  # the plain user is no agent
    assert listed[0]["bucket"] == "ready" and listed[0]["reachable"] is True
    assert api.ok("GET", f"/v1/agents?userId={agent}", key)["items"] == listed
    paused = api.ok(
        "POST", "/v1/agents/state", key, {"userId": agent, "event": "break", "reason": "lunch"}
    )
    assert (paused["bucket"], paused["pauseReason"]) == ("paused", "lunch")
    log = PresenceStore(redis_client).log(world["child"])
    assert [e["bucket"] for e in log] == ["unreachable", "paused", "ready", "paused"]


def test_agent_control_refusals(world: dict[str, Any]) -> None:
    api, key = world["api"], world["agents_key"]
    status, problem = api(
        "POST",
        "/v1/agents/state",
        key,
        {
            "userId": world["agent"],
            "event": "login",
            "queues": [{"queueId": "q_0000notmine", "level": 1}],
        },
    )
    assert status == 422 and problem["errors"][0]["loc"] == ["body", "queues", "0", "queueId"]
    status, problem = api(
        "POST", "/v1/agents/state", key, {"userId": world["user"], "event": "login"}
    )
    assert status == 422 and problem["errors"][0]["loc"] == ["body", "userId"]
    status, _ = api(
        "POST", "/v1/agents/state", key, {"userId": world["outsider"], "event": "login"}
    )
    assert status == 404  # a user of the parent account is out of the child's reach
    assert api.ok("GET", f"/v1/agents?userId={world['outsider']}", key) == {"items": []}
    status, _ = api("POST", "/v1/agents/state", key, {"userId": world["agent"], "event": "nap"})
    assert status == 422
    # The reseller acts on its child's agent.
    done = api.ok(
        "POST", "/v1/agents/state", world["r_key"], {"userId": world["agent"], "event": "login"}
    )
    assert done["accountId"] == world["child"]
