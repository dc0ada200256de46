"""``bgapi originate <agent legs> &bridge(<caller leg>)`` for the inbound stand-in
(``fs_inbound.py``), with the phones' behaviour scripted per test.

Wire behaviour from the captures: ``orig02`` (bgapi reply ``+OK Job-UUID: <id>`` with a
``Job-UUID`` header; BACKGROUND_JOB with ``Job-Command``/``Job-Command-Arg`` and a body
``+OK <uuid>\\n`` once the originated leg answered; filters are OR-ed; ``filter delete``),
``orig01`` (a failed originate's body ``-ERR <CAUSE>\\n``; CHANNEL_BRIDGE on the leg that
runs ``bridge`` with ``Other-Leg-Unique-ID``; CHANNEL_HANGUP_COMPLETE with ``Hangup-Cause``;
``uuid_kill`` of a missing channel ``-ERR No such channel!``). Event frames are the recorded
ones with their identifying headers replaced.
"""

from __future__ import annotations

import asyncio
import re
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from tests.esl.fswire import Pairs, fs_encode, raw_pairs, split_frames
from tests.esl.transcripts import load

LEG = re.compile(r"^\[([^\]]*)\]sofia/[^/]+/([^@]+)@")
CALLER = re.compile(r"^\{([^}]*)\}sofia/[^/]+/([^@]+)@")


@dataclass
class Phone:
    """How a dialled party behaves: answers after ``delay`` (else fails with ``cause`` after
    it), then hangs up after ``talk`` seconds (None: until killed)."""

    answer: bool = True
    delay: float = 0.05
    cause: str = "NO_ANSWER"
    talk: float | None = 0.3


@cache
def _templates() -> dict[str, Pairs]:
    found: dict[str, Pairs] = {}
    for name in ("orig01_events_plain_ALL", "orig02_inbound_sendmsg_filter_bgapi_originate"):
        for block, body in split_frames(load(name).fs_bytes):
            if b"Content-Type: text/event-plain" not in block:
                continue
            pairs = raw_pairs(body[: body.index(b"\n\n")])
            found.setdefault(dict(pairs)["Event-Name"], pairs)
    return found


BRIDGE_VARIABLES = ("variable_last_bridge_to", "variable_bridge_uuid", "variable_bridge_channel")


def channel_event(name: str, **values: str) -> Pairs:
    """The recorded event ``name`` with these headers' values replaced (encoded), the ones it
    lacks added; what the recorded call was bridged to is left out."""
    pairs, seen = [], set()
    for key, value in _templates()[name]:
        header = key.replace("-", "_")
        if key in BRIDGE_VARIABLES:
            continue
        seen.add(header)
        pairs.append((key, fs_encode(values[header]) if header in values else value))
    pairs += [(k.replace("_", "-"), fs_encode(v)) for k, v in values.items() if k not in seen]
    return pairs


def _options(text: str) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in text.split(",") if item)


def _split_legs(text: str) -> list[str]:
    legs, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            legs.append(text[start:i])
            start = i + 1
    legs.append(text[start:])
    return legs


