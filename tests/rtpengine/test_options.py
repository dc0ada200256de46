"""Typed media options map to the ng keys and words rtpengine 10.5 understands."""

from __future__ import annotations

from typing import Any

import pytest

from control.rtpengine import MediaOptions


def test_every_option_maps_to_its_ng_key() -> None:
    options = MediaOptions(
        ice="force",
        transport_protocol="UDP/TLS/RTP/SAVPF",
        dtls="passive",
        sdes=("off",),
        rtcp_mux=("offer", "require"),
        codec_strip=("PCMA",),
        codec_offer=("PCMU",),
        codec_transcode=("G722", "opus"),
        codec_mask=("G729",),
        replace=("origin", "session-connection"),
        direction=("internal", "external"),
        address_family="IP6",
        media_address="203.0.113.7",
        received_from=("IP4", "198.51.100.1"),
        record_call=True,
        ptime=30,
        flags=("trust-address", "generate-mid", "trust-address"),
        extra={"TOS": 184},
    )
    assert options.to_ng() == {
        "ICE": "force",
        "transport-protocol": "UDP/TLS/RTP/SAVPF",
        "DTLS": "passive",
        "SDES": ["off"],
        "rtcp-mux": ["offer", "require"],
        "codec": {
            "strip": ["PCMA"],
            "offer": ["PCMU"],
            "transcode": ["G722", "opus"],
            "mask": ["G729"],
        },
        "replace": ["origin", "session-connection"],
        "direction": ["internal", "external"],
        "address-family": "IP6",
        "media-address": "203.0.113.7",
        "received-from": ["IP4", "198.51.100.1"],
        "record-call": "yes",
        "ptime": 30,
        "flags": ["trust-address", "generate-mid"],
        "TOS": 184,
    }


def test_unset_options_send_nothing() -> None:
    assert MediaOptions().to_ng() == {}
    assert MediaOptions(record_call=False).to_ng() == {"record-call": "no"}


def test_webrtc_presets() -> None:
    assert MediaOptions.webrtc_to_sip().to_ng() == {
        "ICE": "remove",
        "transport-protocol": "RTP/AVP",
        "rtcp-mux": ["demux"],
    }
    to_browser = MediaOptions.sip_to_webrtc(codec_strip=("G729",)).to_ng()
    assert to_browser == {
        "ICE": "force",
        "transport-protocol": "UDP/TLS/RTP/SAVPF",
        "DTLS": "passive",
        "SDES": ["off"],
        "rtcp-mux": ["offer", "require"],
        "codec": {"strip": ["G729"]},
        "flags": ["generate-mid"],
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"ice": "forced"},
        {"dtls": "on"},
        {"transport_protocol": "RTP/SAVPF/X"},
        {"rtcp_mux": ("mux",)},
        {"replace": ("origin", "session connection")},
        {"sdes": ("none",)},
        {"address_family": "IPv4"},
        {"codec_strip": ("PCMA PCMU",)},
        {"codec_transcode": ("",)},
        {"direction": ("internal",)},
        {"direction": ("internal", "")},
        {"received_from": ("IPv4", "198.51.100.1")},
        {"ptime": 0},
        {"flags": ("",)},
    ],
)
def test_values_rtpengine_would_ignore_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MediaOptions(**bad)
