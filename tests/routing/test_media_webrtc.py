"""WebRTC devices and phones in one call, anchored by the KEMI routing on the real rtpengine.

A phone calls a user whose devices are a desk phone and a WebRTC device: Kamailio offers each
branch on its own (tm branch route, rtpengine via-branch), so the browser is offered DTLS-SRTP
with ICE while the desk phone and the caller keep plain RTP/AVP; later offers keep each side's
profile; and a WebRTC caller reaches a phone with plain RTP."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from control.demo import sipp
from control.kamailio import KamailioRpc
from control.rtpengine import NgClient
from control.settings import Settings
from control.stack.ports import free_port
from tests.harness.provision import Provisioner
from tests.routing.test_calls import proxy, registered, settle
from tests.routing.test_media_reinvite import anchored, sdps

SCENARIOS = Path(__file__).parents[1] / "scenarios"


def sdp_of(messages: str, first_line: str) -> str:
    """The SDP of the first message (of a SIPp trace) starting with ``first_line``."""
    block = messages[messages.index(first_line) :]
    block = re.split(r"^-{20,}", block, maxsplit=1, flags=re.M)[0]
    return block[block.index("v=0") :]


def test_a_webrtc_callee_is_offered_dtls_and_the_phones_plain_rtp(stack: Settings) -> None:
    prov = Provisioner(stack)
    tenant = prov.tenant("Browsers", "browsers.example.com")
    callee_user = tenant.user_with_devices("8401", devices=2)
    browser = callee_user["devices"][1]
    prov.patch("sip_devices", browser["id"], {"is_webrtc": 1})
    caller_user = tenant.user_with_devices("8402")
    settle(stack)
    desk = registered(stack, tenant, callee_user, 0)
    web = registered(stack, tenant, callee_user, 1)  # its contact carries the WebRTC flag
    caller = registered(stack, tenant, caller_user)
    web_media = free_port()
    ringing = desk.ring(timeout=15)
    answering = sipp.start(SCENARIOS / "uas_webrtc_answer.xml", None, local_port=web.port,
                           timeout=15, extra=["-mp", str(web_media)])  # fmt: skip
    ng = NgClient(stack.ng_host, stack.ng_port)
    before = set(ng.list_calls())
    result = caller.call(proxy(stack), "8401")
    answered, rang = answering.wait(), ringing.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output
    assert rang.ok, rang.output  # rang, then CANCEL once the browser answered

    to_browser = sdp_of(answered.messages, "INVITE ")
    assert re.search(r"^m=audio \d+ UDP/TLS/RTP/SAVPF ", to_browser, re.M), to_browser
    assert "a=fingerprint:" in to_browser and "a=ice-ufrag:" in to_browser
    assert "a=candidate:" in to_browser  # ICE forced: the browser needs a candidate
    to_desk = sdp_of(rang.messages, "INVITE ")
    assert re.search(r"^m=audio \d+ RTP/AVP ", to_desk, re.M), to_desk
    assert "a=fingerprint:" not in to_desk and "a=ice-ufrag:" not in to_desk
    to_caller = sdp_of(result.messages, "SIP/2.0 200 OK")
    assert re.search(r"^m=audio \d+ RTP/AVP ", to_caller, re.M), to_caller
    assert "a=fingerprint:" not in to_caller and "a=candidate:" not in to_caller

    at_browser = [s for s in sdps(answered.messages) if s.direction == "received"]
    at_desk = [s for s in sdps(rang.messages) if s.direction == "received"]
    at_caller = [s for s in sdps(result.messages) if s.direction == "received"]
    assert anchored(stack, at_browser[0], 0) and anchored(stack, at_desk[0], 0)
    assert at_browser[0].port != at_desk[0].port  # one rtpengine branch each
    assert anchored(stack, at_caller[0], web_media)  # the browser's answer, via rtpengine

    time.sleep(0.5)
    assert set(ng.list_calls()) - before == set()  # BYE deleted the call, branches included
    ng.close()


def test_a_reinvite_towards_a_webrtc_callee_stays_dtls(stack: Settings) -> None:
    """Later offers keep each side's profile: DTLS-SRTP towards the browser, RTP towards the
    phone (rtpengine remembers each side's protocol; the options sent agree with it)."""
    prov = Provisioner(stack)
    tenant = prov.tenant("Browsers2", "browsers2.example.com")
    callee_user = tenant.user_with_devices("8501")
    prov.patch("sip_devices", callee_user["devices"][0]["id"], {"is_webrtc": 1})
    caller_user = tenant.user_with_devices("8502")
    settle(stack)
    web = registered(stack, tenant, callee_user)
    caller = registered(stack, tenant, caller_user)
    answering = sipp.start(SCENARIOS / "uas_webrtc_reinvite.xml", None, local_port=web.port,
                           timeout=20, extra=["-mp", str(free_port())])  # fmt: skip
    calling = sipp.start(
        SCENARIOS / "uac_reinvite.xml", proxy(stack), timeout=20,
        keys={"user": caller.user, "domain": tenant.domain, "dialled": "8501"},
        auth=(caller.user, caller.password), extra=["-mp", str(free_port())],
    )  # fmt: skip
    # The dialog remembers both kinds: phone caller, WebRTC callee (read from its answer).
    rpc, learnt = KamailioRpc(stack.kamailio_rpc_socket), False
    deadline = time.monotonic() + 5
    while not learnt and time.monotonic() < deadline:
        learnt = '"sipio_media": "apw"' in json.dumps(rpc.call("dlg.list"))
        time.sleep(0.1)
    result, answered = calling.wait(), answering.wait()
    assert learnt
    assert result.ok, result.output
    assert answered.ok, answered.output

    offers = [s for s in sdps(answered.messages) if s.direction == "received"]
    assert [s.first_line.split()[0] for s in offers] == ["INVITE", "INVITE"]
    blocks = answered.messages.split("INVITE sip:")[1:]
    assert len(blocks) == 2
    for block in blocks:  # the first INVITE and the re-INVITE alike
        sdp = block[block.index("v=0") :]
        assert re.search(r"^m=audio \d+ UDP/TLS/RTP/SAVPF ", sdp, re.M), sdp
        assert "a=fingerprint:" in sdp
    answers = [s for s in sdps(result.messages) if s.direction == "received"]
    assert [s.first_line for s in answers] == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]
    for block in result.messages.split("SIP/2.0 200 OK")[1:3]:
        sdp = block[block.index("v=0") : block.index("-----")]
        assert re.search(r"^m=audio \d+ RTP/AVP ", sdp, re.M), sdp
        assert "a=fingerprint:" not in sdp
    assert all(anchored(stack, s, 0) for s in offers + answers)


