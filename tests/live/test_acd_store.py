"""The ACD in real Redis: strategies end to end, leases, misses, wrap-up, tier order, exits,
events exactly once, and many controllers at once on one account."""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.cdr.build import fold_queues
from control.cdr.events import Event, parse
from control.core.acd import QueueConfig
from control.core.presence import Available, Login, Membership, Pause, Profile, Register, Seat
from control.db.migrate import upgrade
from control.live.acd import AcdStore, NotOffered
from control.settings import Settings
from tests.harness.redis_server import OwnRedis

ACC = "acc_1"


@pytest.fixture
def client(own_redis: OwnRedis) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(own_redis.url, socket_timeout=5.0)
    yield c
    c.close()


@pytest.fixture
def acd(client: redis.Redis) -> AcdStore:
    return AcdStore(client, lease_grace_sec=0)


def seat(store: AcdStore, user_id: str, *seats: tuple[str, int], account: str = ACC) -> None:
    """A registered agent, logged in, available in ``seats`` (queue, tier level)."""
    profile = Profile(
        auto_ready_on_login=True, memberships=tuple(Membership(q, lv) for q, lv in seats)
    )
    presence = store.presence
    presence.apply(account, user_id, Register(f"dev_{user_id}"))
    presence.apply(account, user_id, Login(), profile)
    presence.apply(account, user_id, Available(tuple(Seat(q, lv) for q, lv in seats)), profile)


def queue(strategy: str = "longest_idle", qid: str = "q_1", **kw: object) -> QueueConfig:
    return QueueConfig(qid, ACC, strategy=strategy, **kw)  # type: ignore[arg-type]


def state(store: AcdStore, user_id: str) -> tuple[str, str, str | None]:
    a = store.presence.get(ACC, user_id)
    return a.status, a.state, a.call_id


def serve(store: AcdStore, cfg: QueueConfig, call_id: str) -> tuple[str, ...]:
    """Join, ring, answer by the first agent offered, hang up: the agents that rang."""
    assert store.join(cfg, call_id).exit is None
    offer = store.offer(cfg, call_id)
    assert offer is not None
    store.answered(cfg, call_id, offer.user_ids[0])
    store.finished(cfg, call_id, offer.user_ids[0])
    return offer.user_ids


def types_of(store: AcdStore, call_id: str) -> list[str]:
    return [e["type"] for e in store.events(ACC) if e["call_id"] == call_id]


# -- strategies -------------------------------------------------------------------------------
def test_longest_idle_then_fewest_calls(acd: AcdStore) -> None:
    for uid in ("us_1", "us_2", "us_3"):
        seat(acd, uid, ("q_1", 1))
    q = queue(wrap_up_sec=0)
    # Became free in order us_1, us_2, us_3: each call goes to the agent idle longest.
    assert [serve(acd, q, f"c{i}") for i in range(4)] == [
        ("us_1",),
        ("us_2",),
        ("us_3",),
        ("us_1",),
    ]
    few = queue("fewest_calls", wrap_up_sec=0)
    assert serve(acd, few, "c4") == ("us_2",)  # us_1 took 2, us_2 1 (and idle longer than us_3)
    assert serve(acd, few, "c5") == ("us_3",)


def test_round_robin_and_top_down(acd: AcdStore) -> None:
    for uid in ("us_1", "us_2", "us_3"):
        seat(acd, uid, ("q_1", 1))
    positions = {"us_1": 3, "us_2": 1, "us_3": 2}
    rr = queue("round_robin", wrap_up_sec=0)
    picked = []
    for i in range(4):
        acd.join(rr, f"r{i}")
        offer = acd.offer(rr, f"r{i}", positions)
        assert offer is not None
        picked.append(offer.user_ids)
        acd.answered(rr, f"r{i}", offer.user_ids[0])
        acd.finished(rr, f"r{i}", offer.user_ids[0])
    assert picked == [("us_2",), ("us_3",), ("us_1",), ("us_2",)]
    td = queue("sequential", wrap_up_sec=0)
    for i in range(2):
        acd.join(td, f"t{i}")
        offer = acd.offer(td, f"t{i}", positions)
        assert offer is not None and offer.user_ids == ("us_2",)
        acd.missed(td, f"t{i}")  # a miss does not move top_down off its first agent
        acd.leave(td, f"t{i}", "abandon")


