"""What the routing core tells Kamailio to do. Plain data, JSON-serialisable, so a decision
made in the request route can be carried to the failure route in an AVP."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from control.core.targets import RouteTarget


@dataclass(frozen=True)
class Reject:
    code: int
    reason: str
    detail: str = ""  # for the trace, never sent to the caller

    kind = "reject"


@dataclass(frozen=True)
class Leg:
    aor: str  # registered AOR of a device, e.g. sip:1001@acme.example
    device_id: str
    delay_sec: int = 0


@dataclass(frozen=True)
class Step:
    """Legs rung together; the next step starts when these all fail or ``timeout_sec`` ends."""

    legs: tuple[Leg, ...]
    timeout_sec: int


@dataclass(frozen=True)
class CallerId:
    number: str | None
    name: str | None = None


@dataclass(frozen=True)
class Ring:
    """Ring devices through the registrar: one step = parallel fork; several = serial."""

    account_id: str
    target: RouteTarget
    steps: tuple[Step, ...]
    overall_sec: int | None = None  # ring groups: the whole plan ends after this
    no_answer: RouteTarget | None = None
    busy: RouteTarget | None = None
    caller_id: CallerId | None = None
    depth: int = 0

    kind = "ring"


@dataclass(frozen=True)
class Outbound:
    """Send the call to a trunk (PSTN, carrier, customer PBX)."""

    account_id: str
    trunk_id: str
    proxy: str
    transport: str
    number: str
    caller_id: CallerId | None = None

    kind = "outbound"


@dataclass(frozen=True)
class Media:
    """Hand the call to a FreeSWITCH node; these headers are all the controller needs."""

    account_id: str
    target: RouteTarget
    variables: dict[str, Any] = field(default_factory=dict)

    kind = "media"


Directive = Reject | Ring | Outbound | Media


def to_json(directive: Directive) -> dict[str, Any]:
    data = asdict(directive)
    data["kind"] = directive.kind
    return data


def target_json(target: RouteTarget | None) -> dict[str, Any] | None:
    if target is None:
        return None
    return {"kind": target.kind.value, "id": target.id, "xform": dict(target.xform)}


def target_from_json(data: dict[str, Any] | None) -> RouteTarget | None:
    if not data:
        return None
    return RouteTarget.of(data["kind"], data.get("id"), data.get("xform"))
