"""What Kamailio attached to a call it hands to FreeSWITCH, read from the ``connect`` reply.

``kemi/routing.py`` adds ``X-Sipio-Account``, ``X-Sipio-Target: <kind>:<id>`` and optionally
``X-Sipio-Vars: {json}`` (and ``X-Sipio-Flow-Version`` to pin a version) to the INVITE;
FreeSWITCH stores every ``X-`` header of an incoming INVITE as the channel variable
``sip_h_<name>``, so they arrive as ``variable_sip_h_X-Sipio-*`` headers, URL-encoded like
every other value and decoded per header by the protocol layer.

These headers are trusted because only Kamailio can reach FreeSWITCH (its SIP profile must
accept the proxy only, see ``docs/esl.md``); they are still validated, since they name keys,
files and dial strings further down.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from esl.outbound import ChannelData

HEADER_VAR = "sip_h_X-Sipio-"
TARGET_KINDS = ("flow", "queue", "voicemail", "conference")
ACCOUNT_ID = re.compile(r"^acc_[A-Za-z0-9_-]{1,60}$")
OBJECT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
MAX_VARS_BYTES = 8192


class ContextError(ValueError):
    """The call carries no usable sipio context: it did not come through Kamailio's media()."""


@dataclass(frozen=True)
class CallContext:
    uuid: str  # FreeSWITCH channel
    call_id: str  # SIP Call-ID: the correlation key of every trace, and the session key
    account_id: str
    target_kind: str
    target_id: str
    flow_version: int | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    caller_number: str = ""
    caller_name: str = ""
    called_number: str = ""
    answered: bool = False

    def call_variables(self) -> dict[str, Any]:
        """Variables a flow starts with: Kamailio's (``dest_xform``, ``caller_cid``) plus the
        call's own (the names ``docs/flows.md`` suggests)."""
        return {
            **self.variables,
            "call_id": self.call_id,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "called_number": self.called_number,
            "account_id": self.account_id,
        }


def header(channel: ChannelData, name: str) -> str | None:
    value = channel.var(HEADER_VAR + name)
    return value.strip() if value else None


def read_context(channel: ChannelData) -> CallContext:
    account = header(channel, "Account")
    if not account or not ACCOUNT_ID.match(account):
        raise ContextError(f"missing or bad X-Sipio-Account: {account!r}")
    target = header(channel, "Target") or ""
    kind, _, target_id = target.partition(":")
    if kind not in TARGET_KINDS or not OBJECT_ID.match(target_id):
        raise ContextError(f"bad X-Sipio-Target: {target!r}")
    version = header(channel, "Flow-Version")
    if version is not None and not (version.isdigit() and int(version) >= 1):
        raise ContextError(f"bad X-Sipio-Flow-Version: {version!r}")
    call_id = channel.var("sip_call_id") or channel.uuid
    if not call_id or not channel.uuid:
        raise ContextError("channel without Unique-ID")
    return CallContext(
        uuid=channel.uuid,
        call_id=call_id,
        account_id=account,
        target_kind=kind,
        target_id=target_id,
        flow_version=int(version) if version else None,
        variables=_variables(header(channel, "Vars")),
        caller_number=channel.get("Caller-Caller-ID-Number") or "",
        caller_name=channel.get("Caller-Caller-ID-Name") or "",
        called_number=channel.get("Caller-Destination-Number") or "",
        answered=channel.answered,
    )


def _variables(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    if len(raw) > MAX_VARS_BYTES:
        raise ContextError("X-Sipio-Vars too large")
    try:
        value = json.loads(raw)
    except ValueError:
        raise ContextError("X-Sipio-Vars is not JSON") from None
    if not isinstance(value, dict):
        raise ContextError("X-Sipio-Vars is not an object")
    return {
        str(k): v for k, v in value.items() if v is None or isinstance(v, str | int | float | bool)
    }