def test_ring_all_and_random(acd: AcdStore) -> None:
    for uid in ("us_1", "us_2", "us_3"):
        seat(acd, uid, ("q_1", 1))
    ring = queue("ring_all", wrap_up_sec=0)
    acd.join(ring, "c1")
    offer = acd.offer(ring, "c1")
    assert offer is not None and offer.user_ids == ("us_1", "us_2", "us_3")
    assert {state(acd, u) for u in offer.user_ids} == {("available", "offering", "c1")}
    acd.answered(ring, "c1", "us_2")
    with pytest.raises(NotOffered):
        acd.answered(ring, "c1", "us_3")  # it answered too late: its leg must be dropped
    assert [state(acd, u)[1] for u in ("us_1", "us_2", "us_3")] == ["waiting", "in_call", "waiting"]
    assert acd.presence.get(ACC, "us_1").misses == 0
    acd.finished(ring, "c1", "us_2")
    rnd = queue("random", wrap_up_sec=0)
    seen = Counter(serve(acd, rnd, f"x{i}")[0] for i in range(30))
    assert set(seen) == {"us_1", "us_2", "us_3"}


# -- exits, rejoin, waiting ------------------------------------------------------------------
def test_queue_full_and_ewt_exits(acd: AcdStore) -> None:
    seat(acd, "us_1", ("q_1", 1))
    q = queue(max_queued=2, ewt_threshold_sec=300, ewt_aht_sec=240)
    first = acd.join(q, "c1")
    assert (first.exit, first.position, first.ewt_sec, first.ready) == (None, 1, 240, 1)
    second = acd.join(q, "c2")
    assert (second.exit, second.position, second.ewt_sec) == ("ewt", 2, 480)
    assert acd.join(queue(max_queued=2), "c2").exit is None
    full = acd.join(q, "c3")
    assert full.exit == "queue_full" and full.position == 3
    assert acd.waiting(q, "c3") is None
    assert acd.live(ACC, "q_1")["waiting"] == 2
    reasons = [e.get("reason") for e in acd.events(ACC) if e["type"] == "queue_leave"]
    assert reasons == ["ewt", "queue_full"]


def test_rejoin_keeps_the_enqueue_time(acd: AcdStore) -> None:
    q = queue()
    assert acd.join(q, "c1").rejoined is False
    acd.join(q, "c2")
    before = acd.waiting(q, "c2")
    time.sleep(0.05)
    again = acd.join(q, "c2")  # a controller taking the call over
    assert again.rejoined and again.position == 2
    after = acd.waiting(q, "c2")
    assert before is not None and after is not None and after.position == 2
    assert after.waited_ms >= before.waited_ms + 40
    assert types_of(acd, "c2") == ["queue_join"]


# -- leases, misses, wrap-up -----------------------------------------------------------------
def test_expired_lease_is_swept_after_a_controller_dies(acd: AcdStore) -> None:
    seat(acd, "us_1", ("q_1", 1))
    seat(acd, "us_2", ("q_1", 1))
    q = queue(agent_ring_timeout_sec=1, max_no_answer=3)
    acd.join(q, "c1")
    offer = acd.offer(q, "c1")
    assert offer is not None and offer.user_ids == ("us_1",)
    # The controller dies here: nobody calls missed().
    assert acd.sweep(ACC) == 0
    time.sleep(1.05)
    assert acd.sweep(ACC) == 1
    assert state(acd, "us_1") == ("available", "waiting", None)
    assert acd.presence.get(ACC, "us_1").misses == 1
    waiting = acd.waiting(q, "c1")
    assert waiting is not None and waiting.position == 1 and waiting.offering == ()
    again = acd.offer(q, "c1")  # the caller is offered again (us_2 is now idle longest)
    assert again is not None and again.user_ids == ("us_2",)
    log = [(e["user_id"], e["event"]) for e in acd.presence.log(ACC) if e["event"] != "register"]
    assert ("us_1", "no_answer") in log
    assert types_of(acd, "c1") == ["queue_join", "queue_offer", "queue_miss", "queue_offer"]


