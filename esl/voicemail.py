"""Voicemail as a controller feature: deposit and PIN-protected retrieval (docs/voicemail.md).

FreeSWITCH only plays, records and collects digits; the mailbox is ours. A message is
recorded straight into the private media store (``<media root>/<account>/vm/<channel
uuid>.wav``, directories 0700, files 0600), then a ``voicemail_messages`` row and a
``voicemail_message`` event on ``sipio:events`` are written. Hanging up is how a caller ends a
message, so a hang-up during the recording still keeps it; under one second is nothing.

The ``voicemail`` command deposits; ``mode: "retrieve"`` in its args (or a direct
``voicemail:<box>`` target whose ``X-Sipio-Vars`` carry ``voicemail_mode: "retrieve"``) opens
the owner's menu after the PIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from ulid import ULID

from control.core.flow import Command
from control.db import models as m
from control.secrets import SecretStore, default_store
from control.secrets.files import private_dir
from esl import apps
from esl.pin import PinOutcome, PinPrompts, digits_arg, enter_pin

if TYPE_CHECKING:
    from esl.controller import CallRun

log = structlog.get_logger("esl.voicemail")

MIN_SECONDS = 1.0  # shorter is a hang-up at the beep, not a message
MB = 1024 * 1024
MENU_VAR = "sipio_vm_key"
EVENT_TYPE = "voicemail_message"
PIN_PROMPTS = PinPrompts(ask="vm-enter-pin", wrong="vm-bad-pin")


@dataclass(frozen=True)
class VoicemailConfig:
    max_message_sec: int = 180
    # POSTed (through the flow HTTP runner, so its egress rules apply) for every new message.
    notify_url: str | None = None


@dataclass(frozen=True)
class Box:
    id: str
    account_id: str
    greeting_media_id: str | None
    skip_instructions: bool
    quota_mb: int
    notify_email: str | None
    pin_secret_ref: str | None


@dataclass(frozen=True)
class Message:
    id: str
    media_key: str
    folder: str
    heard_at: int | None


@dataclass(frozen=True)
class NewMessage:
    box: Box
    call_id: str
    caller_number: str
    caller_name: str
    duration_sec: int
    media_key: str
    size_bytes: int
    id: str = field(default_factory=lambda: f"vmm_{str(ULID()).lower()}")


class VoicemailStore:
    """The config DB side (blocking: called through ``asyncio.to_thread``). Every query is
    scoped by account as well as by id."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def box(self, account_id: str, box_id: str) -> Box | None:
        t = m.VoicemailBox
        with self.engine.connect() as c:
            row = c.execute(select(t).where(t.id == box_id, t.account_id == account_id)).first()
        if row is None:
            return None
        return Box(
            row.id, row.account_id, row.greeting_media_id, bool(row.skip_instructions),
            row.quota_mb, row.notify_email, row.pin_secret_ref,
        )  # fmt: skip

    def used_bytes(self, box: Box) -> int:
        t = m.VoicemailMessage
        query = select(func.coalesce(func.sum(t.size_bytes), 0)).where(
            t.box_id == box.id, t.account_id == box.account_id
        )
        with self.engine.connect() as c:
            return int(c.scalar(query) or 0)

    def add(self, message: NewMessage) -> bool:
        """Insert the row unless this recording already has one (a controller that took the
        call over re-runs the command): False then."""
        t = m.VoicemailMessage
        with self.engine.begin() as c:
            known = c.scalar(
                select(t.id).where(
                    t.account_id == message.box.account_id, t.media_key == message.media_key
                )
            )
            if known is not None:
                return False
            c.execute(
                insert(m.VoicemailMessage).values(
                    id=message.id, account_id=message.box.account_id, box_id=message.box.id,
                    call_id=message.call_id[:255], caller_number=message.caller_number[:64] or None,
                    caller_name=message.caller_name[:128] or None,
                    duration_sec=message.duration_sec, media_key=message.media_key,
                    size_bytes=message.size_bytes, folder="new",
                )
            )  # fmt: skip
        return True

    def messages(self, box: Box) -> list[Message]:
        """New messages first, then saved ones, each oldest first."""
        t = m.VoicemailMessage
        query = (
            select(t.id, t.media_key, t.folder, t.heard_at)
            .where(t.box_id == box.id, t.account_id == box.account_id)
            .order_by((t.folder != "new"), t.created_at, t.id)
        )
        with self.engine.connect() as c:
            return [Message(r.id, r.media_key, r.folder, r.heard_at) for r in c.execute(query)]

    def mark(self, box: Box, message_id: str, *, folder: str | None = None) -> None:
        t = m.VoicemailMessage
        values: dict[str, Any] = {"heard_at": func.coalesce(t.heard_at, int(time.time()))}
        if folder:
            values["folder"] = folder
        with self.engine.begin() as c:
            c.execute(
                update(t)
                .where(t.id == message_id, t.account_id == box.account_id, t.box_id == box.id)
                .values(**values)
            )

    def remove(self, box: Box, message_id: str) -> None:
        t = m.VoicemailMessage
        with self.engine.begin() as c:
            c.execute(
                delete(t).where(
                    t.id == message_id, t.account_id == box.account_id, t.box_id == box.id
                )
            )


