"""Media of proxied calls anchored on the real rtpengine (userspace) by the KEMI routing."""

from __future__ import annotations

import re
import time
from typing import Any

from control.demo import sipp
from control.rtpengine import NgClient
from control.settings import Settings
from control.stack.ports import free_port
from tests.harness.phones import Phone
from tests.harness.provision import Provisioner
from tests.routing.test_calls import proxy, registered, settle


def media_lines(messages: str, first_line: str) -> tuple[str, int]:
    """(connection address, audio port) of the SDP in the first message starting so."""
    block = messages[messages.index(first_line) :]
    address = re.search(r"^c=IN IP4 (\S+)", block, re.M)
    port = re.search(r"^m=audio (\d+)", block, re.M)
    assert address and port, block[:800]
    return address.group(1), int(port.group(1))


def packets_per_tag(query: dict[str, Any]) -> list[int]:
    counts = []
    for tag in query.get("tags", {}).values():
        total = 0
        for media in tag.get("medias", []):
            for stream in media.get("streams", []):
                total += int(stream.get("stats", {}).get("packets", 0))
        counts.append(total)
    return counts


def test_rtp_flows_through_rtpengine_both_ways_and_the_call_is_deleted(stack: Settings) -> None:
    tenant = Provisioner(stack).tenant("Media", "media.example.com")
    callee_user = tenant.user_with_devices("8001")
    caller_user = tenant.user_with_devices("8002")
    settle(stack)
    callee = registered(stack, tenant, callee_user)
    caller = registered(stack, tenant, caller_user)
    echo = sipp.start(sipp.scenario("uas_answer.xml"), None, local_port=callee.port, timeout=20,
                      extra=["-rtp_echo", "-mp", str(free_port())])  # fmt: skip
    ng = NgClient(stack.ng_host, stack.ng_port)
    before = set(ng.list_calls())
    calling = sipp.start(
        sipp.scenario("uac_call_auth_rtp.xml"), proxy(stack), timeout=20,
        keys={"user": caller.user, "domain": tenant.domain, "dialled": "8001"},
        auth=(caller.user, caller.password), extra=["-mp", str(free_port())],
    )  # fmt: skip
    call_id, counts = None, [0, 0]
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and (call_id is None or min(counts) == 0):
        new = set(ng.list_calls()) - before
        if new:
            call_id = new.pop()
            counts = packets_per_tag(ng.query(call_id))
        time.sleep(0.2)
    result, answered = calling.wait(), echo.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output
    assert call_id is not None, "the call never appeared on rtpengine"
    assert len(counts) == 2 and min(counts) > 0, counts  # caller->callee and the echo back

    lo, hi = stack.rtp_port_min, stack.rtp_port_max
    address, port = media_lines(answered.messages, "INVITE ")
    assert address == stack.sip_host and lo <= port <= hi  # the callee is sent to rtpengine
    address, port = media_lines(result.messages, "SIP/2.0 200 OK")
    assert address == stack.sip_host and lo <= port <= hi  # and so is the caller

    time.sleep(0.5)
    assert call_id not in ng.list_calls()  # BYE deleted it
    ng.close()


def test_media_of_a_refused_call_is_released(stack: Settings) -> None:
    tenant = Provisioner(stack).tenant("Media2", "media2.example.com")
    caller_user = tenant.user_with_devices("8102")
    busy_user = tenant.user_with_devices("8103", ring_timeout_sec=1)
    settle(stack)
    caller = registered(stack, tenant, caller_user)
    ringing = Phone(busy_user["devices"][0]["auth_username"], busy_user["devices"][0]["password"],
                    tenant.domain)  # fmt: skip
    assert ringing.register(proxy(stack)).ok
    ng = NgClient(stack.ng_host, stack.ng_port)
    before = set(ng.list_calls())
    rings = ringing.ring(timeout=10)
    result = caller.call(proxy(stack), "8103", scenario="uac_call_refused.xml")
    rings.wait()
    assert result.ok, result.output
    assert "SIP/2.0 480" in result.messages  # nobody answered, no fallback
    time.sleep(0.3)
    assert set(ng.list_calls()) - before == set()  # the anchored session was deleted
    ng.close()
