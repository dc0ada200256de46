"""Conference rooms: joining them from a call (a controller feature) and controlling them from
the API (the inbound event socket); also on-demand recording of a call in the media engine.

A room is ``<account>-<conference id>`` in FreeSWITCH, so an API request can only name rooms
of the account it was authorised for. Joining checks the room's PIN (secret store, at use
time), its ``max_members`` (FreeSWITCH's count, and ``conference_max_members`` so
FreeSWITCH enforces it too when the room starts) and records the room into the account's
private recordings directory when ``record`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from control.core.flow import Command
from control.db import models as m
from control.secrets import SecretStore, default_store
from esl import apps
from esl.connection import EslError
from esl.inbound import InboundClient
from esl.pin import PinOutcome, PinPrompts, enter_pin
from esl.voicemail import private_path

if TYPE_CHECKING:
    from esl.controller import CallRun

log = structlog.get_logger("esl.conference")

PIN_PROMPTS = PinPrompts(ask="conf-enter-pin", wrong="conf-bad-pin")
T = TypeVar("T")


@dataclass(frozen=True)
class Room:
    id: str
    account_id: str
    max_members: int | None
    pin_secret_ref: str | None
    record: bool
    active: bool

    @property
    def name(self) -> str:
        return room_name(self.account_id, self.id)


def room_name(account_id: str, conference_id: str) -> str:
    name = f"{account_id}-{conference_id}"
    if not apps.SAFE_ID.match(account_id) or not apps.SAFE_ID.match(conference_id):
        raise apps.PlanError(f"unsafe room name {name!r}")
    return name


class ConferenceStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def room(self, account_id: str, conference_id: str) -> Room | None:
        t = m.Conference
        query = select(t).where(t.id == conference_id, t.account_id == account_id)
        with self.engine.connect() as c:
            row = c.execute(query).first()
        if row is None:
            return None
        return Room(
            row.id, row.account_id, row.max_members, row.pin_secret_ref, bool(row.record),
            row.status == "active",
        )  # fmt: skip


# --- joining ------------------------------------------------------------------------------------


class ConferenceFeature:
    """``Feature`` for ``CommandKind.CONFERENCE``."""

    def __init__(
        self, store: ConferenceStore, *, secrets: Callable[[], SecretStore] = default_store
    ) -> None:
        self.store, self.secrets = store, secrets

    async def run(self, call: CallRun, command: Command) -> tuple[str, dict[str, Any]]:
        ctx = call.ctx
        assert ctx is not None
        conference_id = command.args.get("conferenceId")
        try:
            if not isinstance(conference_id, str):
                raise apps.PlanError("conferenceId missing")
            room_name(ctx.account_id, conference_id)
            room = await asyncio.to_thread(self.store.room, ctx.account_id, conference_id)
        except apps.PlanError as exc:
            return "error", {"reason": str(exc)}
        except SQLAlchemyError as exc:
            call.log.error("esl.conference.db_unavailable", error=type(exc).__name__)
            return "error", {"reason": "config database unavailable"}
        if room is None or not room.active:
            return "error", {"reason": f"no active conference {conference_id}"}
        language = str(command.args.get("language") or "en-US")
        language = language if apps.SAFE_ID.match(language) else "en-US"
        media = call.cfg.media

        def files(*names: str) -> str:
            prompts = [{"system": n} for n in names]
            return apps.prompt_files(prompts, ctx.account_id, language, media)

        if room.pin_secret_ref:
            outcome = await enter_pin(
                call, room.pin_secret_ref, self.secrets, PIN_PROMPTS, language
            )
            if outcome == PinOutcome.GONE:
                return "hangup", {}
            if outcome != PinOutcome.ACCEPTED:
                await call.run_apps([apps.AppCall("playback", files("goodbye"))], apps.HOUR)
                with contextlib.suppress(EslError, OSError):
                    await call.session.hangup("CALL_REJECTED", uuid=call.ctx_uuid)
                return "hangup", {"reason": f"pin_{outcome}"}
        variables: list[str] = []
        if room.max_members:
            if await _count(call, room) >= room.max_members:
                call.log.info("esl.conference.full", room=room.name, max=room.max_members)
                await call.run_apps([apps.AppCall("playback", files("conf-full"))], apps.HOUR)
                return "done", {"result": "full"}
            variables.append(f"conference_max_members={room.max_members}")
        if room.record:  # read by FreeSWITCH when the room starts: the first caller's name wins
            name = f"{ctx.account_id}/conf_{room.id}-{ctx.uuid}.wav"
            if not apps.SAFE_ID.match(ctx.uuid):
                return "error", {"reason": "unsafe channel uuid"}
            path = await asyncio.to_thread(private_path, Path(call.cfg.media.recordings_root), name)
            variables.append(f"conference_auto_record={path}")
        plan = apps.plan(command, ctx.account_id, ctx.uuid, media)
        calls = list(plan.calls)
        if variables:
            calls.insert(0, apps.AppCall("multiset", " ".join(variables)))
        done = await call.run_apps(calls, plan.budget)
        return apps.result(command, done, call.session.hung_up.is_set())


async def _count(call: CallRun, room: Room) -> int:
    """Members in the room now (FreeSWITCH answers ``Conference … not found`` for none)."""
    try:
        text = await call.session.api(f"conference {room.name} get count", timeout=2.0)
    except (EslError, OSError):
        return 0  # FreeSWITCH still applies conference_max_members
    text = text.strip()
    return int(text) if text.isdigit() else 0


# --- control from the API (inbound event socket) ------------------------------------------------


class ControlError(Exception):
    """FreeSWITCH could not be reached or refused the command."""


class NotFound(LookupError):
    """No such room, member or channel (on this media engine)."""


@dataclass(frozen=True)
class Member:
    id: int
    uuid: str
    caller_name: str
    caller_number: str
    muted: bool
    moderator: bool
    talking: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "memberId": self.id, "uuid": self.uuid, "callerName": self.caller_name,
            "callerNumber": self.caller_number, "muted": self.muted,
            "moderator": self.moderator, "talking": self.talking,
        }  # fmt: skip


@dataclass(frozen=True)
class EslTarget:
    """FreeSWITCH's inbound event socket; ``password`` comes from the secret store."""

    host: str
    port: int
    password: Callable[[], str]
    timeout: float = 3.0