# --- the media store --------------------------------------------------------------------------


def private_path(root: Path, key: str) -> Path:
    """``root / key`` with every directory below ``root`` created (or tightened) to 0700."""
    path = root
    for part in Path(key).parts[:-1]:
        path = path / part
        private_dir(path)
        os.chmod(path, 0o700)
    return root / key


# What a media key of a message looks like; anything else never reaches a path.
KEY_PATTERN = re.compile(r"^acc_[A-Za-z0-9_-]{1,60}/vm/[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}\.wav$")


def message_key(account_id: str, uuid: str) -> str:
    return f"{_safe(account_id)}/vm/{_safe(uuid)}.wav"


def _safe(value: str) -> str:
    if not apps.SAFE_ID.match(value):
        raise apps.PlanError(f"unsafe path part {value!r}")
    return value


def audio_facts(path: Path) -> tuple[float, int] | None:
    """(seconds, bytes) of a finished recording; None when there is no file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    try:
        with wave.open(str(path), "rb") as w:
            seconds = w.getnframes() / float(w.getframerate() or 1)
    except (wave.Error, EOFError, OSError):
        seconds = 0.0  # not a readable WAV: nothing a caller could listen to
    return seconds, size


def remove_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --- the feature --------------------------------------------------------------------------------


class VoicemailFeature:
    """``Feature`` for ``CommandKind.VOICEMAIL``."""

    def __init__(
        self,
        store: VoicemailStore,
        config: VoicemailConfig | None = None,
        *,
        secrets: Callable[[], SecretStore] = default_store,
    ) -> None:
        self.store = store
        self.config = config or VoicemailConfig()
        self.secrets = secrets
        self._notifications: set[asyncio.Task[Any]] = set()

    async def run(self, call: CallRun, command: Command) -> tuple[str, dict[str, Any]]:
        ctx = call.ctx
        assert ctx is not None
        box_id = command.args.get("mailboxId")
        if not isinstance(box_id, str) or not apps.SAFE_ID.match(box_id):
            return "error", {"reason": "bad mailboxId"}
        try:
            box = await asyncio.to_thread(self.store.box, ctx.account_id, box_id)
        except SQLAlchemyError as exc:
            call.log.error("esl.voicemail.db_unavailable", error=type(exc).__name__)
            return "error", {"reason": "config database unavailable"}
        except (apps.PlanError, OSError) as exc:  # an unsafe id, the media store unwritable
            call.log.error("esl.voicemail.failed", error=str(exc))
            return "error", {"reason": str(exc)}
        if box is None:
            call.log.warning("esl.voicemail.no_box", box=box_id)
            return "error", {"reason": f"no voicemail box {box_id}"}
        language = str(command.args.get("language") or "en-US")
        if not apps.SAFE_ID.match(language):
            language = "en-US"
        try:
            if _mode(call, command, box_id) == "retrieve":
                return await self._retrieve(call, box, language)
            return await self._deposit(call, box, language, command)
        except SQLAlchemyError as exc:
            call.log.error("esl.voicemail.db_unavailable", error=type(exc).__name__)
            return "error", {"reason": "config database unavailable"}

    # --- deposit ------------------------------------------------------------------------------
    async def _deposit(
        self, call: CallRun, box: Box, language: str, command: Command
    ) -> tuple[str, dict[str, Any]]:
        ctx = call.ctx
        assert ctx is not None
        media = call.cfg.media
        used = await asyncio.to_thread(self.store.used_bytes, box)
        if used >= box.quota_mb * MB:
            call.log.info("esl.voicemail.full", box=box.id, used=used)
            full = apps.prompt_files([{"system": "vm-full"}], ctx.account_id, language, media)
            await call.run_apps([apps.AppCall("playback", full)], apps.HOUR)
            return "done", {"result": "mailbox_full"}
        greeting: list[dict[str, str]] = (
            [{"media": box.greeting_media_id}]
            if box.greeting_media_id
            else [{"system": "vm-greeting"}]
        )
        if not box.skip_instructions:
            greeting.append({"system": "vm-instructions"})
        key = message_key(ctx.account_id, ctx.uuid)
        path = await asyncio.to_thread(private_path, Path(media.media_root), key)
        limit = int(command.args.get("maxDurationSec") or self.config.max_message_sec)
        limit = max(1, min(limit, self.config.max_message_sec))
        welcome = apps.prompt_files(greeting, ctx.account_id, language, media)
        earlier = await asyncio.to_thread(audio_facts, path)
        if earlier is None or earlier[0] < MIN_SECONDS:  # else recorded before a takeover
            await call.run_apps(
                [
                    apps.AppCall("playback", welcome),
                    apps.AppCall("set", "playback_terminators=#"),
                    apps.AppCall("playback", media.beep),
                    apps.AppCall("record", f"{path} {limit} 200 5"),
                ],
                limit + 30.0,
            )
        # A hang-up (the usual end of a message) may leave no completion: the file decides.
        facts = await asyncio.to_thread(_finish_file, path)
        if facts is None or facts[0] < MIN_SECONDS:
            call.log.info("esl.voicemail.nothing_recorded", box=box.id)
            return "done", {"result": "nothing_recorded"}
        seconds, size = facts
        message = NewMessage(
            box, ctx.call_id, ctx.caller_number, ctx.caller_name, round(seconds), key, size
        )
        if not await asyncio.to_thread(self.store.add, message):
            return "done", {"result": "message_known"}
        await self._announce(call, message)
        call.log.info("esl.voicemail.message", box=box.id, message=message.id, seconds=seconds)
        return "done", {"result": "message", "messageId": message.id}

    async def _announce(self, call: CallRun, message: NewMessage) -> None:
        """The ``voicemail_message`` event, and the notification hook if one is set."""
        box = message.box
        event = {
            "type": EVENT_TYPE, "call_id": message.call_id, "ts": int(time.time() * 1000),
            "account_id": box.account_id, "emitter": "voicemail",
            "data": {
                "message_id": message.id, "box_id": box.id,
                "caller_number": message.caller_number, "caller_name": message.caller_name,
                "duration_sec": message.duration_sec, "size_bytes": message.size_bytes,
                "media_key": message.media_key, "notify_email": box.notify_email,
            },
        }  # fmt: skip
        store = call.ctl.store
        await store.redis.xadd(store.stream, {"e": json.dumps(event, separators=(",", ":"))})
        url = self.config.notify_url
        if url:
            body = {"event": "voicemail.message", "account_id": box.account_id,
                    "data": event["data"], "ts": event["ts"]}  # fmt: skip
            args = {"method": "POST", "url": url, "body": body, "timeoutSec": 5,
                    "headers": {"x-sipio-event": "voicemail.message"}}  # fmt: skip
            task = asyncio.ensure_future(self._notify(call, args, message.id))
            self._notifications.add(task)
            task.add_done_callback(self._notifications.discard)

    async def _notify(self, call: CallRun, args: dict[str, Any], message_id: str) -> None:
        outcome, data = await call.ctl.http.run(args)
        status = data.get("status") if outcome == "response" else None
        if status is None or not 200 <= int(status) < 300:
            call.log.warning("esl.voicemail.notify_failed", message=message_id, outcome=outcome,
                             status=status, reason=data.get("reason"))  # fmt: skip

    # --- retrieval ----------------------------------------------------------------------------
    async def _retrieve(self, call: CallRun, box: Box, language: str) -> tuple[str, dict[str, Any]]:
        ctx = call.ctx
        assert ctx is not None
        media = call.cfg.media

        def files(*names: str) -> str:
            prompts = [{"system": n} for n in names]
            return apps.prompt_files(prompts, ctx.account_id, language, media)

        if not box.pin_secret_ref:  # a box without a PIN is not opened by phone
            call.log.warning("esl.voicemail.no_pin", box=box.id)
            await call.run_apps([apps.AppCall("playback", files("goodbye"))], apps.HOUR)
            return "done", {"result": "no_pin"}
        outcome = await enter_pin(call, box.pin_secret_ref, self.secrets, PIN_PROMPTS, language)
        if outcome != PinOutcome.ACCEPTED:
            if outcome != PinOutcome.GONE:
                await call.run_apps([apps.AppCall("playback", files("goodbye"))], apps.HOUR)
            return "done", {"result": f"pin_{outcome}"}
        messages = await asyncio.to_thread(self.store.messages, box)
        fresh = sum(1 for msg in messages if msg.folder == "new")
        count = [
            apps.AppCall("playback", files("vm-you-have")),
            apps.AppCall("say", f"{language.split('-')[0].lower()} number pronounced {fresh}"),
            apps.AppCall("playback", files("vm-new-message" if fresh == 1 else "vm-new-messages")),
        ]
        await call.run_apps(count, apps.HOUR)
        root = Path(media.media_root)
        for message in messages:
            if call.session.hung_up.is_set():
                break
            audio = root / message.media_key
            prompt = f"file_string://{audio}!{files('vm-message-menu')}"
            while True:  # 1 replays: the same message again
                done = await call.run_apps(
                    [apps.AppCall("play_and_get_digits",
                                  digits_arg(prompt, MENU_VAR, 1, 1, "none", valid="[1279#]"))],
                    apps.HOUR,
                )  # fmt: skip
                key = (done.variable(MENU_VAR) if done else None) or ""
                if key != "1" or call.session.hung_up.is_set():
                    break
            if key == "7":
                await asyncio.to_thread(self.store.remove, box, message.id)
                await asyncio.to_thread(remove_file, audio)
                await call.run_apps([apps.AppCall("playback", files("vm-deleted"))], apps.HOUR)
            elif key == "2":
                await asyncio.to_thread(self.store.mark, box, message.id, folder="saved")
                await call.run_apps([apps.AppCall("playback", files("vm-saved"))], apps.HOUR)
            elif done is not None:  # "#", or no key: heard, next
                await asyncio.to_thread(self.store.mark, box, message.id)
        if not call.session.hung_up.is_set():
            await call.run_apps([apps.AppCall("playback", files("vm-no-more", "goodbye"))],
                                apps.HOUR)  # fmt: skip
        return "done", {"result": "retrieved", "messages": len(messages)}


def _mode(call: CallRun, command: Command, box_id: str) -> str:
    """``mode`` from the command; a direct ``voicemail:<box>`` target may ask for retrieval
    through Kamailio's ``X-Sipio-Vars`` (the trusted route, never the caller)."""
    mode = command.args.get("mode")
    if mode in ("deposit", "retrieve"):
        return str(mode)
    ctx = call.ctx
    if ctx is not None and ctx.target_kind == "voicemail" and ctx.target_id == box_id:
        wanted = ctx.variables.get("voicemail_mode")
        if wanted == "retrieve":
            return "retrieve"
    return "deposit"


def _finish_file(path: Path) -> tuple[float, int] | None:
    """Make a finished recording private and measure it; drop one too short to keep."""
    facts = audio_facts(path)
    if facts is None:
        return None
    os.chmod(path, 0o600)
    if facts[0] < MIN_SECONDS:
        remove_file(path)
    return facts
