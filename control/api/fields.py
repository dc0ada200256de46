"""Field types shared by the API schemas. Every string has a length bound that matches its
column and refuses NUL (PostgreSQL cannot store it); every integer fits a 32-bit column."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

INT32 = 2**31 - 1
_TIMEZONES = frozenset(available_timezones())
_XFORM_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _printable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _flag(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _lower(value: str) -> str:
    return value.lower()


def _timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


def _xform(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > 32:
        raise ValueError("at most 32 variables")
    for key, item in value.items():
        if not _XFORM_KEY.match(key):
            raise ValueError(f"variable name {key!r} must match {_XFORM_KEY.pattern}")
        if isinstance(item, str):
            if len(item) > 256 or "\x00" in item:
                raise ValueError(f"{key}: strings are limited to 256 printable characters")
        elif item is not None and not isinstance(item, (bool, int, float)):
            raise ValueError(f"{key}: values must be strings, numbers, booleans or null")
    return value


_P = AfterValidator(_printable)

Text16 = Annotated[str, StringConstraints(max_length=16), _P]
Text100 = Annotated[str, StringConstraints(max_length=100), _P]
Text128 = Annotated[str, StringConstraints(max_length=128), _P]
Text200 = Annotated[str, StringConstraints(max_length=200), _P]
Text255 = Annotated[str, StringConstraints(max_length=255), _P]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), _P]
ObjectKey = Annotated[str, StringConstraints(min_length=1, max_length=1024), _P]
Scope = Annotated[str, StringConstraints(min_length=1, max_length=32), _P]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128), _P]
Id = Annotated[
    str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z]+_[0-9a-z]{1,36}$")
]
E164 = Annotated[str, StringConstraints(max_length=15, pattern=r"^[1-9][0-9]{0,14}$")]
Number = Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9*#]{1,31}$")]
Digits = Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9*#]{1,32}$")]
Digit = Annotated[str, StringConstraints(min_length=1, max_length=1, pattern=r"^[0-9*#]$")]
SipUsername = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9._+\-]{1,64}$")]
Domain = Annotated[
    str,
    StringConstraints(
        max_length=255,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
    ),
    AfterValidator(_lower),
]
HostPort = Annotated[
    str, StringConstraints(max_length=255, pattern=r"^[A-Za-z0-9.\-\[\]:]{1,255}$")
]
Cidr = Annotated[
    str, StringConstraints(max_length=43, pattern=r"^[0-9a-fA-F.:]{2,39}(/[0-9]{1,3})?$")
]
HttpsUrl = Annotated[str, StringConstraints(max_length=2000, pattern=r"^https://[^\s]+$"), _P]
Email = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"), _P]
TimeOfDay = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Date = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]

# Booleans are 0/1 integers in rows and payloads (SPEC conventions); true/false are accepted.
Flag = Annotated[Literal[0, 1], BeforeValidator(_flag)]
Count = Annotated[int, Field(ge=0, le=INT32)]
Seconds = Annotated[int, Field(ge=0, le=86400 * 366)]
RingSeconds = Annotated[int, Field(ge=1, le=3600)]
Period = Annotated[int, Field(ge=1, le=86400 * 31)]
Tier = Annotated[int, Field(ge=1, le=99)]

Language = Literal[
    "en-US", "es-ES", "fr-FR", "de-DE", "it-IT", "pt-BR", "nl-NL", "pl-PL",
    "ru-RU", "tr-TR", "ar-XA", "he-IL", "hi-IN", "ja-JP", "ko-KR", "cmn-CN",
]  # fmt: skip
VoiceGender = Literal["male", "female"]
DestKindName = Literal[
    "flow", "user", "extension", "ring_group", "queue", "voicemail", "conference", "forward",
    "hangup",
]  # fmt: skip

# dest_xform: small flat JSON object of call variables applied on that hop.
DestXform = Annotated[dict[str, Any], AfterValidator(_xform)]
