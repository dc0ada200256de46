"""How an agent's phone rings for a queue call, a live caller's or a callback: one leg through
Kamailio per agent (``X-Sipio-Dial: user:<agent>`` inside the account, a known channel uuid),
with the queue's answer-time prompts (SPEC 7.2 and 14: ``whisper-queue``, ``confirm-accept``).

FreeSWITCH runs the answer-time part on the agent's leg before bridging it: with
``agent_confirm`` the agent hears the prompt(s) and must press 1 (``group_confirm_key``); a
leg that does not is hung up and the bridge goes on as if it had not answered, i.e. a miss.
With ``agent_whisper`` alone the prompt plays (``group_confirm_key=exec``) and the call is
bridged after it.
"""

from __future__ import annotations

from control.core.acd import QueueConfig
from esl import apps
from esl.apps import MediaConfig

CONFIRM_KEY = "1"
CONFIRM_READ_MS = 5000  # after the prompt, the time the agent has to press the key


def answer_options(cfg: QueueConfig, language: str, media: MediaConfig) -> list[str]:
    prompts = [{"system": "whisper-queue"}] if cfg.agent_whisper else []
    if cfg.agent_confirm:
        files = apps.prompt_files([*prompts, {"system": "confirm-accept"}], cfg.account_id,
                                  language, media)  # fmt: skip
        return [
            f"group_confirm_file={files}", f"group_confirm_key={CONFIRM_KEY}",
            f"group_confirm_read_timeout={CONFIRM_READ_MS}", "group_confirm_cancel_timeout=1",
        ]  # fmt: skip
    if prompts:
        files = apps.prompt_files(prompts, cfg.account_id, language, media)
        return ["group_confirm_key=exec", f"group_confirm_file=playback {files}"]
    return []


def leg(
    cfg: QueueConfig, user: str, uuid: str, ring: int, language: str, media: MediaConfig
) -> str:
    """``[options]sofia/<profile>/<user>@<kamailio>`` for one agent."""
    apps._id(user, "agent id")
    options = [
        f"sip_h_X-Sipio-Account={cfg.account_id}", f"sip_h_X-Sipio-Dial=user:{user}",
        f"sip_h_X-Sipio-Queue={cfg.id}", f"origination_uuid={uuid}", f"leg_timeout={ring}",
        *answer_options(cfg, language, media),
    ]  # fmt: skip
    return f"[{','.join(options)}]sofia/{media.sofia_profile}/{user}@{media.proxy}"
