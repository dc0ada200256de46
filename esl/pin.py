"""PIN entry on a live call, checked against the secret store at use time.

Voicemail retrieval and PIN-protected conference rooms share it. The digits travel once from
FreeSWITCH to us in the completion event of ``play_and_get_digits``; the channel variable that
held them is cleared right after, so FreeSWITCH's own CDR and later events do not keep them.
The entry is compared in constant time (``SecretStore.matches``) and never logged, traced or
returned: callers learn only whether it matched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from control.secrets import SecretStore, SecretStoreError
from esl import apps

if TYPE_CHECKING:
    from esl.controller import CallRun

PIN_VAR = "sipio_pin_entry"
TRIES = 3


@dataclass(frozen=True)
class PinPrompts:
    ask: str  # system prompt ids
    wrong: str


class PinOutcome:
    ACCEPTED = "accepted"
    REFUSED = "refused"  # every try failed
    GONE = "gone"  # the caller hung up
    UNAVAILABLE = "unavailable"  # the secret store could not answer: fail closed


async def enter_pin(
    call: CallRun,
    ref: str,
    secrets: Callable[[], SecretStore],
    prompts: PinPrompts,
    language: str,
    *,
    tries: int = TRIES,
) -> str:
    """Ask for the PIN up to ``tries`` times; one of :class:`PinOutcome`."""
    assert call.ctx is not None
    account = call.ctx.account_id
    media = call.cfg.media
    ask = apps.prompt_files([{"system": prompts.ask}], account, language, media)
    wrong = apps.prompt_files(
        [{"system": prompts.wrong}, {"system": prompts.ask}], account, language, media
    )
    for attempt in range(tries):
        prompt = ask if attempt == 0 else wrong
        done = await call.run_apps(
            [apps.AppCall("play_and_get_digits", digits_arg(prompt, PIN_VAR, 4, 12, "#"))],
            60.0,
        )
        entered = (done.variable(PIN_VAR) if done else None) or ""
        if entered:  # the variable must not outlive the check
            await call.run_apps([apps.AppCall("set", f"{PIN_VAR}=")], call.cfg.command_timeout)
        if call.session.hung_up.is_set():
            return PinOutcome.GONE
        if not entered:
            continue
        try:
            store = secrets()
            ok = await asyncio.to_thread(store.matches, ref, entered)
        except SecretStoreError as exc:  # the message names the store and the reference only
            call.log.error("esl.pin.store_unavailable", ref=ref, error=type(exc).__name__)
            return PinOutcome.UNAVAILABLE
        if ok:
            return PinOutcome.ACCEPTED
        call.log.info("esl.pin.refused", ref=ref, attempt=attempt + 1)
    return PinOutcome.REFUSED


def digits_arg(
    prompt: str,
    variable: str,
    low: int,
    high: int,
    terminators: str,
    *,
    valid: str = "[0-9*#]+",
    timeout_ms: int = 8000,
    inter_ms: int = 4000,
) -> str:
    """``play_and_get_digits`` with one try (re-prompts are ours), like ``apps`` builds it."""
    return " ".join(
        [
            str(low), str(high), "1", str(timeout_ms), terminators or "none",
            apps.quote(prompt), "silence_stream://250", variable, valid, str(inter_ms),
        ]
    )  # fmt: skip
