"""The call-scoped ng commands, written once for a single node and for the pool.

Everything here names a call by its SIP Call-ID and is sent through `_send`, which a single
node implements by sending and the pool by choosing the call's node first. Keyword-only
arguments mirror the SIP values a routing script has at hand (tags, Via branch); the ng key
spelling (``from-tag``, ``call-id``) stays inside this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from control.rtpengine.codec import NgReply, NgValue
from control.rtpengine.errors import NgProtocolError
from control.rtpengine.options import MediaOptions


@dataclass(frozen=True)
class SdpReply:
    """The SDP rtpengine rewrote, and which node anchors the call (for logs and CDRs)."""

    sdp: str
    node: str
    reply: NgReply

    @property
    def warning(self) -> str | None:
        warning = self.reply.get("warning")
        return str(warning) if warning is not None else None


def _present(**values: NgValue) -> dict[str, NgValue]:
    """ng entries for the values that were given, keys spelt the ng way."""
    return {key.replace("_", "-"): value for key, value in values.items() if value is not None}


class CallCommands(ABC):
    @abstractmethod
    def _send(self, command: str, call_id: str, params: dict[str, NgValue]) -> tuple[str, NgReply]:
        """Send one command about ``call_id``; return the node that answered and its reply."""

    def _sdp(self, command: str, call_id: str, params: dict[str, NgValue]) -> SdpReply:
        node, reply = self._send(command, call_id, params)
        sdp = reply.get("sdp")
        if not isinstance(sdp, str):
            raise NgProtocolError(f"{command} reply from {node} carries no SDP")
        return SdpReply(sdp, node, reply)

    def offer(
        self,
        call_id: str,
        sdp: str,
        *,
        from_tag: str,
        options: MediaOptions | None = None,
        via_branch: str | None = None,
        label: str | None = None,
    ) -> SdpReply:
        """Anchor the caller's SDP: the reply's SDP points the callee at rtpengine."""
        params = options.to_ng() if options else {}
        params |= _present(sdp=sdp, from_tag=from_tag, via_branch=via_branch, label=label)
        return self._sdp("offer", call_id, params)

    def answer(
        self,
        call_id: str,
        sdp: str,
        *,
        from_tag: str,
        to_tag: str,
        options: MediaOptions | None = None,
        via_branch: str | None = None,
        label: str | None = None,
    ) -> SdpReply:
        """Anchor the callee's SDP (same from-tag as the offer): the caller sees rtpengine."""
        params = options.to_ng() if options else {}
        params |= _present(
            sdp=sdp, from_tag=from_tag, to_tag=to_tag, via_branch=via_branch, label=label
        )
        return self._sdp("answer", call_id, params)

    def delete(
        self,
        call_id: str,
        *,
        from_tag: str | None = None,
        to_tag: str | None = None,
        via_branch: str | None = None,
        delete_delay: int | None = None,
    ) -> NgReply:
        """End the call (or one branch of it with ``via_branch``); the reply holds its stats.

        Raises `NgCallNotFound` when nothing matched: rtpengine would only add a warning to a
        success, so the pool could not tell which node holds a call. Callers that delete on
        every BYE retransmission suppress that error.
        """
        params = _present(
            from_tag=from_tag, to_tag=to_tag, via_branch=via_branch, delete_delay=delete_delay
        )
        params["flags"] = ["fatal"]
        return self._send("delete", call_id, params)[1]

    def query(
        self, call_id: str, *, from_tag: str | None = None, to_tag: str | None = None
    ) -> NgReply:
        """The call as rtpengine sees it: legs (``tags``), streams, packet totals."""
        return self._send("query", call_id, _present(from_tag=from_tag, to_tag=to_tag))[1]

    def start_recording(
        self,
        call_id: str,
        *,
        from_tag: str | None = None,
        metadata: str | None = None,
        output_destination: str | None = None,
    ) -> None:
        """Record the call to the node's ``--recording-dir`` (pcap and metadata files)."""
        params = _present(
            from_tag=from_tag, metadata=metadata, output_destination=output_destination
        )
        self._send("start recording", call_id, params)

    def stop_recording(self, call_id: str, *, from_tag: str | None = None) -> None:
        self._send("stop recording", call_id, _present(from_tag=from_tag))

    def _party(self, command: str, call_id: str, from_tag: str | None, label: str | None) -> None:
        # Without a party the block or silence applies to the whole call.
        self._send(command, call_id, _present(from_tag=from_tag, label=label))

    def block_media(
        self, call_id: str, *, from_tag: str | None = None, label: str | None = None
    ) -> None:
        """Drop the media sent by one party (``from_tag``), or by everyone without it."""
        self._party("block media", call_id, from_tag, label)

    def unblock_media(
        self, call_id: str, *, from_tag: str | None = None, label: str | None = None
    ) -> None:
        self._party("unblock media", call_id, from_tag, label)

    def silence_media(
        self, call_id: str, *, from_tag: str | None = None, label: str | None = None
    ) -> None:
        """Keep the media flowing but replace its audio with silence (hold without re-INVITE)."""
        self._party("silence media", call_id, from_tag, label)

    def unsilence_media(
        self, call_id: str, *, from_tag: str | None = None, label: str | None = None
    ) -> None:
        self._party("unsilence media", call_id, from_tag, label)

    def play_media(
        self,
        call_id: str,
        *,
        from_tag: str | None = None,
        file: str | None = None,
        blob: bytes | None = None,
        db_id: int | None = None,
        repeat_times: int | None = None,
    ) -> int | None:
        """Play a prompt to a party (to everyone without ``from_tag``) instead of what it would
        hear; the file is read by the *node*, so its path is one on the node's host. Returns the
        prompt's duration in milliseconds when rtpengine reports it."""
        sources = [source for source in (file, blob, db_id) if source is not None]
        if len(sources) != 1:
            raise ValueError("play_media needs exactly one of file, blob, db_id")
        params = _present(
            from_tag=from_tag, file=file, blob=blob, db_id=db_id, repeat_times=repeat_times
        )
        if from_tag is None:
            params["flags"] = ["all"]
        duration = self._send("play media", call_id, params)[1].get("duration")
        return duration if isinstance(duration, int) else None

    def stop_media(self, call_id: str, *, from_tag: str | None = None) -> None:
        params = _present(from_tag=from_tag)
        if from_tag is None:
            params["flags"] = ["all"]
        self._send("stop media", call_id, params)
