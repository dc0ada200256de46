"""The routing core without Kamailio: table-driven decisions over an in-memory snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from control.core.numbers import to_e164
from control.core.routing import model as m
from control.core.routing.directives import Media, Outbound, Reject, Ring
from control.core.routing.resolve import Call, Context, fallback, from_device, from_trunk
from control.core.schedule import Schedule, ScheduleRule
from control.core.targets import DestKind, RouteTarget

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # a Thursday, 11:00 in Berlin


def target(kind: str, id_: str | None = None) -> RouteTarget:
    return RouteTarget(DestKind(kind), id_)


def device(
    id_: str, user: str, account: str = "acc_a", auth: str | None = None, **kw: object
) -> m.Device:
    return m.Device(id_, account, user, auth or id_, f"{account}.example", "h", "h", "h", **kw)  # type: ignore[arg-type]


def snapshot(**overrides: object) -> m.Snapshot:
    accounts = {
        "acc_a": m.Account("acc_a", "active", "Europe/Berlin", default_cid_number="4930000"),
        "acc_b": m.Account("acc_b", "active", "UTC"),
    }
    users = {
        "us_1": m.User("us_1", "acc_a", "100", "Ann", voicemail_id="vm_1"),
        "us_2": m.User("us_2", "acc_a", "200", out_cid_number="4930222"),
        "us_3": m.User("us_3", "acc_b", "100"),
        "us_dnd": m.User("us_dnd", "acc_a", "300", dnd=1, fwd_busy=target("user", "us_1")),
        "us_seq": m.User("us_seq", "acc_a", "400", ring_strategy="sequential", ring_timeout_sec=5),
        "us_spec": m.User("us_spec", "acc_a", "500", ring_strategy="specific"),
        "us_fwd": m.User("us_fwd", "acc_a", "600", fwd_always=target("extension", "ext_loop")),
    }
    devices = [
        device("dev_1a", "us_1", ring_order=1),
        device("dev_1b", "us_1", ring_order=0),
        device("dev_1x", "us_1", ring_on_fork=0),
        device("dev_2", "us_2"),
        device("dev_3", "us_3", "acc_b"),
        device("dev_s1", "us_seq", ring_order=2),
        device("dev_s2", "us_seq", ring_order=1),
        device("dev_p1", "us_spec", ring_specific=0),
        device("dev_p2", "us_spec"),
    ]
    by_user: dict[str, tuple[m.Device, ...]] = {}
    for d in devices:
        by_user[d.user_id] = (*by_user.get(d.user_id, ()), d)
    closed = Schedule("sch_closed", None, (ScheduleRule("date_range", start_date="2000-01-01",
                                                        end_date="2999-12-31", is_closed=1),))  # fmt: skip
    extensions = [
        m.Extension("ext_1", "acc_a", "10", target("ring_group", "rg_1")),
        m.Extension("ext_loop", "acc_a", "11", target("extension", "ext_loop")),
        m.Extension("ext_night", "acc_a", "12", target("user", "us_1"),
                    hours=m.Hours("sch_closed", closed=target("voicemail", "vm_1"))),
        m.Extension("ext_b", "acc_b", "10", target("user", "us_3")),
        m.Extension("ext_cross", "acc_a", "13", target("user", "us_3")),
    ]  # fmt: skip
    values: dict[str, object] = {
        "version": 1,
        "accounts": accounts,
        "domains": {"acc_a.example": "acc_a", "acc_b.example": "acc_b"},
        "devices": {(d.auth_username, d.realm): d for d in devices},
        "devices_by_id": {d.id: d for d in devices},
        "devices_by_user": by_user,
        "users": users,
        "users_by_name": {(u.account_id, u.username): u for u in users.values()},
        "extensions": {(e.account_id, e.digits): e for e in extensions},
        "extensions_by_id": {e.id: e for e in extensions},
        "dids": {
            "4930100": m.Did("did_1", "acc_a", "4930100", target("user", "us_1")),
            "4930101": m.Did("did_2", "acc_a", "4930101", None),
            "4930102": m.Did(
                "did_3", "acc_a", "4930102", target("flow", "flow_1"), allow_anonymous=0
            ),
            "4930103": m.Did("did_4", "acc_a", "4930103", target("user", "us_3")),
        },
        "trunks": {
            "tr_out": m.Trunk("tr_out", "acc_a", "out", "127.0.0.3:5060", cid_number="4930999"),
            "tr_in": m.Trunk(
                "tr_in",
                "acc_plat",
                "carrier",
                None,
                direction="inbound",
                inbound_ips=("10.0.0.0/24",),
            ),
        },
        "ring_groups": {
            "rg_1": m.RingGroup(
                "rg_1",
                "acc_a",
                "ring_all",
                20,
                (m.RingMember("us_1", None), m.RingMember("us_2", None, delay_sec=5)),
                exit=target("voicemail", "vm_1"),
            ),
            "rg_rr": m.RingGroup(
                "rg_rr",
                "acc_a",
                "round_robin",
                30,
                (m.RingMember("us_1", None, 0), m.RingMember("us_2", None, 1)),
            ),
        },
        "schedules": {"sch_closed": closed},
        "media_targets": frozenset({("voicemail", "vm_1"), ("flow", "flow_1")}),
    }
    values.update(overrides)
    return m.Snapshot(**values)  # type: ignore[arg-type]


def call(dialled: str, caller: str = "100", **kw: object) -> Call:
    return Call("cid", dialled, caller, None, NOW, **kw)  # type: ignore[arg-type]


SNAP = snapshot()


def test_user_forks_to_fork_devices_in_ring_order() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("100"))
    assert isinstance(d, Ring)
    assert [leg.device_id for leg in d.steps[0].legs] == ["dev_1b", "dev_1a"]  # dev_1x opted out
    assert d.no_answer == target("voicemail", "vm_1")
    assert d.caller_id is not None and d.caller_id.number == "200"


def test_sequential_is_one_step_per_device() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("400"))
    assert isinstance(d, Ring)
    assert [[leg.device_id for leg in s.legs] for s in d.steps] == [["dev_s2"], ["dev_s1"]]
    assert all(s.timeout_sec == 5 for s in d.steps)


def test_specific_rings_only_opted_in_devices() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("500"))
    assert isinstance(d, Ring)
    assert [leg.device_id for leg in d.steps[0].legs] == ["dev_p2"]


def test_dnd_uses_fwd_busy() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("300"))
    assert isinstance(d, Ring) and d.target == target("user", "us_1")


def test_forward_loops_are_cut() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("600"))
    assert isinstance(d, Reject) and d.code == 482


def test_ring_group_all_with_delays_and_exit() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("10"))
    assert isinstance(d, Ring)
    assert len(d.steps) == 1
    assert {(leg.device_id, leg.delay_sec) for leg in d.steps[0].legs} >= {
        ("dev_2", 5),
        ("dev_1b", 0),
    }
    assert d.no_answer == d.busy == target("voicemail", "vm_1")
    assert d.overall_sec == 20


def test_round_robin_rotates_the_first_member() -> None:
    counter = iter(range(10))
    ctx = Context(SNAP, SNAP.accounts["acc_a"], call("x", rotate=lambda _key: next(counter)), None)
    from control.core.routing.resolve import resolve

    firsts = [resolve(ctx, target("ring_group", "rg_rr"), 0) for _ in range(3)]
    users = [r.steps[0].legs[0].device_id for r in firsts if isinstance(r, Ring)]
    assert users == ["dev_1b", "dev_2", "dev_1b"]


def test_closed_extension_goes_to_closed_target() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("12"))
    assert isinstance(d, Media) and d.target == target("voicemail", "vm_1")


def test_extensions_and_users_resolve_in_the_callers_account_only() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_3"], call("10"))
    assert isinstance(d, Ring) and d.target == target("user", "us_3")  # B's own ext 10
    cross = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("13"))
    assert isinstance(cross, Reject) and cross.code == 404  # a target in another account


def test_pstn_numbers_go_out_with_caller_id_precedence() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("+15550100"))
    assert isinstance(d, Outbound)
    assert (d.number, d.proxy) == ("15550100", "127.0.0.3:5060")
    assert d.caller_id is not None and d.caller_id.number == "4930222"  # user first
    d = from_device(SNAP, SNAP.devices_by_id["dev_1a"], call("0015550100"))
    assert isinstance(d, Outbound) and d.caller_id is not None
    assert d.caller_id.number == "4930999"  # then the trunk's


def test_no_trunk_means_503() -> None:
    d = from_device(SNAP, SNAP.devices_by_id["dev_3"], call("15550100"))
    assert isinstance(d, Reject) and d.code == 503


@pytest.mark.parametrize(
    ("dialled", "expected"),
    [("4930100", Ring), ("+4930100", Ring), ("4930101", Reject), ("4930199", Reject)],
)
def test_dids_from_the_carrier(dialled: str, expected: type) -> None:
    d = from_trunk(SNAP, SNAP.trunks["tr_in"], call(dialled, caller="4917000"))
    assert isinstance(d, expected)


def test_anonymous_callers_refused_where_the_did_says_so() -> None:
    d = from_trunk(SNAP, SNAP.trunks["tr_in"], call("4930102", caller="anonymous"))
    assert isinstance(d, Reject) and d.code == 433
    d = from_trunk(SNAP, SNAP.trunks["tr_in"], call("4930102", caller="4917000"))
    assert isinstance(d, Media) and d.target == target("flow", "flow_1")


def test_did_pointing_into_another_account_is_not_followed() -> None:
    d = from_trunk(SNAP, SNAP.trunks["tr_in"], call("4930103"))
    assert isinstance(d, Reject) and d.code == 404


def test_account_default_applies_to_unrouted_dids() -> None:
    accounts = dict(SNAP.accounts)
    accounts["acc_a"] = m.Account("acc_a", "active", "UTC", did_default=target("voicemail", "vm_1"))
    d = from_trunk(snapshot(accounts=accounts), SNAP.trunks["tr_in"], call("4930101"))
    assert isinstance(d, Media)


def test_suspended_account_devices_are_refused() -> None:
    accounts = dict(SNAP.accounts)
    accounts["acc_a"] = m.Account("acc_a", "suspended", "UTC")
    d = from_device(snapshot(accounts=accounts), SNAP.devices_by_id["dev_2"], call("100"))
    assert isinstance(d, Reject) and d.code == 403


def test_fallback_after_no_answer_and_busy() -> None:
    ring = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("100"))
    assert isinstance(ring, Ring)
    ctx = Context(SNAP, SNAP.accounts["acc_a"], call("100"), None)
    assert isinstance(fallback(ctx, ring, busy=False), Media)
    bare = from_device(SNAP, SNAP.devices_by_id["dev_1a"], call("200"))
    assert isinstance(bare, Ring)
    assert fallback(ctx, bare, busy=True) == Reject(486, "Busy Here")


def test_trunk_for_source_matches_cidrs() -> None:
    assert SNAP.trunk_for_source("10.0.0.7") is SNAP.trunks["tr_in"]
    assert SNAP.trunk_for_source("10.0.1.7") is None
    assert SNAP.trunk_for_source("not-an-ip") is None


@pytest.mark.parametrize(
    ("dialled", "e164"),
    [("+4930123456", "4930123456"), ("004930123456", "4930123456"), ("4930123456", "4930123456"),
     ("+1 (555) 010-9999", "15550109999"), ("030123456", None), ("123", None), ("12ab34567", None)],
)  # fmt: skip
def test_e164_normalisation(dialled: str, e164: str | None) -> None:
    assert to_e164(dialled) == e164


def test_ring_group_overall_time_caps_serial_steps() -> None:
    from control.core.routing.resolve import step_timeout

    group = m.RingGroup("rg_s", "acc_a", "sequential", 30,
                        (m.RingMember("us_1", None, 0, timeout_sec=20), m.RingMember("us_2", None, 1, timeout_sec=20)))  # fmt: skip
    snap = snapshot(ring_groups={"rg_s": group})
    from control.core.routing.resolve import resolve

    ring = resolve(
        Context(snap, snap.accounts["acc_a"], call("x"), None), target("ring_group", "rg_s"), 0
    )
    assert isinstance(ring, Ring)
    assert step_timeout(ring, 0, 0) == 20
    assert step_timeout(ring, 1, 21) == 9  # 30 s overall, 21 s gone
    assert step_timeout(ring, 1, 29.0) == 1
    assert step_timeout(ring, 1, 29.6) is None
    user_ring = from_device(SNAP, SNAP.devices_by_id["dev_2"], call("400"))
    assert isinstance(user_ring, Ring) and step_timeout(user_ring, 1, 500) == 5  # no overall cap