def parse_members(text: str) -> list[Member]:
    """``conference <room> list``: one ``;``-separated line per member."""
    members = []
    for line in text.splitlines():
        fields = line.split(";")
        if len(fields) < 6 or not fields[0].isdigit():
            continue
        flags = set(fields[5].split("|"))
        members.append(
            Member(
                int(fields[0]), fields[2], fields[3], fields[4], "speak" not in flags,
                "moderator" in flags, "talking" in flags,
            )
        )  # fmt: skip
    return members


class MediaControl:
    """Room and call control commands; each opens one authenticated connection."""

    def __init__(self, target: EslTarget) -> None:
        self.target = target

    async def _api(self, command: str) -> str:
        t = self.target
        try:
            client = await InboundClient.connect(t.host, t.port, t.password(), timeout=t.timeout)
        except (EslError, OSError) as exc:
            raise ControlError(f"FreeSWITCH {t.host}:{t.port}: {type(exc).__name__}") from None
        try:
            return await client.api(command, timeout=t.timeout)
        except (EslError, OSError) as exc:
            raise ControlError(f"FreeSWITCH {t.host}:{t.port}: {type(exc).__name__}") from None
        finally:
            with contextlib.suppress(EslError, OSError):
                await client.exit(timeout=t.timeout)

    async def members(self, room: str) -> list[Member]:
        text = await self._api(f"conference {room} list")
        if text.startswith("Conference ") and "not found" in text:
            return []  # an empty room does not exist in FreeSWITCH
        return parse_members(text)

    async def member(self, room: str, action: str, member_id: int) -> None:
        if action not in ("mute", "unmute", "kick"):
            raise ValueError(action)
        text = (await self._api(f"conference {room} {action} {member_id}")).strip()
        if text.startswith(("OK ", "+OK")):
            return
        if text.startswith("Non-Existant ID") or (
            text.startswith("Conference ") and "not found" in text
        ):
            raise NotFound(text)
        raise ControlError(text)

    async def record(self, uuid: str, action: str, path: str | None = None) -> None:
        if not apps.SAFE_ID.match(uuid):
            raise NotFound("no such channel")
        arg = path if action == "start" else "all"
        text = (await self._api(f"uuid_record {uuid} {action} {arg}")).strip()
        if text.startswith("+OK"):
            return
        if "Cannot locate session" in text:
            raise NotFound(text)
        raise ControlError(text)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """For synchronous callers (the Flask API): one short-lived event loop per command."""
    return asyncio.run(coro)


def recording_name(account_id: str, uuid: str) -> str:
    """``<account>/<uuid>-<epoch s>.wav`` below the recordings root."""
    return f"{account_id}/{uuid}-{int(time.time())}.wav"
