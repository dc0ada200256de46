"""What each node kind does when entered and when its command's result comes back.

Registries map node data classes to handlers; kinds that never wait have no ``resume``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from control.core.flow.actions import (
    Action,
    Advance,
    Await,
    Finish,
    Frame,
    Jump,
    Result,
    as_scalar,
    hangup,
)
from control.core.flow.commands import CALLER_HANGUP, CommandKind
from control.core.flow.dtmf import enter_collect, enter_menu, resume_collect, resume_menu
from control.core.flow.expressions import ExpressionError, compute, evaluate, render
from control.core.flow.http_request import enter_http, resume_http
from control.core.flow.nodes import (
    QUEUE_EXITS,
    CollectData,
    ConditionData,
    ConferenceData,
    DialData,
    EnqueueData,
    EntryData,
    GotoData,
    HangupData,
    HttpRequestData,
    LanguageData,
    MenuData,
    NodeData,
    Outcome,
    PlayData,
    RecordData,
    RingGroupData,
    SayData,
    SetVariableData,
    TimeConditionData,
    TransferData,
    VoicemailData,
)
from control.core.schedule import evaluate as schedule_state
from control.core.schedule import is_usable
from control.core.targets import DestKind

# --- logic nodes --------------------------------------------------------------------------------


def enter_time_condition(data: TimeConditionData, frame: Frame) -> Action:
    schedule = frame.ctx.schedules.get(data.schedule_id)
    state = schedule_state(schedule, frame.now, frame.ctx.account_timezone)
    usable = is_usable(schedule, frame.ctx.account_timezone)
    return Advance(state.value, detail=None if usable else "schedule unusable: fail open")


def enter_condition(data: ConditionData, frame: Frame) -> Action:
    try:
        truth = evaluate(data.expression, frame.variables)
    except ExpressionError as exc:
        return Advance(Outcome.FALSE, detail=f"expression error: {exc}")
    return Advance(Outcome.TRUE if truth else Outcome.FALSE)


def enter_set_variable(data: SetVariableData, frame: Frame) -> Action:
    if data.expression is not None:
        try:
            value = compute(data.expression, frame.variables)
        except ExpressionError as exc:
            return Advance(Outcome.DEFAULT, detail=f"expression error: {exc}")
    elif isinstance(data.value, str):
        value = render(data.value, frame.variables)
    else:
        value = data.value
    return Advance(Outcome.DEFAULT, {data.variable: as_scalar(value)})


def enter_language(data: LanguageData, frame: Frame) -> Action:
    frame.state.language = data.language
    if data.voice_gender:
        frame.state.voice_gender = data.voice_gender
    return Advance(Outcome.DEFAULT, detail=f"language {data.language} ({frame.voice()})")


# --- calls leaving the IVR ----------------------------------------------------------------------

_DIAL_RESULTS = (Outcome.ANSWERED, Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED)


def enter_dial(data: DialData, frame: Frame) -> Action:
    target = render(data.target, frame.variables)
    key = {"user": "id", "extension": "digits", "number": "number"}[data.target_kind]
    args: dict[str, Any] = {
        "target": {"kind": data.target_kind, key: target},
        "timeoutSec": data.timeout_sec,
    }
    if data.caller_id_number:
        args["callerIdNumber"] = data.caller_id_number
    if data.caller_id_name:
        args["callerIdName"] = data.caller_id_name
    return Await(CommandKind.DIAL, args)


def resume_dial(data: DialData, frame: Frame, result: Result) -> Action:
    if result.outcome in _DIAL_RESULTS:
        return Advance(result.outcome)
    return Advance(Outcome.FAILED, detail=f"engine result {result.outcome!r}")


def enter_ring_group(data: RingGroupData, frame: Frame) -> Action:
    return Await(CommandKind.DIAL, {"target": {"kind": "ring_group", "id": data.ring_group_id}})


def resume_ring_group(data: RingGroupData, frame: Frame, result: Result) -> Action:
    if result.outcome == Outcome.ANSWERED:
        return Advance(Outcome.ANSWERED)
    return Advance(Outcome.NO_ANSWER, detail=f"engine result {result.outcome!r}")


def enter_enqueue(data: EnqueueData, frame: Frame) -> Action:
    # Exits the flow does not handle fall to the queue's own *_dest_* targets.
    handled = [o.value for o in QUEUE_EXITS if frame.doc.next_node(frame.node_id, o)]
    return Await(CommandKind.ENQUEUE, {"queueId": data.queue_id, "exits": handled})


def resume_enqueue(data: EnqueueData, frame: Frame, result: Result) -> Action:
    outcome = Outcome.ABANDON if result.outcome == CALLER_HANGUP else result.outcome
    if outcome == Outcome.ANSWERED:
        return hangup("normal_clearing", "queue_answered", Outcome.ANSWERED)
    if outcome == Outcome.ABANDON:
        frame.state.caller_gone = True
    if outcome in QUEUE_EXITS:
        return Advance(outcome)
    return Advance(Outcome.NO_AGENTS, detail=f"engine result {result.outcome!r}")


def enter_voicemail(data: VoicemailData, frame: Frame) -> Action:
    args = {"mailboxId": data.mailbox_id, "language": frame.state.language}
    return Finish(CommandKind.VOICEMAIL, args, "voicemail")


def enter_record(data: RecordData, frame: Frame) -> Action:
    args = {
        "maxDurationSec": data.max_duration_sec,
        "beep": data.beep,
        "terminators": data.terminators or "",
        "silenceTimeoutSec": data.silence_timeout_sec,
    }
    return Await(CommandKind.RECORD, args)


def resume_record(data: RecordData, frame: Frame, result: Result) -> Action:
    recording = result.data.get("recording")
    changed = {data.variable: as_scalar(recording)} if recording else {}
    return Advance(Outcome.DEFAULT, changed)


def enter_conference(data: ConferenceData, frame: Frame) -> Action:
    args = {"conferenceId": data.conference_id, "muted": data.muted, "moderator": data.moderator}
    return Await(CommandKind.CONFERENCE, args)


def enter_transfer(data: TransferData, frame: Frame) -> Action:
    target = data.target()
    if target.kind is DestKind.FLOW:
        return Jump(target.id, None)
    if target.kind is DestKind.HANGUP:
        return hangup("normal_clearing", "transfer")
    if target.kind is DestKind.QUEUE:
        return Finish(CommandKind.ENQUEUE, {"queueId": target.id, "exits": []}, "transfer")
    if target.kind is DestKind.VOICEMAIL:
        args = {"mailboxId": target.id, "language": frame.state.language}
        return Finish(CommandKind.VOICEMAIL, args, "transfer")
    if target.kind is DestKind.CONFERENCE:
        conference = {"conferenceId": target.id, "muted": False, "moderator": False}
        return Finish(CommandKind.CONFERENCE, conference, "transfer")
    dial = {"target": {"kind": target.kind.value, "id": target.id}, "transfer": True}
    return Finish(CommandKind.DIAL, dial, "transfer")


# --- the rest -----------------------------------------------------------------------------------


def enter_entry(data: EntryData, frame: Frame) -> Action:
    return Advance(Outcome.DEFAULT, detail=f"trigger {data.trigger}")


def enter_play(data: PlayData, frame: Frame) -> Action:
    return Await(CommandKind.PLAY, frame.media_args([{"media": data.audio_id}]))


def enter_say(data: SayData, frame: Frame) -> Action:
    text = render(data.text, frame.variables)
    args = {"text": text, "language": frame.state.language, "voice": frame.voice(data.voice)}
    return Await(CommandKind.SAY, args)


def resume_done(data: NodeData, frame: Frame, result: Result) -> Action:
    detail = None if result.outcome in ("done", Outcome.DEFAULT) else f"engine {result.outcome!r}"
    return Advance(Outcome.DEFAULT, detail=detail)


def enter_goto(data: GotoData, frame: Frame) -> Action:
    return Jump(data.flow_id, data.node_id)


def enter_hangup(data: HangupData, frame: Frame) -> Action:
    return hangup(data.cause, "hangup_node")


Enter = Callable[[Any, Frame], Action]
Resume = Callable[[Any, Frame, Result], Action]

ENTER: dict[type[NodeData], Enter] = {
    EntryData: enter_entry,
    PlayData: enter_play,
    SayData: enter_say,
    MenuData: enter_menu,
    CollectData: enter_collect,
    TimeConditionData: enter_time_condition,
    ConditionData: enter_condition,
    SetVariableData: enter_set_variable,
    HttpRequestData: enter_http,
    DialData: enter_dial,
    RingGroupData: enter_ring_group,
    EnqueueData: enter_enqueue,
    VoicemailData: enter_voicemail,
    RecordData: enter_record,
    ConferenceData: enter_conference,
    TransferData: enter_transfer,
    GotoData: enter_goto,
    LanguageData: enter_language,
    HangupData: enter_hangup,
}

# Only kinds that wait for a result; the others never leave the interpreter waiting.
RESUME: dict[type[NodeData], Resume] = {
    PlayData: resume_done,
    SayData: resume_done,
    MenuData: resume_menu,
    CollectData: resume_collect,
    HttpRequestData: resume_http,
    DialData: resume_dial,
    RingGroupData: resume_ring_group,
    EnqueueData: resume_enqueue,
    RecordData: resume_record,
    ConferenceData: resume_done,
}
