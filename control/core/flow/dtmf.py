"""Menus and digit collection: prompts, re-prompts and give-up counters.

Counters live in the session state so a re-prompt survives the round trip through the media
engine; they reset each time the node is entered anew.
"""

from __future__ import annotations

import re
from typing import Any

from control.core.flow.actions import Action, Advance, Await, Frame, Result
from control.core.flow.commands import CommandKind
from control.core.flow.expressions import render
from control.core.flow.nodes import DIGIT_PREFIX, CollectData, MenuData, Outcome, digit_outcome


def _prompt(audio_id: str | None, text: str | None, frame: Frame) -> list[dict[str, str]]:
    prompts = [{"media": audio_id}] if audio_id else []
    if text:
        prompts.append({"text": render(text, frame.variables)})
    return prompts


def _invalid(audio_id: str | None) -> dict[str, str]:
    return {"media": audio_id} if audio_id else {"system": "invalid"}


def _digits(result: Result, terminators: str | None, max_digits: int) -> str | None:
    """The keys the caller pressed, cleaned; None when nothing usable was entered."""
    if result.outcome.startswith(DIGIT_PREFIX):
        raw = result.outcome.removeprefix(DIGIT_PREFIX)
    elif result.outcome == "digits":
        raw = str(result.data.get("digits") or "")
    else:
        return None
    keys = "".join(c for c in raw if c in "0123456789*#")
    for i, key in enumerate(keys):
        if terminators and key in terminators:
            keys = keys[:i]
            break
    return keys[:max_digits] or None


def _bump(frame: Frame, counter: str) -> int:
    frame.state.counters[counter] = frame.state.counters.get(counter, 0) + 1
    return frame.state.counters[counter]


def _menu_gather(data: MenuData, frame: Frame, prompts: list[dict[str, str]]) -> dict[str, Any]:
    return {
        **frame.media_args(prompts),
        "minDigits": data.min_digits,
        "maxDigits": data.max_digits,
        "terminators": data.terminators or "",
        "timeoutSec": data.timeout_sec,
        "interDigitTimeoutSec": data.inter_digit_timeout_sec or data.timeout_sec,
        "bargeIn": data.barge_in,
    }


def enter_menu(data: MenuData, frame: Frame) -> Action:
    prompts = _prompt(data.prompt_audio_id, data.prompt_text, frame)
    return Await(CommandKind.GATHER, _menu_gather(data, frame, prompts))


def resume_menu(data: MenuData, frame: Frame, result: Result) -> Action:
    keys = _digits(result, data.terminators, data.max_digits)
    reprompt = (
        [{"media": data.reprompt_audio_id}]
        if data.reprompt_audio_id
        else _prompt(data.prompt_audio_id, data.prompt_text, frame)
    )
    if keys is None:
        failed = Advance(Outcome.TIMEOUT)
        if _bump(frame, "timeouts") >= data.max_timeouts:
            return failed
        return Await(CommandKind.GATHER, _menu_gather(data, frame, reprompt), failed)
    label = digit_outcome(keys)
    if data.produces(label) and frame.doc.has_edge(frame.node_id, label):
        return Advance(label, dtmf=keys)
    failed = Advance(Outcome.INVALID, dtmf=keys)
    if _bump(frame, "failures") >= data.max_failures:
        return failed
    prompts = [_invalid(data.invalid_audio_id), *reprompt]
    return Await(CommandKind.GATHER, _menu_gather(data, frame, prompts), failed)


def _collect_gather(
    data: CollectData, frame: Frame, prompts: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        **frame.media_args(prompts),
        "minDigits": data.min_digits,
        "maxDigits": data.max_digits,
        "terminators": data.terminator or "",
        "timeoutSec": data.timeout_sec,
        "interDigitTimeoutSec": data.inter_digit_timeout_sec,
        "bargeIn": True,
    }


def enter_collect(data: CollectData, frame: Frame) -> Action:
    prompts = _prompt(data.prompt_audio_id, None, frame)
    return Await(CommandKind.GATHER, _collect_gather(data, frame, prompts))


def resume_collect(data: CollectData, frame: Frame, result: Result) -> Action:
    keys = _digits(result, data.terminator, data.max_digits)
    valid = keys is not None and len(keys) >= data.min_digits
    if keys is not None and valid and (data.regex is None or re.fullmatch(data.regex, keys)):
        return Advance(Outcome.DEFAULT, {data.variable: keys}, dtmf=keys)
    failed = Advance(Outcome.TIMEOUT if keys is None else Outcome.INVALID, dtmf=keys)
    if _bump(frame, "tries") >= data.max_tries:
        return failed
    prompts = [_invalid(data.invalid_audio_id)] if keys is not None else []
    prompts += _prompt(data.reprompt_audio_id or data.prompt_audio_id, None, frame)
    return Await(CommandKind.GATHER, _collect_gather(data, frame, prompts), failed)