def test_a_webrtc_caller_reaches_a_phone_with_plain_rtp(stack: Settings) -> None:
    """The other way: the browser's offer becomes plain RTP for the phone, and the phone's
    answer DTLS-SRTP for the browser."""
    prov = Provisioner(stack)
    tenant = prov.tenant("Browsers3", "browsers3.example.com")
    callee_user = tenant.user_with_devices("8601")
    caller_user = tenant.user_with_devices("8602")
    prov.patch("sip_devices", caller_user["devices"][0]["id"], {"is_webrtc": 1})
    settle(stack)
    desk = registered(stack, tenant, callee_user)
    web = registered(stack, tenant, caller_user)
    answering = desk.answer(timeout=15)
    result = sipp.run(
        SCENARIOS / "uac_webrtc_call.xml", proxy(stack), timeout=20,
        keys={"user": web.user, "domain": tenant.domain, "dialled": "8601"},
        auth=(web.user, web.password), extra=["-mp", str(free_port())],
    )  # fmt: skip
    answered = answering.wait()
    assert result.ok, result.output
    assert answered.ok, answered.output

    to_desk = sdp_of(answered.messages, "INVITE ")
    assert re.search(r"^m=audio \d+ RTP/AVP ", to_desk, re.M), to_desk
    assert "a=fingerprint:" not in to_desk and "a=ice-ufrag:" not in to_desk
    to_browser = sdp_of(result.messages, "SIP/2.0 200 OK")
    assert re.search(r"^m=audio \d+ UDP/TLS/RTP/SAVPF ", to_browser, re.M), to_browser
    assert "a=fingerprint:" in to_browser and "a=candidate:" in to_browser


def test_the_no_answer_fallback_of_a_webrtc_callee_is_offered_on_its_own(
    stack: Settings,
) -> None:
    """The browser does not answer; the failure route rings a desk phone instead: its branch
    gets its own plain offer (per-branch mode holds for the whole call)."""
    prov = Provisioner(stack)
    tenant = prov.tenant("Browsers4", "browsers4.example.com")
    target = tenant.user_with_devices("8701")
    slow = tenant.user_with_devices(
        "8702", ring_timeout_sec=2, fwd_noanswer_kind="user", fwd_noanswer_id=target["id"]
    )
    prov.patch("sip_devices", slow["devices"][0]["id"], {"is_webrtc": 1})
    caller_user = tenant.user_with_devices("8703")
    settle(stack)
    ringing = registered(stack, tenant, slow).ring(timeout=15)
    answering = registered(stack, tenant, target).answer(timeout=15)
    caller = registered(stack, tenant, caller_user)
    result = caller.call(proxy(stack), "8702")
    rang, answered = ringing.wait(), answering.wait()
    assert result.ok, result.output
    assert rang.ok and answered.ok, rang.output + answered.output

    to_browser = sdp_of(rang.messages, "INVITE ")
    assert re.search(r"^m=audio \d+ UDP/TLS/RTP/SAVPF ", to_browser, re.M), to_browser
    to_desk = sdp_of(answered.messages, "INVITE ")
    assert re.search(r"^m=audio \d+ RTP/AVP ", to_desk, re.M), to_desk
    assert "a=fingerprint:" not in to_desk
    to_caller = sdp_of(result.messages, "SIP/2.0 200 OK")
    assert re.search(r"^m=audio \d+ RTP/AVP ", to_caller, re.M), to_caller
    at_desk = [s for s in sdps(answered.messages) if s.direction == "received"]
    at_caller = [s for s in sdps(result.messages) if s.direction == "received"]
    assert anchored(stack, at_desk[0], 0) and anchored(stack, at_caller[0], 0)
