"""Typed failures of the ng protocol.

Callers act on the *kind* of failure, not on rtpengine's wording: the pool moves a new call to
another node on `NgUnavailable` or `NgOverloaded`, keeps the call where it is on
`NgCallNotFound`, and a routing script answers 500 on anything else. rtpengine reports refusals
as ``{"result": "error", "error-reason": <text>}`` (or ``"result": "load limit"``); the texts
below are the ones rtpengine 10.5 emits, matched exactly and case-sensitively.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class NgError(Exception):
    """Any failure talking to rtpengine."""


class NgUnavailable(NgError):
    """The node could not be reached or did not answer: treat it as down."""


class NgTimeout(NgUnavailable):
    """No reply after every retransmission: the node is down, stuck or unreachable."""


class NgConnectionError(NgUnavailable):
    """A stream transport (TCP, WebSocket) could not connect or lost its connection."""


class NgNoNodeAvailable(NgUnavailable):
    """The pool has no node that may take the call (all down, drained or refused it)."""


class NgProtocolError(NgError):
    """The node answered with something that is not an ng reply."""


class NgCommandError(NgError):
    """rtpengine understood the command and refused it (``result: error``)."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"rtpengine refused {command!r}: {reason}")
        self.command = command
        self.reason = reason


class NgCallNotFound(NgCommandError):
    """The node has no call (or no leg) with the given call-id and tags."""


class NgUnsupportedCommand(NgCommandError):
    """The daemon does not know the command, or was built without the feature it needs."""


class NgOverloaded(NgCommandError):
    """The node refuses new sessions (load limit, session limit, no free ports): try another."""


_CALL_NOT_FOUND = frozenset(
    {"Unknown call-id", "Unknown call-ID", "Call-ID not found or tags didn't match"}
)
_UNSUPPORTED = frozenset({"Unrecognized command", "unsupported"})
_OVERLOADED = frozenset({"Ran out of ports", "Parallel session limit reached"})


def check_reply(command: str, reply: Mapping[str, Any]) -> None:
    """Raise the typed error a reply stands for; return quietly for ``ok`` and ``pong``.

    A success may carry a ``warning`` key (rtpengine did the work but something was off, e.g.
    an SDP attribute it did not understand); that is the caller's to log, not an error.
    """
    result = reply.get("result")
    if result in ("ok", "pong"):
        return
    if result == "load limit":
        raise NgOverloaded(command, str(reply.get("message", "load limit")))
    if result == "error":
        reason = str(reply.get("error-reason", "no reason given"))
        if reason in _CALL_NOT_FOUND:
            raise NgCallNotFound(command, reason)
        if reason in _UNSUPPORTED:
            raise NgUnsupportedCommand(command, reason)
        if reason in _OVERLOADED:
            raise NgOverloaded(command, reason)
        raise NgCommandError(command, reason)
    if result is None:
        raise NgProtocolError(f"reply to {command!r} has no result")
    raise NgProtocolError(f"reply to {command!r} has an unknown result {result!r}")
