"""The pure half of admission: which dimensions a call meets, and how a rejection sounds."""

from __future__ import annotations

from control.core.admission import (
    OUTAGE,
    CallFacts,
    Decision,
    Dimension,
    Held,
    LimitBook,
    Rule,
    TrunkLimits,
    decode_held,
    encode_held,
    facts_from_route,
    outage_decision,
    parse_field,
    plan,
    sip_answer,
)
from control.core.routing.directives import Media, Outbound, Reject, Ring
from control.core.targets import DestKind, RouteTarget


def fields(book: LimitBook, facts: CallFacts) -> list[tuple[str, list[str]]]:
    return [(g.account_id, [d.field for d in g.dimensions]) for g in plan(facts, book).groups]


def test_inbound_call_counts_account_did_trunk_and_callee(book: LimitBook) -> None:
    facts = CallFacts("c", "acc_a", callee_user_id="us_a1", did_id="did_a1", in_trunk_id="tr_a")
    assert facts.directions == ("in",)
    groups = plan(facts, book).groups
    assert len(groups) == 1
    dims = {d.field: d for d in groups[0].counters}
    assert list(dims) == ["in", "t:tr_a", "d:did_a1", "u:us_a1"]
    assert dims["in"].limit == 3 and dims["d:did_a1"].limit == 2 and dims["u:us_a1"].limit == 1
    assert dims["t:tr_a"].limit is None  # counted, never limited
    assert dims["u:us_a1"].role == "callee"


def test_outbound_internal_dialer_and_forwarded_directions(book: LimitBook) -> None:
    out = CallFacts("c", "acc_a", caller_user_id="us_a2", out_trunk_id="tr_a")
    assert fields(book, out) == [("acc_a", ["out", "t:tr_a", "u:us_a2"])]
    assert plan(out, book).groups[0].counters[0].limit == 2
    internal = CallFacts("c", "acc_a", caller_user_id="us_a1", callee_user_id="us_a2")
    assert internal.directions == ("internal",)
    assert fields(book, internal) == [("acc_a", ["internal", "u:us_a2", "u:us_a1"])]
    assert plan(internal, book).groups[0].counters[0].limit is None
    dialer = CallFacts("c", "acc_a", out_trunk_id="tr_a", dialer=True)
    assert plan(dialer, book).groups[0].counters[0].limit == 1
    # A DID forwarded back to the PSTN holds an inbound and an outbound channel.
    forwarded = CallFacts("c", "acc_a", did_id="did_a1", in_trunk_id="tr_a", out_trunk_id="tr_a")
    assert forwarded.directions == ("in", "out")
    assert fields(book, forwarded)[0][1][:3] == ["in", "out", "t:tr_a"]


def test_trunk_of_another_account_is_counted_in_its_owner_slot(book: LimitBook) -> None:
    facts = CallFacts("c", "acc_b", did_id="did_b1", in_trunk_id="tr_p")
    assert fields(book, facts) == [
        ("acc_b", ["in", "d:did_b1"]),
        ("acc_p", ["t:tr_p", "w:lim_p:tr_p"]),  # the owner's trunk rule goes with it
    ]


def test_rules_match_by_direction_and_scope() -> None:
    rules = (
        Rule("lim_acc", "acc_a", "account", None, "out", 60, 10, True),
        Rule("lim_in", "acc_a", "account", None, "in", 60, 10, True),
        Rule("lim_u1", "acc_a", "user", "us_1", "out", 60, 5, True),
        Rule("lim_each", "acc_a", "user", None, "out", 60, 5, False),
        Rule("lim_num", "acc_a", "number", "did_1", "in", 10, 5, True),
        Rule("lim_tr", "acc_a", "trunk", "tr_1", "out", 60, 5, True),
    )
    book = LimitBook(trunks={"tr_1": TrunkLimits("acc_a")}, rules={"acc_a": rules})
    out_u1 = CallFacts("c", "acc_a", caller_user_id="us_1", out_trunk_id="tr_1")
    windows = [d.field for d in plan(out_u1, book).groups[0].windows]
    assert windows == ["w:lim_acc:acc_a", "w:lim_u1:us_1", "w:lim_each:us_1", "w:lim_tr:tr_1"]
    out_u2 = CallFacts("c", "acc_a", caller_user_id="us_2", out_trunk_id="tr_1")
    assert "w:lim_each:us_2" in [d.field for d in plan(out_u2, book).groups[0].windows]
    inbound = CallFacts("c", "acc_a", did_id="did_1", in_trunk_id="tr_1")
    assert [d.field for d in plan(inbound, book).groups[0].windows] == [
        "w:lim_in:acc_a",
        "w:lim_num:did_1",
    ]
    window = plan(inbound, book).groups[0].windows[1]
    assert window.limit == 5 and window.period_ms == 10_000 and window.hard