def test_a_caller_nobody_drives_is_timed_out(client: redis.Redis) -> None:
    acd = AcdStore(client, grace_sec=0, lease_grace_sec=0)
    seat(acd, "us_1", ("q_1", 1))
    q = queue(max_wait_sec=1, agent_ring_timeout_sec=5)
    acd.join(q, "c1")
    acd.join(q, "c2")
    assert acd.offer(q, "c1") is not None  # then its controller and c2's die
    time.sleep(1.05)
    assert acd.sweep(ACC) == 2
    assert acd.live(ACC, "q_1")["waiting"] == 0 and acd.waiting(q, "c1") is None
    assert state(acd, "us_1") == ("available", "waiting", None)
    assert acd.presence.get(ACC, "us_1").misses == 0  # the caller went: no miss
    assert types_of(acd, "c2") == ["queue_join", "queue_timeout"]
    assert acd.events(ACC)[-1]["reason"] == "swept"
    assert client.zcard(f"{acd.base(ACC)}:due") == 0 and client.hlen(f"{acd.base(ACC)}:calls") == 0


def test_a_decision_on_a_changed_agent_is_not_written(acd: AcdStore) -> None:
    """Compare-and-set: the API pauses the agent between the ACD's read and its write."""
    seat(acd, "us_1", ("q_1", 1))
    q = queue()
    acd.join(q, "c1")
    ver, raw, board = acd._snapshot(ACC, ["q_1"], ["c1"])
    assert board.offer(q, "c1") is not None
    acd.presence.apply(ACC, "us_1", Pause("lunch"))
    assert not acd._commit(ver, raw, board)
    assert state(acd, "us_1") == ("on_break", "waiting", None)
    assert types_of(acd, "c1") == ["queue_join"]
    assert acd.offer(q, "c1") is None  # decided again: nobody ready


def test_max_no_answer_auto_pauses(acd: AcdStore) -> None:
    seat(acd, "us_1", ("q_1", 1))
    q = queue(max_no_answer=2)
    acd.join(q, "c1")
    for _ in range(2):
        assert acd.offer(q, "c1") is not None
        assert acd.missed(q, "c1") == ("us_1",)
    agent = acd.presence.get(ACC, "us_1")
    assert (agent.status, agent.pause_reason, agent.misses) == ("on_break", "no_answer", 2)
    assert acd.offer(q, "c1") is None and acd.missed(q, "c1") == ()
    assert acd.viable_agents(ACC, "q_1") == 1  # paused, still logged in and reachable
    acd.presence.apply(ACC, "us_1", Available())
    assert acd.offer(q, "c1") is not None


def test_wrap_up_then_ready_again(acd: AcdStore) -> None:
    seat(acd, "us_1", ("q_1", 1))
    q = queue(wrap_up_sec=1)
    serve(acd, q, "c1")
    assert state(acd, "us_1") == ("available", "wrap_up", None)
    acd.join(q, "c2")
    assert acd.offer(q, "c2") is None
    time.sleep(1.05)
    offer = acd.offer(q, "c2")
    assert offer is not None and offer.user_ids == ("us_1",)
    events = [e["event"] for e in acd.presence.log(ACC)][-4:]
    assert events == ["answer", "hangup", "wrap_done", "offer"]


def test_tier_order_across_queues(acd: AcdStore) -> None:
    seat(acd, "us_1", ("q_sales", 1), ("q_support", 2))
    seat(acd, "us_2", ("q_support", 1))
    sales, support = queue(qid="q_sales"), queue(qid="q_support")
    acd.join(support, "s1")
    acd.join(sales, "m1")
    offer = acd.offer(support, "s1")
    assert offer is not None and offer.user_ids == ("us_2",)  # level 1 of support
    acd.join(support, "s2")
    assert acd.offer(support, "s2") is None  # us_1 owes its level-1 queue first
    first = acd.offer(sales, "m1")
    assert first is not None and first.user_ids == ("us_1",)
    acd.leave(sales, "m1", "abandon")  # sales is empty now: us_1 serves support
    second = acd.offer(support, "s2")
    assert second is not None and second.user_ids == ("us_1",)


