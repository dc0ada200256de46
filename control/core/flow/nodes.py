"""The 19 node kinds: typed ``data`` per kind, the outcome labels each can produce, and the
account objects each refers to.

Field names are the spec's (camelCase on the wire, snake_case in Python); a field without a
default is required. Unknown keys the editor adds (``label``…) are kept and saved back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from control.core.flow.expressions import VARIABLE_NAME, check_expression, check_template
from control.core.targets import DEST_TABLE, DestKind, RouteTarget


class Outcome(StrEnum):
    DEFAULT = "default"
    TIMEOUT = "timeout"
    INVALID = "invalid"
    IN_HOURS = "in_hours"
    OUT_OF_HOURS = "out_of_hours"
    HOLIDAY = "holiday"
    TRUE = "true"
    FALSE = "false"
    SUCCESS = "success"
    ERROR = "error"
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDON = "abandon"
    NO_AGENTS = "no_agents"
    QUEUE_FULL = "queue_full"
    EWT = "ewt"


DIGIT_PREFIX = "digit:"
KEYS = re.compile(r"^[0-9*#]+$")
# A quantified group that itself contains a quantifier, e.g. (\d+)*: catastrophic backtracking.
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[*+}][^()]*\)[*+{]")
Language = Literal[
    "en-US", "es-ES", "fr-FR", "de-DE", "it-IT", "pt-BR", "nl-NL", "pl-PL",
    "ru-RU", "tr-TR", "ar-XA", "he-IL", "hi-IN", "ja-JP", "ko-KR", "cmn-CN",
]  # fmt: skip
LANGUAGES: tuple[str, ...] = get_args(Language)
HangupCause = Literal[
    "normal_clearing", "user_busy", "call_rejected", "no_answer",
    "unallocated_number", "normal_temporary_failure",
]  # fmt: skip

Id = Annotated[str, Field(min_length=1, max_length=128)]
Digits = Annotated[int, Field(ge=1, le=32)]
Seconds = Annotated[int, Field(ge=1, le=300)]
Tries = Annotated[int, Field(ge=1, le=10)]
Keys = Annotated[str, Field(pattern=r"^[0-9*#]*$", max_length=4)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]


def digit_outcome(keys: str) -> str:
    return f"{DIGIT_PREFIX}{keys}"


class Ref(StrEnum):
    """Kinds of account objects a node can point at; the caller supplies the existing ids."""

    MEDIA = "media"
    QUEUE = "queue"
    MAILBOX = "mailbox"
    SCHEDULE = "schedule"
    USER = "user"
    RING_GROUP = "ring_group"
    FLOW = "flow"
    CONFERENCE = "conference"
    EXTENSION = "extension"
    FORWARD = "forward"


_DEST_REF = {
    DestKind.FLOW: Ref.FLOW,
    DestKind.USER: Ref.USER,
    DestKind.EXTENSION: Ref.EXTENSION,
    DestKind.RING_GROUP: Ref.RING_GROUP,
    DestKind.QUEUE: Ref.QUEUE,
    DestKind.VOICEMAIL: Ref.MAILBOX,
    DestKind.CONFERENCE: Ref.CONFERENCE,
    DestKind.FORWARD: Ref.FORWARD,
}

Problem = tuple[str, str]  # (field alias, message)
Reference = tuple[str, Ref, str]  # (field alias, kind of object, id)


class Open(BaseModel):
    """Strict typed fields, camelCase aliases, and unknown keys kept for the round trip."""

    model_config = ConfigDict(
        extra="allow", strict=True, alias_generator=to_camel, serialize_by_alias=True
    )


class NodeData(Open):
    kind: str
    OUTCOMES: ClassVar[tuple[str, ...]] = (Outcome.DEFAULT,)
    ENDS_CALL: ClassVar[bool] = False  # the node hands the call off for good
    NEEDS_CALLER: ClassVar[bool] = True  # makes no sense once the caller has hung up

    def produces(self, label: str) -> bool:
        """Can an edge carry ``label`` out of this node? ``default`` is the catch-all."""
        return not self.ENDS_CALL and (label == Outcome.DEFAULT or label in self.OUTCOMES)

    def problems(self) -> Iterator[Problem]:
        """Cross-field checks the field types cannot express."""
        return iter(())

    def references(self) -> Iterator[Reference]:
        return iter(())


def _media(**fields: str | None) -> Iterator[Reference]:
    for alias, value in fields.items():
        if value:
            yield alias, Ref.MEDIA, value


def _variable(alias: str, name: str) -> Iterator[Problem]:
    if not VARIABLE_NAME.match(name):
        yield alias, "must be a variable name: letters, digits, _ (not starting with a digit)"


def _template(alias: str, text: str | None) -> Iterator[Problem]:
    message = None if text is None else check_template(text)
    if message:
        yield alias, message


class EntryData(NodeData):
    kind: Literal["entry"]
    trigger: Literal["inbound", "internal", "api"]
    NEEDS_CALLER: ClassVar[bool] = False


class PlayData(NodeData):
    kind: Literal["play"]
    audio_id: Id

    def references(self) -> Iterator[Reference]:
        yield from _media(audioId=self.audio_id)


class SayData(NodeData):
    kind: Literal["say"]
    text: Text
    voice: str | None = None

    def problems(self) -> Iterator[Problem]:
        yield from _template("text", self.text)


class MenuData(NodeData):
    kind: Literal["menu"]
    prompt_audio_id: Id | None = None
    prompt_text: Text | None = None
    reprompt_audio_id: Id | None = None
    invalid_audio_id: Id | None = None
    min_digits: Digits = 1
    max_digits: Digits
    terminators: Keys | None = None
    timeout_sec: Seconds
    inter_digit_timeout_sec: Seconds | None = None
    max_failures: Tries = 3
    max_timeouts: Tries = 3
    barge_in: bool = True
    OUTCOMES: ClassVar[tuple[str, ...]] = (Outcome.TIMEOUT, Outcome.INVALID)

    def produces(self, label: str) -> bool:
        if not label.startswith(DIGIT_PREFIX):
            return super().produces(label)
        keys = label.removeprefix(DIGIT_PREFIX)
        return bool(KEYS.match(keys)) and self.min_digits <= len(keys) <= self.max_digits

    def problems(self) -> Iterator[Problem]:
        if not (self.prompt_audio_id or self.prompt_text):
            yield "promptAudioId", "required (or promptText)"
        if self.min_digits > self.max_digits:
            yield "minDigits", "greater than maxDigits"
        yield from _template("promptText", self.prompt_text)

    def references(self) -> Iterator[Reference]:
        yield from _media(
            promptAudioId=self.prompt_audio_id,
            repromptAudioId=self.reprompt_audio_id,
            invalidAudioId=self.invalid_audio_id,
        )


class CollectData(NodeData):
    kind: Literal["collect"]
    variable: str
    prompt_audio_id: Id | None = None
    reprompt_audio_id: Id | None = None
    invalid_audio_id: Id | None = None
    min_digits: Digits
    max_digits: Digits
    terminator: Keys | None = "#"
    timeout_sec: Seconds = 5
    inter_digit_timeout_sec: Seconds = 3
    regex: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    max_tries: Tries
    OUTCOMES: ClassVar[tuple[str, ...]] = (Outcome.DEFAULT, Outcome.INVALID, Outcome.TIMEOUT)

    def problems(self) -> Iterator[Problem]:
        yield from _variable("variable", self.variable)
        if self.min_digits > self.max_digits:
            yield "minDigits", "greater than maxDigits"
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                yield "regex", f"invalid regular expression: {exc}"
            if _NESTED_QUANTIFIER.search(self.regex):
                yield "regex", "a repeated group may not contain a repeat (slow to match)"

    def references(self) -> Iterator[Reference]:
        yield from _media(
            promptAudioId=self.prompt_audio_id,
            repromptAudioId=self.reprompt_audio_id,
            invalidAudioId=self.invalid_audio_id,
        )


class TimeConditionData(NodeData):
    kind: Literal["timeCondition"]
    schedule_id: Id
    OUTCOMES: ClassVar[tuple[str, ...]] = (
        Outcome.IN_HOURS,
        Outcome.OUT_OF_HOURS,
        Outcome.HOLIDAY,
    )
    NEEDS_CALLER: ClassVar[bool] = False

    def references(self) -> Iterator[Reference]:
        yield "scheduleId", Ref.SCHEDULE, self.schedule_id


class ConditionData(NodeData):
    kind: Literal["condition"]
    expression: str
    OUTCOMES: ClassVar[tuple[str, ...]] = (Outcome.TRUE, Outcome.FALSE)
    NEEDS_CALLER: ClassVar[bool] = False

    def problems(self) -> Iterator[Problem]:
        message = check_expression(self.expression)
        if message:
            yield "expression", message


class SetVariableData(NodeData):
    kind: Literal["setVariable"]
    variable: str
    value: str | int | float | bool | None = None
    expression: str | None = None
    NEEDS_CALLER: ClassVar[bool] = False

    def problems(self) -> Iterator[Problem]:
        yield from _variable("variable", self.variable)
        given = {"value", "expression"} & self.model_fields_set
        if len(given) != 1:
            yield "value", "required: exactly one of value or expression"
        if self.expression is not None and (message := check_expression(self.expression)):
            yield "expression", message
        if isinstance(self.value, str):
            yield from _template("value", self.value)


class HttpRequestData(NodeData):
    kind: Literal["httpRequest"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    timeout_sec: Annotated[int, Field(ge=1, le=10)] = 5
    response_variables: dict[str, str] = Field(default_factory=dict)
    OUTCOMES: ClassVar[tuple[str, ...]] = (Outcome.SUCCESS, Outcome.ERROR, Outcome.TIMEOUT)
    NEEDS_CALLER: ClassVar[bool] = False

    def problems(self) -> Iterator[Problem]:
        parts = urlsplit(self.url.split("{{", 1)[0])
        if parts.scheme not in ("http", "https") or not parts.netloc:
            yield "url", "must start with http:// or https:// and a host (no placeholder there)"
        yield from _template("url", self.url)
        for name, value in self.headers.items():
            yield from _template(f"headers.{name}", value)
        for name, path in self.response_variables.items():
            yield from _variable(f"responseVariables.{name}", name)
            if path.split(".", 1)[0] not in ("status", "body", "headers"):
                yield f"responseVariables.{name}", "path must start with status, body or headers"


class DialData(NodeData):
    kind: Literal["dial"]
    target_kind: Literal["user", "extension", "number"]
    target: Annotated[str, Field(min_length=1, max_length=128)]
    timeout_sec: Seconds = 25
    caller_id_number: str | None = None
    caller_id_name: str | None = None
    OUTCOMES: ClassVar[tuple[str, ...]] = (
        Outcome.ANSWERED,
        Outcome.NO_ANSWER,
        Outcome.BUSY,
        Outcome.FAILED,
    )

    def problems(self) -> Iterator[Problem]:
        yield from _template("target", self.target)

    def references(self) -> Iterator[Reference]:
        if self.target_kind == "user":
            yield "target", Ref.USER, self.target
        elif self.target_kind == "extension" and "{{" not in self.target:
            yield "target", Ref.EXTENSION, self.target


class RingGroupData(NodeData):
    kind: Literal["ringGroup"]
    ring_group_id: Id
    OUTCOMES: ClassVar[tuple[str, ...]] = (Outcome.ANSWERED, Outcome.NO_ANSWER)

    def references(self) -> Iterator[Reference]:
        yield "ringGroupId", Ref.RING_GROUP, self.ring_group_id


QUEUE_EXITS = (Outcome.TIMEOUT, Outcome.ABANDON, Outcome.NO_AGENTS, Outcome.QUEUE_FULL, Outcome.EWT)


class EnqueueData(NodeData):
    kind: Literal["enqueue"]
    queue_id: Id
    OUTCOMES: ClassVar[tuple[str, ...]] = QUEUE_EXITS

    def references(self) -> Iterator[Reference]:
        yield "queueId", Ref.QUEUE, self.queue_id


class VoicemailData(NodeData):
    kind: Literal["voicemail"]
    mailbox_id: Id
    OUTCOMES: ClassVar[tuple[str, ...]] = ()
    ENDS_CALL: ClassVar[bool] = True

    def references(self) -> Iterator[Reference]:
        yield "mailboxId", Ref.MAILBOX, self.mailbox_id


class RecordData(NodeData):
    kind: Literal["record"]
    variable: str = "recording"
    max_duration_sec: Annotated[int, Field(ge=1, le=3600)] = 120
    beep: bool = True
    terminators: Keys | None = "#"
    silence_timeout_sec: Seconds | None = None

    def problems(self) -> Iterator[Problem]:
        yield from _variable("variable", self.variable)


class ConferenceData(NodeData):
    kind: Literal["conference"]
    conference_id: Id
    muted: bool = False
    moderator: bool = False

    def references(self) -> Iterator[Reference]:
        yield "conferenceId", Ref.CONFERENCE, self.conference_id


class TransferData(NodeData):
    """Blind hand-off to any route target; the flow ends (a ``flow`` target continues there)."""

    kind: Literal["transfer"]
    dest_kind: Literal[
        "flow", "user", "extension", "ring_group", "queue",
        "voicemail", "conference", "forward", "hangup",
    ]  # fmt: skip
    dest_id: str | None = None
    OUTCOMES: ClassVar[tuple[str, ...]] = ()
    ENDS_CALL: ClassVar[bool] = True

    def target(self) -> RouteTarget:
        return RouteTarget(DestKind(self.dest_kind), self.dest_id or None)

    def problems(self) -> Iterator[Problem]:
        try:
            self.target()
        except ValueError as exc:
            yield "destId", str(exc)

    def references(self) -> Iterator[Reference]:
        kind = DestKind(self.dest_kind)
        if self.dest_id and DEST_TABLE[kind] is not None:
            yield "destId", _DEST_REF[kind], self.dest_id


class GotoData(NodeData):
    """Jump to a node of this flow (``nodeId``) or to another flow's start (``flowId``)."""

    kind: Literal["goto"]
    flow_id: Id | None = None
    node_id: Id | None = None
    OUTCOMES: ClassVar[tuple[str, ...]] = ()
    ENDS_CALL: ClassVar[bool] = True
    NEEDS_CALLER: ClassVar[bool] = False

    def problems(self) -> Iterator[Problem]:
        if not (self.flow_id or self.node_id):
            yield "nodeId", "required (or flowId)"
        if self.flow_id and self.node_id:
            yield "nodeId", "not allowed with flowId: another flow is entered at its start"

    def references(self) -> Iterator[Reference]:
        if self.flow_id:
            yield "flowId", Ref.FLOW, self.flow_id


class LanguageData(NodeData):
    kind: Literal["language"]
    language: Language
    voice_gender: Literal["male", "female"] | None = None
    NEEDS_CALLER: ClassVar[bool] = False


class HangupData(NodeData):
    kind: Literal["hangup"]
    cause: HangupCause = "normal_clearing"
    OUTCOMES: ClassVar[tuple[str, ...]] = ()
    ENDS_CALL: ClassVar[bool] = True
    NEEDS_CALLER: ClassVar[bool] = False


AnyNodeData = Annotated[
    EntryData | PlayData | SayData | MenuData | CollectData | TimeConditionData
    | ConditionData | SetVariableData | HttpRequestData | DialData | RingGroupData
    | EnqueueData | VoicemailData | RecordData | ConferenceData | TransferData
    | GotoData | LanguageData | HangupData,
    Field(discriminator="kind"),
]  # fmt: skip

KINDS: dict[str, type[NodeData]] = {
    get_args(model.model_fields["kind"].annotation)[0]: model
    for model in get_args(get_args(AnyNodeData)[0])
}