def test_sip_answer_per_dimension() -> None:
    def dim(kind: str, role: str | None = None) -> Dimension:
        return Dimension(kind, "f", 1, kind, role=role)  # type: ignore[arg-type]

    assert sip_answer(dim("account")) == (503, "Service Unavailable", 10)
    assert sip_answer(dim("trunk")) == (503, "Service Unavailable", 10)
    assert sip_answer(dim("did")) == (486, "Busy Here", None)
    assert sip_answer(dim("user", "callee")) == (486, "Busy Here", None)
    assert sip_answer(dim("user", "caller")) == (403, "Forbidden", None)
    assert sip_answer(dim("rate"), retry_ms=4001) == (503, "Service Unavailable", 5)
    assert sip_answer(dim("rate"), retry_ms=0)[2] == 1
    assert sip_answer(OUTAGE) == (503, "Service Unavailable", 5)


def test_rejection_headers_and_directive() -> None:
    rule = Rule("lim_1", "acc_a", "account", None, "in", 10, 5, True)
    window = Dimension(
        "rate", "w:lim_1:acc_a", 5, "call_limit lim_1 (5/10s)", "acc_a", "in", rule=rule
    )
    decision = Decision("c", "acc_a", False, "open", rejected_by=window, retry_ms=2500)
    assert decision.code == 503 and decision.retry_after == 3
    assert decision.reply_headers() == [
        "Retry-After: 3",
        'Reason: SIP;cause=503;text="cac call_limit lim_1"',  # the figures stay private
    ]
    assert decision.reject() == Reject(503, "Service Unavailable", "cac: call_limit lim_1 (5/10s)")
    trace = decision.trace()
    assert trace["rejected_by"]["rule_id"] == "lim_1" and trace["retry_after"] == 3
    admitted = Decision("c", "acc_a", True, "open")
    assert admitted.reject() is None and admitted.reply_headers() == [] and admitted.code is None


def test_outage_policy_decisions(book: LimitBook) -> None:
    call = plan(CallFacts("c", "acc_b", did_id="did_b1", in_trunk_id="tr_p"), book)
    opened = outage_decision(call, "open", "ConnectionError")
    assert opened.admitted and opened.degraded
    assert opened.held == (Held("acc_b", ("in", "d:did_b1")), Held("acc_p", ("t:tr_p",)))
    closed = outage_decision(call, "closed", "ConnectionError")
    assert not closed.admitted and closed.code == 503 and closed.retry_after == 5
    assert closed.trace()["degraded"] is True


def test_held_token_round_trip() -> None:
    held = (Held("acc_a", ("in", "u:us_1", "w:lim_1:acc_a")), Held("acc_p", ("t:tr_p",)))
    token = encode_held(held)
    assert token == "acc_a=in,u:us_1,w:lim_1:acc_a;acc_p=t:tr_p"
    assert decode_held(token) == held
    assert decode_held("") == ()


def test_limit_book_from_rows_reads_the_policy_when_present() -> None:
    class Row:
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(kw)

    book = LimitBook.from_rows(
        accounts=[
            Row(id="acc_1", max_in=1, max_out=None, max_dialer=None),
            Row(id="acc_2", max_in=None, max_out=None, max_dialer=None, cac_redis_policy="closed"),
        ],
        users=[Row(id="us_1", max_simultaneous=2)],
        dids=[Row(id="did_1", max_channels=None)],
        trunks=[Row(id="tr_1", account_id="acc_1", max_channels=5)],
        rules=[
            Row(
                id="lim_1",
                account_id="acc_1",
                scope_kind="account",
                scope_id=None,
                direction="out",
                period_sec=60,
                max_count=10,
                hard=0,
            )
        ],
    )
    assert book.policy("acc_1") == "open" and book.policy("acc_2") == "closed"
    assert book.accounts["acc_1"].max_in == 1 and book.users["us_1"] == 2
    assert book.trunks["tr_1"] == TrunkLimits("acc_1", 5)
    assert book.rules["acc_1"][0].hard is False


def test_facts_from_routing_directives() -> None:
    ring = Ring("acc_a", RouteTarget(DestKind.USER, "us_a1"), ())
    facts = facts_from_route("c1", ring, source_trunk_id="tr_a", did_id="did_a1")
    assert facts == CallFacts("c1", "acc_a", None, "us_a1", "did_a1", "tr_a", None)
    out = Outbound("acc_a", "tr_a", "198.51.100.1", "udp", "+15551234567")
    assert facts_from_route("c2", out, caller_user_id="us_a2") == CallFacts(
        "c2", "acc_a", "us_a2", out_trunk_id="tr_a"
    )
    media = Media("acc_a", RouteTarget(DestKind.QUEUE, "q_1"))
    assert facts_from_route("c3", media, source_trunk_id="tr_a").directions == ("in",)
    assert facts_from_route("c4", Reject(404, "Not Found")) is None


def test_counter_fields_as_the_api_shows_them() -> None:
    assert parse_field("in") == {"kind": "account", "direction": "in"}
    assert parse_field("u:us_1") == {"kind": "user", "id": "us_1"}
    assert parse_field("t:tr_1") == {"kind": "trunk", "id": "tr_1"}
