"""Every ng command the client offers, against a real rtpengine 10.5 in userspace mode."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.rtpengine import MediaOptions, NgCallNotFound, NgClient, NgCommandError
from tests.harness.rtpengine import RtpengineNode
from tests.rtpengine.sdp import Phone, audio_sdp, media_endpoint, webrtc_sdp


def test_offer_answer_query_delete_round_trip(ng: NgClient, node_a: RtpengineNode) -> None:
    call_id = "round-trip@sipio.test"
    caller = audio_sdp("alice", "192.0.2.10", 49170)
    callee = audio_sdp("bob", "198.51.100.20", 51000)
    replace = MediaOptions(replace=("origin", "session-connection"))

    offered = ng.offer(call_id, caller, from_tag="alice-tag", options=replace)
    address, port = media_endpoint(offered.sdp)
    assert address == "127.0.0.1" and port in node_a.rtp  # bob is pointed at rtpengine
    assert "192.0.2.10" not in offered.sdp  # c= and o= no longer leak the caller's address
    assert "a=rtpmap:8 PCMA/8000" in offered.sdp
    assert offered.node == ng.name

    answered = ng.answer(call_id, callee, from_tag="alice-tag", to_tag="bob-tag", options=replace)
    address, back_port = media_endpoint(answered.sdp)
    assert address == "127.0.0.1" and back_port in node_a.rtp and back_port != port
    assert "198.51.100.20" not in answered.sdp

    call = ng.query(call_id)
    assert set(call["tags"]) == {"alice-tag", "bob-tag"}
    legs = call["tags"]["alice-tag"]["medias"][0]["streams"][0]
    assert legs["endpoint"] == {"address": "192.0.2.10", "family": "IPv4", "port": 49170}
    assert call_id in ng.list_calls()

    deleted = ng.delete(call_id, from_tag="alice-tag")
    assert "totals" in deleted
    assert call_id not in ng.list_calls()
    with pytest.raises(NgCallNotFound):
        ng.query(call_id)


def test_webrtc_to_sip_strips_ice_dtls_and_rtcp_mux(ng: NgClient) -> None:
    reply = ng.offer(
        "webrtc-in@sipio.test",
        webrtc_sdp("browser", "192.0.2.30", 50000),
        from_tag="w1",
        options=MediaOptions.webrtc_to_sip(),
    )
    assert re.search(r"^m=audio \d+ RTP/AVP ", reply.sdp, re.M)
    for webrtc_only in ("a=candidate", "a=fingerprint", "a=ice-ufrag", "a=rtcp-mux", "a=setup"):
        assert webrtc_only not in reply.sdp
    ng.delete("webrtc-in@sipio.test")


def test_sip_to_webrtc_adds_ice_dtls_and_rtcp_mux(ng: NgClient) -> None:
    reply = ng.offer(
        "webrtc-out@sipio.test",
        audio_sdp("phone", "192.0.2.10", 49170),
        from_tag="s1",
        options=MediaOptions.sip_to_webrtc(),
    )
    assert re.search(r"^m=audio \d+ UDP/TLS/RTP/SAVPF ", reply.sdp, re.M)
    for webrtc_needs in ("a=candidate", "a=fingerprint:sha-256", "a=ice-ufrag", "a=rtcp-mux"):
        assert webrtc_needs in reply.sdp
    assert "a=crypto" not in reply.sdp  # SDES off: browsers refuse it
    ng.delete("webrtc-out@sipio.test")


def test_codec_strip_and_transcode(ng: NgClient) -> None:
    reply = ng.offer(
        "codecs@sipio.test",
        audio_sdp("alice", "192.0.2.10", 49170),
        from_tag="c1",
        options=MediaOptions(codec_strip=("PCMA",), codec_transcode=("G722",)),
    )
    assert "PCMA" not in reply.sdp
    assert "a=rtpmap:0 PCMU/8000" in reply.sdp
    assert re.search(r"^a=rtpmap:\d+ G722/8000", reply.sdp, re.M)  # rtpengine will transcode
    ng.delete("codecs@sipio.test")


def test_direction_picks_the_outgoing_interface(ng: NgClient) -> None:
    sdp = audio_sdp("alice", "192.0.2.10", 49170)
    inward = ng.offer("dir-1@sipio.test", sdp, from_tag="d1")
    outward = ng.offer(
        "dir-2@sipio.test",
        sdp,
        from_tag="d2",
        options=MediaOptions(direction=("internal", "external")),
    )
    assert media_endpoint(inward.sdp)[0] == "127.0.0.1"  # first interface by default
    assert media_endpoint(outward.sdp)[0] == "127.0.0.2"  # the "external" interface
    for call_id in ("dir-1@sipio.test", "dir-2@sipio.test"):
        ng.delete(call_id)


class Call:
    """Two phones whose media runs through rtpengine."""

    def __init__(self, ng: NgClient, call_id: str) -> None:
        self.ng, self.call_id = ng, call_id
        self.alice, self.bob = Phone(), Phone()
        offered = ng.offer(call_id, self.alice.sdp("alice"), from_tag="alice")
        answered = ng.answer(call_id, self.bob.sdp("bob"), from_tag="alice", to_tag="bob")
        self.bob_sends_to = media_endpoint(offered.sdp)
        self.alice_sends_to = media_endpoint(answered.sdp)

    def bob_to_alice(self) -> list[bytes]:
        self.bob.send_rtp(self.bob_sends_to)
        return self.alice.received(0.15)

    def close(self) -> None:
        self.alice.close()
        self.bob.close()
        self.ng.delete(self.call_id)


@pytest.fixture
def call(ng: NgClient, request: pytest.FixtureRequest) -> Iterator[Call]:
    media = Call(ng, f"{request.node.name}@sipio.test")
    try:
        yield media
    finally:
        media.close()


def test_block_and_unblock_media(call: Call) -> None:
    assert len(call.bob_to_alice()) == 5
    call.ng.block_media(call.call_id, from_tag="bob")
    assert call.bob_to_alice() == []
    call.alice.send_rtp(call.alice_sends_to)
    assert len(call.bob.received(0.15)) == 5  # only bob's media is blocked
    call.ng.unblock_media(call.call_id, from_tag="bob")
    assert len(call.bob_to_alice()) == 5


def test_silence_and_unsilence_media(call: Call) -> None:
    call.ng.silence_media(call.call_id, from_tag="bob")
    silenced = call.bob_to_alice()
    assert len(silenced) == 5  # packets still flow (no hold, no jitter buffer reset) ...
    assert {byte for packet in silenced for byte in packet[12:]} == {0xFF}  # ... as PCMU silence
    call.ng.unsilence_media(call.call_id, from_tag="bob")
    assert {byte for packet in call.bob_to_alice() for byte in packet[12:]} == {0x55}


def test_play_and_stop_media(call: Call, wav: Path) -> None:
    duration = call.ng.play_media(call.call_id, from_tag="alice", file=str(wav))
    assert duration == 2000
    prompt = call.alice.received(0.2)
    assert len(prompt) >= 5 and all(packet[0] & 0xC0 == 0x80 for packet in prompt)  # RTP
    assert call.bob.received(0.05) == []  # the prompt goes to alice only
    call.ng.stop_media(call.call_id, from_tag="alice")
    call.alice.received(0.05)  # drain what was in flight
    assert call.alice.received(0.1) == []
    with pytest.raises(NgCommandError, match="Not currently playing media"):
        call.ng.stop_media(call.call_id, from_tag="bob")
    with pytest.raises(NgCommandError, match="Failed to start media playback from file"):
        call.ng.play_media(call.call_id, from_tag="alice", file="/nonexistent/prompt.wav")
    with pytest.raises(ValueError):
        call.ng.play_media(call.call_id, from_tag="alice")


def test_start_and_stop_recording_writes_pcap_and_metadata(
    call: Call, node_a: RtpengineNode
) -> None:
    call.ng.start_recording(call.call_id, metadata="tenant=acme")
    call.bob_to_alice()
    call.ng.stop_recording(call.call_id)
    stem = call.call_id.split("@")[0]  # rtpengine names the files after the call-id
    metadata = [p for p in (node_a.recording_dir / "metadata").iterdir() if stem in p.name]
    pcaps = [p for p in (node_a.recording_dir / "pcaps").iterdir() if stem in p.name]
    assert len(metadata) == 1 and len(pcaps) == 1
    assert "tenant=acme" in metadata[0].read_text()
    assert pcaps[0].stat().st_size > 24 + 5 * 16  # pcap header, then a record per packet


def test_statistics_count_the_calls(ng: NgClient) -> None:
    ng.offer("stats@sipio.test", audio_sdp("alice", "192.0.2.10", 49170), from_tag="s")
    stats = ng.statistics()
    assert stats["currentstatistics"]["sessionsown"] >= 1
    assert stats["totalstatistics"]["managedsessions"] >= 0
    ng.delete("stats@sipio.test")
    assert "stats@sipio.test" not in ng.list_calls()


def test_list_limit(ng: NgClient) -> None:
    ids = [f"limit-{i}@sipio.test" for i in range(3)]
    for call_id in ids:
        ng.offer(call_id, audio_sdp("alice", "192.0.2.10", 49170), from_tag="l")
    assert len(ng.list_calls(limit=2)) == 2
    assert set(ids) <= set(ng.list_calls())
    for call_id in ids:
        ng.delete(call_id)


def test_refusals_are_typed(ng: NgClient) -> None:
    with pytest.raises(NgCallNotFound):
        ng.answer(
            "never-offered@sipio.test",
            audio_sdp("bob", "192.0.2.1", 4000),
            from_tag="x",
            to_tag="y",
        )
    with pytest.raises(NgCallNotFound):
        ng.delete("never-offered@sipio.test")
    with pytest.raises(NgCommandError, match="No SDP body"):
        ng.command("offer", call_id="no-sdp@sipio.test", from_tag="x")
    with pytest.raises(NgCommandError, match=r"Failed to parse SDP|Incomplete SDP"):
        ng.offer("bad-sdp@sipio.test", "this is not SDP", from_tag="x")
