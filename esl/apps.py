"""Flow commands → FreeSWITCH dialplan applications, and their completion events → results.

Pure functions: :func:`plan` says which applications to run, in order (each waits for the
previous one's CHANNEL_EXECUTE_COMPLETE); :func:`result` reads the last one's completion event
into the ``(outcome, data)`` the interpreter expects (``control/core/flow/commands.py``).

Everything that ends up in an application argument is either one of our ids (checked against
a strict pattern, because they become file paths and dial strings) or caller-influenced text
(TTS, caller-id names), which is stripped of what FreeSWITCH would interpret: ``$`` (channel
variable and API expansion), quotes and backslashes (argument splitting), line breaks (ESL
framing), ``!`` and ``|`` (file_string and speak separators).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from control.core.flow import Command, CommandKind
from esl.protocol import Event

SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
DIAL_TARGET = re.compile(r"^[A-Za-z0-9_+*#.-]{1,64}$")
NO_ANSWER = ("NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "ORIGINATOR_CANCEL")
BUSY = ("USER_BUSY", "BUSY")
HOUR = 3600.0


DEFAULT_LANGUAGE = "en-US"  # system prompts when neither the call nor the queue names one


@dataclass(frozen=True)
class MediaConfig:
    """Where prompts live and how FreeSWITCH reaches the rest of the platform."""

    media_root: str = "/var/lib/sipio/media"  # <root>/<account>/<media id>.wav
    recordings_root: str = "/var/lib/sipio/recordings"
    tts_engine: str = "flite"
    proxy: str = "127.0.0.1:5060"  # Kamailio: bridges go back through it
    sofia_profile: str = "internal"
    conference_profile: str = "default"
    moh: str = "local_stream://moh"
    beep: str = "tone_stream://%(250,0,1000)"


@dataclass(frozen=True)
class AppCall:
    app: str
    arg: str | None = None


@dataclass(frozen=True)
class Plan:
    calls: tuple[AppCall, ...]
    budget: float  # seconds the last application may run before we give up on it


class PlanError(ValueError):
    """The command cannot be turned into applications (bad id, unknown kind)."""


def plan(command: Command, account_id: str, uuid: str, cfg: MediaConfig) -> Plan:
    """``uuid`` (the FreeSWITCH channel) names recordings: unlike a SIP Call-ID it is safe
    in a path."""
    kind, args = command.kind, command.args
    if kind is CommandKind.PLAY:
        return Plan(
            (AppCall("playback", _prompts(args.get("prompts", []), account_id, args, cfg)),), HOUR
        )
    if kind is CommandKind.SAY:
        return Plan((_speak(args, cfg),), HOUR)
    if kind is CommandKind.GATHER:
        return _gather(command, account_id, cfg)
    if kind is CommandKind.RECORD:
        return _record(command, account_id, uuid, cfg)
    if kind is CommandKind.DIAL:
        return _dial(args, account_id, cfg)
    if kind is CommandKind.CONFERENCE:
        room = f"{account_id}-{_id(args.get('conferenceId'), 'conferenceId')}"
        flags = [
            f for f, on in (("mute", args.get("muted")), ("moderator", args.get("moderator"))) if on
        ]
        suffix = f"+flags{{{'|'.join(flags)}}}" if flags else ""
        return Plan((AppCall("conference", f"{room}@{cfg.conference_profile}{suffix}"),), 24 * HOUR)
    # ENQUEUE and VOICEMAIL have no applications of their own: the controller's features
    # (esl/queue.py, esl/voicemail.py) drive the channel; FreeSWITCH keeps no queue or mailbox.
    raise PlanError(f"{kind.value} is not a media command")


def result(command: Command, done: Event | None, hung_up: bool) -> tuple[str, dict[str, Any]]:
    """The interpreter's view of how the command ended. ``done`` is the last application's
    CHANNEL_EXECUTE_COMPLETE (None if it never came); ``hung_up``: the caller is gone."""
    kind = command.kind
    if hung_up:
        return "hangup", {}
    if done is None:  # no completion within the budget: the interpreter's failure path
        return "error", {"reason": "application did not complete"}
    if kind is CommandKind.GATHER:
        digits = done.variable(_digits_var(command)) or ""
        return ("digits", {"digits": digits}) if digits else ("timeout", {})
    if kind is CommandKind.RECORD:
        seconds = done.variable("record_seconds") or "0"
        path = _recording_path(done)
        return "done", {"recording": path, "durationSec": int(seconds) if seconds.isdigit() else 0}
    if kind is CommandKind.DIAL:
        status = (
            done.variable("originate_disposition") or done.variable("DIALSTATUS") or ""
        ).upper()
        if status in ("SUCCESS", "ANSWER"):
            return "answered", {}
        if status in NO_ANSWER or status == "NOANSWER":
            return "no_answer", {"cause": status}
        if status in BUSY:
            return "busy", {"cause": status}
        return "failed", {"cause": status or "unknown"}
    return "done", {"response": done.get("Application-Response") or ""}


def hangup_cause(command: Command) -> str:
    cause = str(command.args.get("cause") or "normal_clearing").upper()
    return cause if re.fullmatch(r"[A-Z_]{3,40}", cause) else "NORMAL_CLEARING"


def digits_from_channel(command: Command, variables: Mapping[str, str | None]) -> str | None:
    """After a takeover: the digits a gather collected while no controller was listening."""
    return variables.get(_digits_var(command)) or None


# --- helpers --------------------------------------------------------------------------------------


def _id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SAFE_ID.match(value):
        raise PlanError(f"unsafe {what}: {value!r}")
    return value


def clean_text(text: Any, *, limit: int = 1000) -> str:
    out = str(text or "").replace("\r", " ").replace("\n", " ")
    out = out.replace("'", "\u2019").replace("\\", " ").replace("$", "").replace("|", " ")
    return re.sub(r"[\x00-\x1f]", "", out)[:limit]


def quote(arg: str) -> str:
    """One argument of a space-separated application string (FreeSWITCH honours '...')."""
    return f"'{arg}'" if " " in arg else arg


def _prompt(
    prompt: Mapping[str, Any], account_id: str, args: Mapping[str, Any], cfg: MediaConfig
) -> str:
    if "media" in prompt:
        return f"{cfg.media_root}/{account_id}/{_id(prompt['media'], 'media id')}.wav"
    if "system" in prompt:
        language = _id(args.get("language") or DEFAULT_LANGUAGE, "language")
        return f"{cfg.media_root}/system/{language}/{_id(prompt['system'], 'prompt')}.wav"
    if "text" in prompt:
        return "say:" + clean_text(prompt["text"]).replace("!", ".")
    raise PlanError(f"unknown prompt {dict(prompt)!r}")


def _prompts(
    prompts: Sequence[Mapping[str, Any]], account_id: str, args: Mapping[str, Any], cfg: MediaConfig
) -> str:
    files = [_prompt(p, account_id, args, cfg) for p in prompts]
    if not files:
        return "silence_stream://250"
    return files[0] if len(files) == 1 else "file_string://" + "!".join(files)


def prompt_files(
    prompts: Sequence[Mapping[str, Any]], account_id: str, language: str, cfg: MediaConfig
) -> str:
    """The ``playback`` argument for prompts in a language (what features play)."""
    return _prompts(prompts, account_id, {"language": language}, cfg)


def _speak(args: Mapping[str, Any], cfg: MediaConfig) -> AppCall:
    voice = clean_text(args.get("voice") or "", limit=80).replace(" ", "") or "default"
    return AppCall("speak", f"{cfg.tts_engine}|{voice}|{clean_text(args.get('text'))}")


def _digits_var(command: Command) -> str:
    return f"sipio_digits_{command.seq}"  # one per command: no stale value can be read back


def _gather(command: Command, account_id: str, cfg: MediaConfig) -> Plan:
    args = command.args
    prompt = _prompts(args.get("prompts", []), account_id, args, cfg)
    calls: list[AppCall] = []
    if not args.get("bargeIn", True):  # a keypress must not cut the prompt: play it first
        calls.append(AppCall("playback", prompt))
        prompt = "silence_stream://250"
    timeout = int(float(args.get("timeoutSec", 5)) * 1000)
    inter = int(float(args.get("interDigitTimeoutSec") or args.get("timeoutSec", 5)) * 1000)
    terminators = "".join(c for c in str(args.get("terminators") or "") if c in "0123456789*#")
    pagd = " ".join(
        [
            str(int(args.get("minDigits", 1))),
            str(int(args.get("maxDigits", 1))),
            "1",  # one try: re-prompts and give-up counters are the interpreter's
            str(timeout),
            terminators or "none",
            quote(prompt),
            "silence_stream://250",
            _digits_var(command),
            "[0-9*#]+",
            str(inter),
        ]
    )
    calls.append(AppCall("play_and_get_digits", pagd))
    budget = (timeout + inter * int(args.get("maxDigits", 1))) / 1000 + HOUR / 4
    return Plan(tuple(calls), budget)


def _record(command: Command, account_id: str, uuid: str, cfg: MediaConfig) -> Plan:
    args = command.args
    terminators = "".join(c for c in str(args.get("terminators") or "") if c in "0123456789*#")
    calls = [AppCall("set", f"playback_terminators={terminators or 'none'}")]
    if args.get("beep", True):
        calls.append(AppCall("playback", cfg.beep))
    limit = int(args.get("maxDurationSec", 120))
    name = f"{_id(uuid, 'channel uuid')}-{command.seq}.wav"
    record = f"{cfg.recordings_root}/{account_id}/{name} {limit}"
    silence = args.get("silenceTimeoutSec")
    if silence:
        record += f" 200 {int(silence)}"
    calls.append(AppCall("record", record))
    return Plan(tuple(calls), limit + 60.0)


def _recording_path(done: Event) -> str:
    """The path the record application was given (it is in the completion event)."""
    data = done.get("Application-Data") or ""
    return data.split(" ", 1)[0]


def _dial(args: Mapping[str, Any], account_id: str, cfg: MediaConfig) -> Plan:
    target = args.get("target") or {}
    kind = _id(target.get("kind"), "target kind")
    value = target.get("id") or target.get("digits") or target.get("number")
    if not isinstance(value, str) or not DIAL_TARGET.match(value):
        raise PlanError(f"unsafe dial target {value!r}")
    timeout = int(args.get("timeoutSec", 25))
    options = [
        f"sip_h_X-Sipio-Account={account_id}",
        f"sip_h_X-Sipio-Dial={kind}:{value}",
        f"call_timeout={timeout}",
        "hangup_after_bridge=false",
    ]
    number = clean_text(args.get("callerIdNumber") or "", limit=32)
    if number and DIAL_TARGET.match(number):
        options.append(f"origination_caller_id_number={number}")
    name = re.sub(r"[^A-Za-z0-9 ._-]", "", clean_text(args.get("callerIdName") or "", limit=48))
    if name:
        options.append(f"origination_caller_id_name='{name}'")
    dial = f"{{{','.join(options)}}}sofia/{cfg.sofia_profile}/{value}@{cfg.proxy}"
    return Plan((AppCall("bridge", dial),), timeout + 12 * HOUR)
