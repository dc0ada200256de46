"""The small vocabulary between node handlers and the interpreter loop.

A handler returns an action; the interpreter turns actions into trace events, edge
traversals and commands. Handlers never follow edges themselves, which keeps the loop guard,
tracing and version pinning in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from control.core.flow.commands import CommandKind
from control.core.flow.document import FlowDocument
from control.core.flow.expressions import Scalar
from control.core.flow.state import FlowContext, SessionState

MAX_VALUE_CHARS = 1024


@dataclass(frozen=True)
class Advance:
    """The node is done: follow the edge for ``outcome``."""

    outcome: str
    changed: Mapping[str, Scalar] = field(default_factory=dict)
    dtmf: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Await:
    """Send a command and wait; ``retry`` is the failed attempt that caused a re-prompt."""

    kind: CommandKind
    args: Mapping[str, Any]
    retry: Advance | None = None


@dataclass(frozen=True)
class Finish:
    """The flow ends with this command."""

    kind: CommandKind
    args: Mapping[str, Any]
    reason: str
    outcome: str | None = None


@dataclass(frozen=True)
class Jump:
    flow_id: str | None
    node_id: str | None


Action = Advance | Await | Finish | Jump


@dataclass(frozen=True)
class Result:
    outcome: str
    data: Mapping[str, Any]


@dataclass
class Frame:
    state: SessionState
    ctx: FlowContext
    now: datetime
    doc: FlowDocument
    node_id: str

    @property
    def variables(self) -> dict[str, Scalar]:
        return self.state.variables

    def voice(self, override: str | None = None) -> str:
        return override or f"{self.state.language}-neural-{self.state.voice_gender}"

    def media_args(self, prompts: list[dict[str, str]]) -> dict[str, Any]:
        return {"prompts": prompts, "language": self.state.language, "voice": self.voice()}


def hangup(cause: str, reason: str, outcome: str | None = None) -> Finish:
    return Finish(CommandKind.HANGUP, {"cause": cause, "reason": reason}, reason, outcome)


def as_scalar(value: Any) -> Scalar:
    """Values kept in session variables: single JSON values, strings bounded in size."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text[:MAX_VALUE_CHARS]
