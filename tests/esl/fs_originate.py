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

LEG = re.compile(r"^\[([^\]]*)\]sofia/[^/]+/([^@]+)@(.+)$")
CALLER = re.compile(r"^\{([^}]*)\}sofia/[^/]+/([^@]+)@(.+)$")


@dataclass(frozen=True)
class Leg:
    """One endpoint of the dial string: ``sofia/<profile>/<user>@<proxy>`` and its variables."""

    uuid: str
    user: str
    proxy: str
    options: dict[str, str]


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
        """Ring the agents' legs; the first to answer gets the job's ``+OK <uuid>`` and runs
        ``bridge`` to the caller: CHANNEL_BRIDGE once the caller answers, the leg's
        CHANNEL_HANGUP_COMPLETE when either side (or ``uuid_kill``) ends it."""
        self.originates.append(arg)
        head, _, bridge = arg.partition(" &bridge(")
        common: dict[str, str] = {}
        if head.startswith("{"):
            common, head = _options(head[1 : head.index("}")]), head[head.index("}") + 1 :]
        legs: list[Leg] = []
        for text in _split_legs(head):
            match = LEG.match(text)
            assert match, text
            opts = {**common, **_options(match.group(1))}
            legs.append(Leg(opts["origination_uuid"], match.group(2), match.group(3), opts))
        winner, cause = await self.ring_agents(legs)
        for leg in legs:
            if leg.uuid != winner:
                self._hangup_event(leg.uuid, cause if winner is None else "LOSE_RACE")
        if winner is None:
            cause = cause if len(legs) == 1 else "NO_ANSWER"
            self._job(job_uuid, arg, f"-ERR {cause}\n")
            return
        agent = next(leg for leg in legs if leg.uuid == winner)
        self.channels[winner] = agent.user
        self._kills[winner] = asyncio.Event()
        self._job(job_uuid, arg, f"+OK {winner}\n")
        match = CALLER.match(bridge.removesuffix(")"))
        assert match, bridge
        caller = Leg(str(uuidlib.uuid4()), match.group(2), match.group(3), _options(match.group(1)))
        reached = await self.ring_caller(agent, caller)
        if reached:
            self.emit(
                channel_event(
                    "CHANNEL_BRIDGE", Unique_ID=winner, Other_Leg_Unique_ID=caller.uuid,
                    Other_Leg_Destination_Number=caller.user,
                ),
                b"",
            )  # fmt: skip
            await self.talk(agent, caller, self._kills[winner])
        await self.release(agent)
        self._end(winner, "NORMAL_CLEARING", bridged_to=caller.uuid if reached else "")

    # -- the phones: scripted here, real SIP in ``fs_sip.SipOriginator`` --------------------------
    async def ring_agents(self, legs: list[Leg]) -> tuple[str | None, str]:
        """(the uuid of the leg that answered first or None, the failure cause)."""
        phones = [(leg.uuid, self.agents.get(leg.user, Phone(False))) for leg in legs]
        answering = sorted((p.delay, uuid) for uuid, p in phones if p.answer)
        if not answering:
            await asyncio.sleep(max(p.delay for _, p in phones))
            return None, phones[0][1].cause
        await asyncio.sleep(answering[0][0])
        return answering[0][1], ""

    async def ring_caller(self, agent: Leg, caller: Leg) -> bool:
        phone = self.callers.get(caller.user, Phone(False))
        kill = asyncio.ensure_future(self._kills[agent.uuid].wait())
        try:
            await asyncio.wait({kill}, timeout=phone.delay)
        finally:
            kill.cancel()
        return phone.answer and not self._kills[agent.uuid].is_set()

    async def talk(self, agent: Leg, caller: Leg, kill: asyncio.Event) -> None:
        """Until either side hangs up, or ``uuid_kill``."""
        talks = [
            t
            for t in (self.agents.get(agent.user, Phone()).talk,
                      self.callers.get(caller.user, Phone()).talk)
            if t is not None
        ]  # fmt: skip
        with_kill = asyncio.ensure_future(kill.wait())
        try:
            await asyncio.wait({with_kill}, timeout=min(talks) if talks else None)
        finally:
            with_kill.cancel()

    async def release(self, agent: Leg) -> None:
        """Hang up what is still up of the call (nothing to do for scripted phones)."""

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
