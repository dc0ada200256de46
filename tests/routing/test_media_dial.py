"""Bridges from the media engine (X-Sipio-Dial) resolve inside the claimed account only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from control.core.routing.directives import Media, Outbound, Reject, Ring
from control.core.routing.media_dial import from_media
from tests.routing.test_resolve import SNAP, call, target


def test_user_by_id_or_username_rings_its_devices() -> None:
    for value in ("us_1", "100"):
        d = from_media(SNAP, "acc_a", f"user:{value}", call(value, caller="4917012345"))
        assert isinstance(d, Ring), d
        assert d.account_id == "acc_a" and d.target == target("user", "us_1")
        assert [leg.device_id for leg in d.steps[0].legs] == ["dev_1b", "dev_1a"]
        assert d.no_answer == target("voicemail", "vm_1")
        assert d.caller_id is not None and d.caller_id.number == "4917012345"


def test_extension_by_digits_or_id_follows_its_target() -> None:
    by_digits = from_media(SNAP, "acc_a", "extension:12", call("12"))
    by_id = from_media(SNAP, "acc_a", "extension:ext_night", call("12"))
    assert isinstance(by_digits, Media) and by_digits == by_id  # closed: its voicemail
    assert by_digits.target == target("voicemail", "vm_1")
    group = from_media(SNAP, "acc_a", "extension:10", call("10"))
    assert isinstance(group, Ring) and group.target == target("ring_group", "rg_1")


@pytest.mark.parametrize(
    "dial",
    [
        "user:us_3",  # acc_b's user, by id
        "extension:ext_b",  # acc_b's extension, by id
        "ring_group:rg_1",  # acc_a's group, claimed as acc_b below
    ],
)
def test_another_accounts_objects_are_never_reached(dial: str) -> None:
    d = from_media(SNAP, "acc_b" if dial.startswith("ring") else "acc_a", dial, call("x"))
    assert isinstance(d, Reject) and d.code == 404, d


def test_username_and_digits_are_looked_up_in_the_claimed_account() -> None:
    d = from_media(SNAP, "acc_b", "user:100", call("100"))
    assert isinstance(d, Ring) and d.target == target("user", "us_3")
    d = from_media(SNAP, "acc_b", "extension:10", call("10"))
    assert isinstance(d, Ring) and d.target == target("user", "us_3")
    cross = from_media(SNAP, "acc_a", "extension:13", call("13"))  # points into acc_b
    assert isinstance(cross, Reject) and cross.code == 404


def test_numbers_go_out_through_the_accounts_trunk() -> None:
    d = from_media(SNAP, "acc_a", "number:+49305", call("x"))
    assert isinstance(d, Reject) and d.code == 404  # too short to be public
    d = from_media(SNAP, "acc_a", "number:+4917099887", call("x", caller="+4930777666"))
    assert isinstance(d, Outbound)
    assert (d.account_id, d.trunk_id, d.number) == ("acc_a", "tr_out", "4917099887")
    assert d.caller_id is not None and d.caller_id.number == "4930777666"
    internal = from_media(SNAP, "acc_a", "number:004917099887", call("x", caller="sipp"))
    assert isinstance(internal, Outbound) and internal.caller_id is not None
    assert internal.caller_id.number == "4930999"  # the trunk's, not a non-number
    none = from_media(SNAP, "acc_b", "number:+4917099887", call("x"))
    assert isinstance(none, Reject) and none.code == 503  # acc_b has no trunk; acc_a's is not lent


@pytest.mark.parametrize(
    ("account", "dial", "code"),
    [
        ("acc_nope", "user:us_1", 403),
        ("acc_a", "user", 400),
        ("acc_a", "user:us 1", 400),
        ("acc_a", "planet:earth", 400),
        ("acc_a", "flow:flow_1", 403),  # media targets are the controller's own business
        ("acc_a", "voicemail:vm_1", 403),
        ("acc_a", "user:nobody", 404),
    ],
)
def test_bad_or_forbidden_dials_are_refused(account: str, dial: str, code: int) -> None:
    d = from_media(SNAP, account, dial, call("x"))
    assert isinstance(d, Reject) and d.code == code, d


def test_suspended_account_cannot_bridge() -> None:
    accounts = dict(SNAP.accounts)
    accounts["acc_a"] = replace(accounts["acc_a"], status="suspended")
    d = from_media(replace(SNAP, accounts=accounts), "acc_a", "user:us_1", call("x"))
    assert isinstance(d, Reject) and d.code == 403