@dataclass
class Originator:
    """Channels the stand-in "places"; ``emit`` delivers an event frame to the subscribers."""

    agents: dict[str, Phone] = field(default_factory=dict)  # by user id
    callers: dict[str, Phone] = field(default_factory=dict)  # by number dialled
    originates: list[str] = field(default_factory=list)  # every command's argument
    channels: dict[str, str] = field(default_factory=dict)  # live agent leg uuid -> user
    ended: dict[str, str] = field(default_factory=dict)  # leg uuid -> hang-up cause
    emit: Callable[[Pairs, bytes], None] = lambda pairs, body: None
    _kills: dict[str, asyncio.Event] = field(default_factory=dict)

    def api(self, command: str) -> str | None:
        """``uuid_exists`` / ``uuid_kill``; None for anything else."""
        verb, _, arg = command.partition(" ")
        if verb == "uuid_exists":
            return "true" if arg.strip() in self.channels else "false"
        if verb == "uuid_kill":
            kill = self._kills.get(arg.strip())
            if kill is None or arg.strip() not in self.channels:
                return "-ERR No such channel!\n"
            kill.set()
            return "+OK\n"
        return None

    def hang_up(self, uuid: str) -> None:
        """The agent (or the caller) ends a call that was set to talk until killed."""
        self._kills[uuid].set()

    async def originate(self, job_uuid: str, arg: str) -> None:
        self.originates.append(arg)
        head, _, bridge = arg.partition(" &bridge(")
        legs_text = head[head.index("}") + 1 :] if head.startswith("{") else head
        legs: list[tuple[str, str, Phone]] = []
        for leg in _split_legs(legs_text):
            match = LEG.match(leg)
            assert match, leg
            opts, user = _options(match.group(1)), match.group(2)
            legs.append((opts["origination_uuid"], user, self.agents.get(user, Phone(False))))
        answering = sorted((p.delay, uuid, user) for uuid, user, p in legs if p.answer)
        await asyncio.sleep(min((p.delay for _, _, p in legs), default=0))
        if not answering:
            await asyncio.sleep(max(p.delay for _, _, p in legs) - min(p.delay for _, _, p in legs))
            for uuid, _, phone in legs:
                self._hangup_event(uuid, phone.cause)
            cause = legs[0][2].cause if len(legs) == 1 else "NO_ANSWER"
            self._job(job_uuid, arg, f"-ERR {cause}\n")
            return
        delay, winner, user = answering[0]
        await asyncio.sleep(max(0.0, delay - min(p.delay for _, _, p in legs)))
        for uuid, _, _ in legs:
            if uuid != winner:
                self._hangup_event(uuid, "LOSE_RACE")
        self.channels[winner] = user
        self._kills[winner] = asyncio.Event()
        self._job(job_uuid, arg, f"+OK {winner}\n")
        await self._bridge(winner, user, bridge.removesuffix(")"))

    async def _bridge(self, uuid: str, user: str, caller_leg: str) -> None:
        match = CALLER.match(caller_leg)
        assert match, caller_leg
        number = match.group(2)
        phone = self.callers.get(number, Phone(False))
        agent = self.agents.get(user, Phone())
        kill = self._kills[uuid]
        with_kill = asyncio.ensure_future(kill.wait())
        try:
            await asyncio.wait({with_kill}, timeout=phone.delay)
            if kill.is_set():
                return self._end(uuid, "NORMAL_CLEARING")
            if not phone.answer:
                return self._end(uuid, "NORMAL_CLEARING")
            other = str(uuidlib.uuid4())
            self.emit(
                channel_event(
                    "CHANNEL_BRIDGE", Unique_ID=uuid, Other_Leg_Unique_ID=other,
                    Other_Leg_Destination_Number=number,
                ),
                b"",
            )  # fmt: skip
            talks = [t for t in (agent.talk, phone.talk) if t is not None]
            await asyncio.wait({with_kill}, timeout=min(talks) if talks else None)
            self._end(uuid, "NORMAL_CLEARING", bridged_to=other)
        finally:
            with_kill.cancel()

    def _end(self, uuid: str, cause: str, bridged_to: str = "") -> None:
        self.channels.pop(uuid, None)
        self._hangup_event(uuid, cause, bridged_to)

    def _hangup_event(self, uuid: str, cause: str, bridged_to: str = "") -> None:
        self.ended[uuid] = cause
        values = {"Unique_ID": uuid, "Hangup_Cause": cause}
        pairs = channel_event("CHANNEL_HANGUP_COMPLETE", **values)
        if bridged_to:
            pairs = [*pairs, ("variable_last_bridge_to", fs_encode(bridged_to))]
        self.emit(pairs, b"")

    def _job(self, job_uuid: str, arg: str, body: str) -> None:
        pairs = channel_event(
            "BACKGROUND_JOB", Job_UUID=job_uuid, Job_Command="originate", Job_Command_Arg=arg
        )
        data = body.encode()
        self.emit([p for p in pairs if p[0] != "Content-Length"] + [
            ("Content-Length", str(len(data)))], data)  # fmt: skip
