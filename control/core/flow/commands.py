"""What the interpreter asks the media engine (or, for ``http``, the caller) to do.

Results come back as ``(outcome, data)`` on the next step:

========== ==========================================================================
command    result outcome (data)
========== ==========================================================================
play, say  ``done`` (anything but ``hangup`` continues)
gather     ``digits`` ({digits}) or ``digit:<keys>``; ``timeout``
record     ``done`` ({recording: media reference, durationSec})
dial       ``answered`` (after the bridge ended, caller still there), ``no_answer``,
           ``busy``, ``failed``
enqueue    ``timeout``, ``abandon``, ``no_agents``, ``queue_full``, ``ewt``, ``answered``
conference ``done`` (the caller left the conference but is still connected)
http       ``response`` ({status, headers, body}), ``timeout``, ``error``
any        ``hangup``: the caller hung up (during ``enqueue`` this is ``abandon``)
========== ==========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CommandKind(StrEnum):
    PLAY = "play"
    SAY = "say"
    GATHER = "gather"
    RECORD = "record"
    DIAL = "dial"
    ENQUEUE = "enqueue"
    CONFERENCE = "conference"
    VOICEMAIL = "voicemail"
    HANGUP = "hangup"
    NOOP = "noop"
    HTTP = "http"


# Commands that hand the caller to something long-lived: the trace is flushed before them.
BRIDGES = frozenset({CommandKind.DIAL, CommandKind.ENQUEUE, CommandKind.CONFERENCE})

CALLER_HANGUP = "hangup"


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    args: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0  # echo it back with the result; a stale or repeated result is ignored
    node_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"command": self.kind.value, "seq": self.seq, "nodeId": self.node_id, **self.args}