def test_events_exactly_once_and_the_queue_cdr(acd: AcdStore) -> None:
    seat(acd, "us_1", ("q_1", 1))
    q = queue(wrap_up_sec=0)
    for _ in range(2):  # everything twice, as a controller taking over would
        acd.join(q, "c1")
        acd.offer(q, "c1")
    for _ in range(2):
        acd.answered(q, "c1", "us_1")
        acd.leave(q, "c1", "hangup")
        acd.finished(q, "c1", "us_1")
    with pytest.raises(NotOffered):
        acd.answered(q, "c1", "us_2")  # not the agent who took it
    assert 0 < acd.redis.pttl(acd.answer_key(ACC, "c1")) <= 86_400_000
    acd.join(q, "c2")
    acd.leave(q, "c2", "timeout")
    acd.leave(q, "c2", "timeout")
    acd.join(q, "c3")
    acd.leave(q, "c3", "abandon")
    assert types_of(acd, "c1") == ["queue_join", "queue_offer", "queue_answer"]
    assert types_of(acd, "c2") == ["queue_join", "queue_timeout"]
    assert types_of(acd, "c3") == ["queue_join", "queue_abandon"]
    rows = acd.redis.xrange(acd.stream)
    events = [parse(acd.stream, e.decode(), f) for e, f in rows]
    assert all(isinstance(e, Event) for e in events)
    cdr = fold_queues({}, [e for e in events if isinstance(e, Event)], {})
    assert cdr[("c1", "q_1")]["disposition"] == "answered"
    assert cdr[("c1", "q_1")]["agent_id"] == "us_1" and cdr[("c1", "q_1")]["account_id"] == ACC
    assert cdr[("c2", "q_1")]["disposition"] == "timeout"
    assert cdr[("c3", "q_1")]["disposition"] == "abandoned"
    # Every presence transition of the ACD is in the presence log, once.
    offers = [e for e in acd.presence.log(ACC) if e["event"] == "offer"]
    assert [e["call_id"] for e in offers] == ["c1"]


def test_accounts_do_not_see_each_other(acd: AcdStore) -> None:
    seat(acd, "us_1", ("q_1", 1))
    other = QueueConfig("q_1", "acc_2")
    acd.join(other, "c1")
    assert acd.offer(other, "c1") is None  # acc_1's agent is not acc_2's
    assert acd.live(ACC, "q_1")["waiting"] == 0 and acd.live("acc_2", "q_1")["waiting"] == 1


def test_acd_runs_on_a_cluster(cluster: RedisCluster) -> None:
    store = AcdStore(cluster)
    seat(store, "us_1", ("q_1", 1))
    q = queue(wrap_up_sec=0)
    assert serve(store, q, "c1") == ("us_1",)
    assert store.events_key(ACC) == "sipio:acd:{acc_1}:events"
    assert types_of(store, "c1") == ["queue_join", "queue_offer", "queue_answer"]


# -- many controllers at once -----------------------------------------------------------------
AGENTS = [f"us_{i:02d}" for i in range(20)]
QUEUES = {
    "q_1": queue("longest_idle", "q_1", wrap_up_sec=0, max_no_answer=2, agent_ring_timeout_sec=1),
    "q_2": queue("ring_all", "q_2", wrap_up_sec=0, max_no_answer=2, agent_ring_timeout_sec=1),
}


