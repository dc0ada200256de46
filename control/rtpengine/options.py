"""Typed media options for offer and answer, and their ng dictionary keys.

rtpengine takes a loose dictionary whose misspelt keys it silently ignores: a typo in a flag
becomes a call with the wrong media path and no error anywhere. `MediaOptions` names the
options operations need, checks values against the words rtpengine 10.5 accepts (at run time
too, because routing scripts build them from configuration strings), and maps them with
`to_ng()`. ``flags`` and ``extra`` remain for anything rarer; they are passed through as given.

The presets say in one place how sipio bridges WebRTC and plain SIP endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from control.rtpengine.codec import NgValue

Ice = Literal["remove", "force", "default", "force-relay", "optional"]
Dtls = Literal["off", "passive", "active"]
TransportProtocol = Literal[
    "RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"
]
RtcpMux = Literal["offer", "require", "demux", "accept", "reject"]
Replace = Literal["origin", "session-connection", "session-name", "sdp-version", "username"]
AddressFamily = Literal["IP4", "IP6"]
Sdes = Literal["off", "unencrypted_srtp", "unencrypted_srtcp", "unauthenticated_srtp", "pad"]
Flag = Literal[
    "trust-address",
    "SIP-source-address",
    "asymmetric",
    "strict-source",
    "media-handover",
    "port-latching",
    "no-port-latching",
    "generate-mid",
    "strip-extmap",
    "trickle-ICE",
    "reject-ICE",
    "loop-protect",
    "always-transcode",
    "single-codec",
    "inject-DTMF",
    "pad-crypto",
    "generate-RTCP",
    "original-sendrecv",
]


def _check(name: str, values: tuple[str, ...], allowed: object) -> None:
    words = get_args(allowed)
    for value in values:
        if value not in words:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(words)}")


def _names(name: str, values: tuple[str, ...]) -> None:
    for value in values:
        if not value or not value.strip() or " " in value:
            raise ValueError(f"{name}: {value!r} is not a codec or interface name")


@dataclass(frozen=True)
class MediaOptions:
    """What rtpengine should do to the SDP of one offer or answer."""

    ice: Ice | None = None
    transport_protocol: TransportProtocol | None = None
    dtls: Dtls | None = None
    sdes: tuple[Sdes, ...] = ()
    rtcp_mux: tuple[RtcpMux, ...] = ()
    codec_strip: tuple[str, ...] = ()
    codec_offer: tuple[str, ...] = ()
    codec_transcode: tuple[str, ...] = ()
    codec_mask: tuple[str, ...] = ()
    replace: tuple[Replace, ...] = ()
    direction: tuple[str, str] | None = None
    """Interface names (``--interface=NAME/IP``): where the offer comes from, where it goes."""
    address_family: AddressFamily | None = None
    media_address: str | None = None
    received_from: tuple[AddressFamily, str] | None = None
    """The SIP source address, for ``SIP-source-address`` behind NAT."""
    record_call: bool | None = None
    ptime: int | None = None
    flags: tuple[Flag | str, ...] = ()
    extra: Mapping[str, NgValue] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        _check("ice", (self.ice,) if self.ice else (), Ice)
        _check("dtls", (self.dtls,) if self.dtls else (), Dtls)
        protocol = (self.transport_protocol,) if self.transport_protocol else ()
        _check("transport_protocol", protocol, TransportProtocol)
        _check("sdes", self.sdes, Sdes)
        _check("rtcp_mux", self.rtcp_mux, RtcpMux)
        _check("replace", self.replace, Replace)
        family = (self.address_family,) if self.address_family else ()
        _check("address_family", family, AddressFamily)
        for name in ("codec_strip", "codec_offer", "codec_transcode", "codec_mask"):
            _names(name, getattr(self, name))
        if not all(flag.strip() for flag in self.flags):
            raise ValueError("flags: empty flag")
        if self.direction is not None:
            if len(self.direction) != 2:
                raise ValueError("direction names exactly two interfaces: from, to")
            _names("direction", self.direction)
        if self.received_from is not None:
            _check("received_from", self.received_from[:1], AddressFamily)
        if self.ptime is not None and not 0 < self.ptime <= 1000:
            raise ValueError(f"ptime {self.ptime} ms is out of range")

    def to_ng(self) -> dict[str, NgValue]:
        """The ng dictionary entries for these options (merged into the command by the client)."""
        ng: dict[str, NgValue] = {}
        if self.ice:
            ng["ICE"] = self.ice
        if self.transport_protocol:
            ng["transport-protocol"] = self.transport_protocol
        if self.dtls:
            ng["DTLS"] = self.dtls
        if self.sdes:
            ng["SDES"] = list(self.sdes)
        if self.rtcp_mux:
            ng["rtcp-mux"] = list(self.rtcp_mux)
        codec = {
            verb: list(names)
            for verb, names in (
                ("strip", self.codec_strip),
                ("offer", self.codec_offer),
                ("transcode", self.codec_transcode),
                ("mask", self.codec_mask),
            )
            if names
        }
        if codec:
            ng["codec"] = codec
        if self.replace:
            ng["replace"] = list(self.replace)
        if self.direction:
            ng["direction"] = list(self.direction)
        if self.address_family:
            ng["address-family"] = self.address_family
        if self.media_address:
            ng["media-address"] = self.media_address
        if self.received_from:
            ng["received-from"] = list(self.received_from)
        if self.record_call is not None:
            ng["record-call"] = "yes" if self.record_call else "no"
        if self.ptime is not None:
            ng["ptime"] = self.ptime
        if self.flags:
            ng["flags"] = list(dict.fromkeys(self.flags))
        ng.update(self.extra)
        return ng

    @classmethod
    def webrtc_to_sip(cls, **more: object) -> MediaOptions:
        """A browser's offer or answer going to a plain SIP endpoint: ICE, DTLS-SRTP and
        rtcp-mux end at rtpengine; the SIP side sees plain RTP/AVP with separate RTCP."""
        base: dict[str, object] = {
            "ice": "remove",
            "transport_protocol": "RTP/AVP",
            "rtcp_mux": ("demux",),
        }
        return cls(**{**base, **more})  # type: ignore[arg-type]

    @classmethod
    def sip_to_webrtc(cls, **more: object) -> MediaOptions:
        """A plain SIP endpoint's SDP going to a browser: rtpengine adds ICE candidates, speaks
        DTLS-SRTP only (no SDES keys, which browsers refuse), and multiplexes RTCP."""
        base: dict[str, object] = {
            "ice": "force",
            "transport_protocol": "UDP/TLS/RTP/SAVPF",
            "dtls": "passive",
            "sdes": ("off",),
            "rtcp_mux": ("offer", "require"),
            "flags": ("generate-mid",),
        }
        return cls(**{**base, **more})  # type: ignore[arg-type]
