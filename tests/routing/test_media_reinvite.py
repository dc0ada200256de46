"""Offers after the first one, anchored on the real rtpengine by the KEMI routing: a re-INVITE
or an UPDATE with a new SDP in the middle of a call, and a late offer (INVITE without SDP, offer
in the 200, answer in the ACK). Each side must only ever see rtpengine's address, and RTP must
flow both ways through it afterwards."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from control.demo import sipp
from control.rtpengine import NgClient
from control.settings import Settings
from control.stack.ports import free_port
from tests.harness.provision import Provisioner
from tests.routing.test_calls import proxy, registered, settle
from tests.routing.test_media_anchor import packets_per_tag

SCENARIOS = Path(__file__).parents[1] / "scenarios"


@dataclass(frozen=True)
class Sdp:
    direction: str  # "sent" / "received", as SIPp saw it
    first_line: str
    address: str
    port: int
    version: str  # o= session version


def sdps(messages: str) -> list[Sdp]:
    """Every message with an SDP in a SIPp trace (-trace_msg), in order."""
    found = []
    for block in re.split(r"^-{20,}.*$", messages, flags=re.M):
        head = re.search(r"message (sent|received)", block)
        body = re.search(r"^c=IN IP4 (\S+)", block, re.M)
        media = re.search(r"^m=audio (\d+)", block, re.M)
        origin = re.search(r"^o=\S+ \S+ (\S+)", block, re.M)
        if not (head and body and media and origin):
            continue
        lines = [line.strip() for line in block.splitlines()]
        first = next(
            line for line in lines if line.startswith(("SIP/2.0 ", "INVITE ", "UPDATE ", "ACK "))
        )
        found.append(Sdp(head.group(1), first, body.group(1), int(media.group(1)), origin.group(1)))
    return found


def anchored(stack: Settings, sdp: Sdp, own_port: int) -> bool:
    """The SDP points at rtpengine: its address and one of its ports (never the phone's)."""
    return (
        sdp.address == stack.sip_host
        and stack.rtp_port_min <= sdp.port <= stack.rtp_port_max
        and sdp.port != own_port
    )


def watch_call(ng: NgClient, before: set[str], until: float) -> tuple[str | None, list[int]]:
    """The new call on rtpengine and its packet counts per party, once both are non-zero."""
    call_id, counts = None, [0, 0]
    while time.monotonic() < until and (call_id is None or len(counts) < 2 or min(counts) == 0):
        new = set(ng.list_calls()) - before
        if new:
            call_id = sorted(new)[0]
            counts = packets_per_tag(ng.query(call_id))
        time.sleep(0.2)
    return call_id, counts


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_a_new_offer_mid_call_is_anchored_both_ways(stack: Settings, method: str) -> None:
    """re-INVITE (with its ACK) or UPDATE (RFC 3311, no ACK) carrying a new SDP."""
    scenario = "reinvite" if method == "INVITE" else "update"
    tenant = Provisioner(stack).tenant(f"Mid{method}", f"mid-{scenario}.example.com")
    callee_user = tenant.user_with_devices("8201")
    caller_user = tenant.user_with_devices("8202")
    settle(stack)
    callee = registered(stack, tenant, callee_user)
    caller = registered(stack, tenant, caller_user)
    callee_media, caller_media = free_port(), free_port()
    answering = sipp.start(SCENARIOS / f"uas_{scenario}.xml", None, local_port=callee.port,
                           timeout=20, extra=["-rtp_echo", "-mp", str(callee_media)])  # fmt: skip
    ng = NgClient(stack.ng_host, stack.ng_port)
    before = set(ng.list_calls())
    calling = sipp.start(
        SCENARIOS / f"uac_{scenario}.xml", proxy(stack), timeout=20,
        keys={"user": caller.user, "domain": tenant.domain, "dialled": "8201"},
        auth=(caller.user, caller.password), extra=["-mp", str(caller_media)],
    )  # fmt: skip
    # RTP is sent only after the new offer: packets both ways prove the re-anchored path.
    call_id, counts = watch_call(ng, before, time.monotonic() + 10)
    result, answered = calling.wait(), answering.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output
    assert call_id is not None, "the call never appeared on rtpengine"
    assert len(counts) == 2 and min(counts) > 0, counts

    at_callee = [s for s in sdps(answered.messages) if s.direction == "received"]
    assert [s.first_line.split()[0] for s in at_callee] == ["INVITE", method]
    assert at_callee[1].version == "2"  # the caller's new SDP, relayed ...
    assert all(anchored(stack, s, caller_media) for s in at_callee), at_callee  # ... via rtpengine
    at_caller = [s for s in sdps(result.messages) if s.direction == "received"]
    assert [s.first_line for s in at_caller] == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]
    assert at_caller[1].version == "3"  # the callee's answer to the new offer ...
    assert all(anchored(stack, s, callee_media) for s in at_caller), at_caller  # ... anchored
    # rtpengine keeps each party's port across the re-offer: the media never moved.
    assert at_callee[0].port == at_callee[1].port and at_caller[0].port == at_caller[1].port

    time.sleep(0.5)
    assert call_id not in ng.list_calls()  # BYE deleted it
    ng.close()


def test_a_late_offer_is_anchored_in_the_200_and_the_ack(stack: Settings) -> None:
    tenant = Provisioner(stack).tenant("Late", "late.example.com")
    callee_user = tenant.user_with_devices("8301")
    caller_user = tenant.user_with_devices("8302")
    settle(stack)
    callee = registered(stack, tenant, callee_user)
    caller = registered(stack, tenant, caller_user)
    callee_media, caller_media = free_port(), free_port()
    answering = sipp.start(SCENARIOS / "uas_late_offer.xml", None, local_port=callee.port,
                           timeout=20, extra=["-rtp_echo", "-mp", str(callee_media)])  # fmt: skip
    ng = NgClient(stack.ng_host, stack.ng_port)
    before = set(ng.list_calls())
    calling = sipp.start(
        SCENARIOS / "uac_late_offer.xml", proxy(stack), timeout=20,
        keys={"user": caller.user, "domain": tenant.domain, "dialled": "8301"},
        auth=(caller.user, caller.password), extra=["-mp", str(caller_media)],
    )  # fmt: skip
    call_id, counts = watch_call(ng, before, time.monotonic() + 10)
    result, answered = calling.wait(), answering.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output
    assert call_id is not None, "the call never appeared on rtpengine"
    assert len(counts) == 2 and min(counts) > 0, counts

    assert not [s for s in sdps(answered.messages) if s.first_line.startswith("INVITE")]
    offer = [s for s in sdps(result.messages) if s.direction == "received"]
    assert [s.first_line for s in offer] == ["SIP/2.0 200 OK"]
    assert anchored(stack, offer[0], callee_media), offer  # the callee's offer, via rtpengine
    answer = [s for s in sdps(answered.messages) if s.direction == "received"]
    assert [s.first_line.split()[0] for s in answer] == ["ACK"]
    assert anchored(stack, answer[0], caller_media), answer  # the caller's answer, too

    time.sleep(0.5)
    assert call_id not in ng.list_calls()  # BYE deleted it
    ng.close()