def _controller(url: str, calls: Sequence[str], seed: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Drive callers as ESL controllers would: join, offer until rung, then answer (and hang
    up a little later), miss, or give up. Some rings are forgotten, as by a controller that
    died: the lease runs out, a sweep releases the agent, and the call is joined again later
    by the controller taking it over."""
    store = AcdStore.from_url(url, lease_grace_sec=0)
    rand = random.Random(seed)
    cfg = {c: QUEUES["q_1" if int(c[1:]) % 2 == 0 else "q_2"] for c in calls}
    for call in calls:
        assert store.join(cfg[call], call).exit is None
    active, talking = list(calls), []
    answered = left = offers = late = 0
    rung: list[tuple[str, tuple[str, ...]]] = []
    orphans: dict[str, float] = {}  # call -> when a new controller takes it over
    forgotten = 0
    deadline = time.monotonic() + 90
    while (active or talking or orphans) and time.monotonic() < deadline:
        for call, at in list(orphans.items()):
            if time.monotonic() >= at:
                assert store.join(cfg[call], call).rejoined
                active.append(call)
                del orphans[call]
        for call, agent, until in list(talking):
            if time.monotonic() >= until:
                store.finished(cfg[call], call, agent)
                talking.remove((call, agent, until))
        for call in list(active):
            offer = store.offer(cfg[call], call)
            if offer is None:
                continue
            offers += 1
            rung.append((call, offer.user_ids))
            roll = rand.random()
            if roll < 0.04:
                orphans[call] = time.monotonic() + 1.1
                active.remove(call)
                forgotten += 1
            elif roll < 0.75:
                agent = rand.choice(offer.user_ids)
                try:
                    store.answered(cfg[call], call, agent)
                except NotOffered:  # this process stalled past the lease: it was swept
                    late += 1
                    continue
                talking.append((call, agent, time.monotonic() + rand.uniform(0, 0.02)))
                active.remove(call)
                answered += 1
            elif roll < 0.92:
                store.missed(cfg[call], call)
            else:
                store.leave(cfg[call], call, "abandon")
                active.remove(call)
                left += 1
        time.sleep(0.001)
    out.put(
        {"answered": answered, "left": left, "offers": offers, "stuck": active + list(orphans),
         "rung": rung, "retries": store.retries, "forgotten": forgotten, "late": late}
    )  # fmt: skip


def _supervisor(url: str, stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    """Agents paused by misses come back; some take a short break: presence writes that race
    the ACD's on the same agents."""
    store = AcdStore.from_url(url)
    rand = random.Random(99)
    while not stop.is_set():
        for uid, agent in store.presence.agents(ACC).items():
            if agent.status == "on_break" and rand.random() < 0.5:
                store.presence.apply(ACC, uid, Available())
            elif agent.status == "available" and rand.random() < 0.02:
                store.presence.apply(ACC, uid, Pause("break"))
        time.sleep(0.005)


def _check_exclusive(client: redis.Redis, acd: AcdStore) -> int:
    """One consistent read (MULTI): each agent rings for at most one caller, and the agent's
    own state agrees with the caller's."""
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(f"{acd.base(ACC)}:calls")
    pipe.hgetall(acd.presence.agents_key(ACC))
    calls_raw, agents_raw = pipe.execute()
    holders: dict[str, str] = {}
    for cid, rec in calls_raw.items():
        for uid in json.loads(rec)["o"]:
            assert uid not in holders, f"{uid} rings for {holders[uid]} and {cid.decode()}"
            holders[uid] = cid.decode()
    for uid_raw, raw in agents_raw.items():
        agent = json.loads(raw)
        uid = uid_raw.decode()
        if uid in holders:
            assert (agent["state"], agent["call_id"]) == ("offering", holders[uid])
        elif agent["state"] == "offering":
            raise AssertionError(f"{uid} is offering {agent['call_id']} with no caller ringing it")
    return len(holders)


def test_two_hundred_callers_twenty_agents_many_controllers(
    own_redis: OwnRedis, client: redis.Redis, acd: AcdStore
) -> None:
    for i, uid in enumerate(AGENTS):
        first, second = ("q_1", "q_2") if i % 2 == 0 else ("q_2", "q_1")
        seat(acd, uid, (first, 1), (second, 2))
    calls = [f"c{i:03d}" for i in range(200)]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    stop = ctx.Event()
    workers = [
        ctx.Process(target=_controller, args=(own_redis.url, calls[w::4], w, out)) for w in range(4)
    ]
    supervisor = ctx.Process(target=_supervisor, args=(own_redis.url, stop))
    started = time.monotonic()
    for proc in [*workers, supervisor]:
        proc.start()
    results, samples, ringing = [], 0, 0
    try:
        while len(results) < len(workers):
            ringing = max(ringing, _check_exclusive(client, acd))
            samples += 1
            while not out.empty():
                results.append(out.get())
            time.sleep(0.002)
    finally:
        stop.set()
        for proc in [*workers, supervisor]:
            proc.join(timeout=30)
    elapsed = time.monotonic() - started
    assert all(proc.exitcode == 0 for proc in [*workers, supervisor])
    assert all(not r["stuck"] for r in results), [r["stuck"] for r in results]
    answered = sum(r["answered"] for r in results)
    left = sum(r["left"] for r in results)
    assert answered + left == 200 and answered > 100
    assert samples > 50 and ringing >= 1
    # The end: nothing waits or rings, every agent is free, counters add up.
    _check_exclusive(client, acd)
    base = acd.base(ACC)
    for key in ("calls", "leases", "due", "q:q_1", "q:q_2"):
        assert client.exists(f"{base}:{key}") == 0, key
    agents = acd.presence.agents(ACC)
    assert {a.state for a in agents.values()} == {"waiting"}
    assert all(a.call_id is None for a in agents.values())
    stats = client.hgetall(f"{base}:stats")
    assert sum(int(v) for k, v in stats.items() if k.endswith(b":calls")) == answered
    # Events: one join and one end per call; offers as the controllers saw them.
    events = acd.events(ACC, count=10_000)
    by_type = Counter(e["type"] for e in events)
    assert by_type["queue_join"] == 200
    assert by_type["queue_answer"] == answered and by_type["queue_abandon"] == left
    ends = Counter(e["call_id"] for e in events if e["type"] in ("queue_answer", "queue_abandon"))
    assert set(ends) == set(calls) and set(ends.values()) == {1}
    rung = [(c, tuple(u)) for r in results for c, u in r["rung"]]
    offered = [(e["call_id"], tuple(e["agent_ids"])) for e in events if e["type"] == "queue_offer"]
    assert sorted(offered) == sorted(rung)
    forgotten = sum(r["forgotten"] for r in results)
    swept = [e for e in events if e["type"] == "queue_miss" and e.get("reason") == "lease_expired"]
    assert forgotten > 0 and len(swept) == forgotten + sum(r["late"] for r in results)
    assert all(len(u) == 1 for c, u in offered if int(c[1:]) % 2 == 0)  # longest_idle
    # The presence log replays to the same agents: offer, then exactly one way out.
    holding: dict[str, str | None] = {}
    for entry in acd.presence.log(ACC, count=100_000):
        uid, kind = entry["user_id"], entry["event"]
        if kind == "offer":
            assert holding.get(uid) is None, f"{uid} offered {entry['call_id']} while holding"
            holding[uid] = entry["call_id"]
        elif kind in ("no_answer", "hangup"):
            assert holding.get(uid) == entry["call_id"]
            holding[uid] = None
    assert set(holding.values()) <= {None}
    print(f"200 callers / 20 agents / 4 controllers: {elapsed:.1f} s, {len(offered)} offers, "
          f"{answered} answered, {left} abandoned, {forgotten} rings forgotten and swept, "
          f"{samples} consistency samples, "
          f"{sum(r['retries'] for r in results)} retries after conflicts")  # fmt: skip


# -- the API ----------------------------------------------------------------------------------
def test_queue_live_api_is_tenant_scoped(tmp_path: Path, own_redis: OwnRedis) -> None:
    url = f"sqlite:///{tmp_path / 'config.db'}"
    upgrade(url)
    _, root = bootstrap(url)
    settings = Settings(state_dir=tmp_path / "s", db_url=url, redis_port=own_redis.port)
    http = create_app(settings).test_client()

    def call(path: str, key: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        response = http.open(path, method=method, json=body, headers={"x-api-key": key})
        return response.status_code, response.get_json()

    def key(account_id: str, scopes: list[str]) -> str:
        body = {"name": "t", "scopes": scopes, "account_id": account_id}
        return str(call("/v1/api_keys", root, "POST", body)[1]["key"])

    accounts = [call("/v1/accounts", root, "POST", {"name": n})[1]["id"] for n in ("a", "b")]
    a_key, b_key = key(accounts[0], ["*"]), key(accounts[1], ["*"])
    status, row = call("/v1/queues", a_key, "POST", {"name": "sales"})
    assert status == 201
    assert (row["agent_whisper"], row["agent_confirm"]) == (0, 0)
    status, confirming = call("/v1/queues", a_key, "POST",
                              {"name": "support", "agent_whisper": 1, "agent_confirm": 1})  # fmt: skip
    assert status == 201 and (confirming["agent_whisper"], confirming["agent_confirm"]) == (1, 1)
    status, problem = call("/v1/queues", a_key, "POST", {"name": "x", "agent_confirm": 2})
    assert status == 422, problem
    agent = call("/v1/sip_users", a_key, "POST", {"username": "200", "is_agent": 1})[1]
    store = AcdStore(redis.Redis.from_url(own_redis.url))
    seat(store, agent["id"], (row["id"], 1), account=accounts[0])
    cfg = QueueConfig(row["id"], accounts[0])
    store.join(cfg, "c1")
    store.join(cfg, "c2")
    offer = store.offer(cfg, "c1")
    assert offer is not None
    assert store.callback(cfg, "c2", "number:+4930123456", 600) is not None  # c2 hung up
    status, live = call(f"/v1/queues/{row['id']}/live", a_key)
    assert status == 200, live
    assert (live["name"], live["waiting"], live["readyAgents"], live["viableAgents"]) == (
        "sales", 2, 0, 1)  # fmt: skip
    assert [c["callId"] for c in live["callers"]] == ["c1", "c2"]
    assert live["callers"][0]["offering"] == [agent["id"]] and live["offering"] == [agent["id"]]
    assert live["callers"][1]["position"] == 2 and live["longestWaitMs"] >= 0
    assert [c["callback"] for c in live["callers"]] == [False, True]
    assert "4930123456" not in json.dumps(live)
    # withdrawing it: not from another tenant, not a live caller, once
    cancel = f"/v1/queues/{row['id']}/callbacks/c2"
    assert http.delete(cancel, headers={"x-api-key": b_key}).status_code == 404
    assert http.delete(f"/v1/queues/{row['id']}/callbacks/c1",
                       headers={"x-api-key": a_key}).status_code == 404  # fmt: skip
    assert store.callback(cfg, "c1", "number:+4930123457", 600) is not None
    assert store.offer(cfg, "c1") is not None  # the dialer rings an agent for it
    busy = http.delete(f"/v1/queues/{row['id']}/callbacks/c1", headers={"x-api-key": a_key})
    assert busy.status_code == 409 and busy.mimetype == "application/problem+json"
    assert http.delete(cancel, headers={"x-api-key": a_key}).status_code == 204
    assert http.delete(cancel, headers={"x-api-key": a_key}).status_code == 404
    gone = [e for e in store.events(accounts[0]) if e["call_id"] == "c2"]
    assert (gone[-1]["type"], gone[-1]["reason"]) == ("queue_abandon", "callback_cancelled")
    status, live = call(f"/v1/queues/{row['id']}/live", a_key)
    assert [c["callId"] for c in live["callers"]] == ["c1"]
    for path, k in ((f"/v1/queues/{row['id']}/live", b_key), ("/v1/queues/q_nope/live", a_key)):
        response = http.get(path, headers={"x-api-key": k})
        assert response.status_code == 404 and response.mimetype == "application/problem+json"
    status, problem = call(f"/v1/queues/{row['id']}/live?x=1", a_key)
    assert status == 422 and problem["errors"][0]["loc"] == ["query", "x"]
    no_scope = key(accounts[0], ["numbers"])
    status, problem = call(f"/v1/queues/{row['id']}/live", no_scope)
    assert status == 403 and problem["required_scope"] == "agents"
    assert "/v1/queues/{queue_id}/live" in call("/v1/openapi.json", a_key)[1]["paths"]
