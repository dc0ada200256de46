"""Flow commands → FreeSWITCH applications, and completion events → interpreter results."""

from __future__ import annotations

from typing import Any

import pytest

from control.core.flow import Command, CommandKind
from esl.apps import MediaConfig, PlanError, hangup_cause, plan, result
from esl.protocol import Event, Frame

CFG = MediaConfig()
ACC = "acc_1"
UUID = "36a12aa7-1ca5-4b8c-9f85-c06522aeb823"


def cmd(kind: str, seq: int = 7, **args: Any) -> Command:
    return Command(CommandKind(kind), args, seq, "n1")


def calls(command: Command) -> list[tuple[str, str | None]]:
    return [(c.app, c.arg) for c in plan(command, ACC, UUID, CFG).calls]


def done(**headers: str) -> Event:
    pairs = [("Event-Name", "CHANNEL_EXECUTE_COMPLETE"), *headers.items()]
    return Event(Frame.of((k.replace("_", "-") if not k.startswith("variable") else k, v)
                          for k, v in pairs), "plain")  # fmt: skip


def test_play_say_and_prompts() -> None:
    media = {"prompts": [{"media": "media_hello"}], "language": "en-US"}
    assert calls(cmd("play", **media)) == [
        ("playback", "/var/lib/sipio/media/acc_1/media_hello.wav")
    ]
    mixed = {
        "prompts": [{"system": "invalid"}, {"text": "Press one!"}, {"media": "m2"}],
        "language": "fr-FR",
    }
    assert calls(cmd("play", **mixed)) == [(
        "playback",
        "file_string:///var/lib/sipio/media/system/fr-FR/invalid.wav!say:Press one."
        "!/var/lib/sipio/media/acc_1/m2.wav",
    )]  # fmt: skip
    said = calls(cmd("say", text="It's ${system rm}\nnow | ok", voice="en-US-neural-male"))
    assert said == [("speak", "flite|en-US-neural-male|It\u2019s {system rm} now   ok")]


def test_gather_maps_to_one_try_of_play_and_get_digits() -> None:
    menu = cmd(
        "gather", prompts=[{"text": "For sales press 1"}], minDigits=1, maxDigits=3,
        terminators="#", timeoutSec=5, interDigitTimeoutSec=2, bargeIn=True,
    )  # fmt: skip
    assert calls(menu) == [(
        "play_and_get_digits",
        "1 3 1 5000 # 'say:For sales press 1' silence_stream://250 sipio_digits_7 [0-9*#]+ 2000",
    )]  # fmt: skip
    no_barge = cmd("gather", prompts=[{"media": "m"}], maxDigits=1, timeoutSec=4, bargeIn=False)
    first, second = calls(no_barge)
    assert first == ("playback", "/var/lib/sipio/media/acc_1/m.wav")
    assert second[1] is not None and " silence_stream://250 silence_stream://250 " in second[1]


def test_record_dial_conference_and_what_features_run() -> None:
    record = cmd("record", maxDurationSec=30, beep=True, terminators="#", silenceTimeoutSec=3)
    assert calls(record) == [
        ("set", "playback_terminators=#"),
        ("playback", "tone_stream://%(250,0,1000)"),
        ("record", f"/var/lib/sipio/recordings/acc_1/{UUID}-7.wav 30 200 3"),
    ]
    dial = cmd(
        "dial", target={"kind": "number", "number": "+15551234"}, timeoutSec=20,
        callerIdNumber="+1555000", callerIdName="Front, Desk {x}",
    )  # fmt: skip
    assert calls(dial) == [(
        "bridge",
        "{sip_h_X-Sipio-Account=acc_1,sip_h_X-Sipio-Dial=number:+15551234,call_timeout=20,"
        "hangup_after_bridge=false,origination_caller_id_number=+1555000,"
        "origination_caller_id_name='Front Desk x'}sofia/internal/+15551234@127.0.0.1:5060",
    )]  # fmt: skip
    room = cmd("conference", conferenceId="conf_1", muted=True, moderator=True)
    assert calls(room) == [("conference", "acc_1-conf_1@default+flags{mute|moderator}")]
    for feature in (cmd("enqueue", queueId="q_1"), cmd("voicemail", mailboxId="vm_1")):
        with pytest.raises(PlanError, match="not a media command"):  # the controller's features
            calls(feature)


@pytest.mark.parametrize(
    "command",
    [
        cmd("play", prompts=[{"media": "../../etc/passwd"}]),
        cmd("enqueue", queueId="q 1; hangup"),
        cmd("dial", target={"kind": "user", "id": "us_1}sofia/gateway/evil"}),
        cmd("voicemail", mailboxId=None),
        cmd("hangup"),
    ],
)
def test_unsafe_or_non_media_commands_are_refused(command: Command) -> None:
    with pytest.raises(PlanError):
        plan(command, ACC, UUID, CFG)


def test_results() -> None:
    gather = cmd("gather", prompts=[], maxDigits=2)
    assert result(gather, done(variable_sipio_digits_7="42"), False) == ("digits", {"digits": "42"})
    assert result(gather, done(), False) == ("timeout", {})
    assert result(gather, done(), True) == ("hangup", {})
    assert result(gather, None, False)[0] == "error"
    record = cmd("record")
    data = result(record, done(Application_Data="/r/a.wav 30", variable_record_seconds="4"), False)
    assert data == ("done", {"recording": "/r/a.wav", "durationSec": 4})
    dial = cmd("dial", target={"kind": "user", "id": "us_1"})
    for status, outcome in [("SUCCESS", "answered"), ("NO_ANSWER", "no_answer"),
                            ("USER_BUSY", "busy"), ("CALL_REJECTED", "failed")]:  # fmt: skip
        assert result(dial, done(variable_originate_disposition=status), False)[0] == outcome
    played = result(cmd("play"), done(Application_Response="FILE PLAYED"), False)
    assert played == ("done", {"response": "FILE PLAYED"})


def test_hangup_causes() -> None:
    assert hangup_cause(cmd("hangup", cause="user_busy")) == "USER_BUSY"
    assert hangup_cause(cmd("hangup")) == "NORMAL_CLEARING"
    assert hangup_cause(cmd("hangup", cause="x\nexit")) == "NORMAL_CLEARING"
