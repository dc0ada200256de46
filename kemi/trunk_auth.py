"""Answering a carrier's digest challenge (401/407) to an outbound INVITE, in the failure route.

The trunk's password is resolved when the challenge arrives, from the secret store behind
``auth_secret_ref`` (cached per worker for ``cache_ttl_sec``), and turned into the digest HA1
for the challenge's realm right here: uac gets the HA1 (``uac_auth_mode(1)``), so the
password itself never enters Kamailio's shared memory, and the AVP is cleared as soon as the
header is built. Each call answers one challenge: a second one means the carrier refused the
credentials, and the call fails with a trace instead of looping. Nothing here logs a value;
traces carry the trunk id, the realm and the secret reference.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from control.core.routing.model import Trunk
from control.secrets import SecretStoreError

CHALLENGES = (401, 407)
# uac reads the credentials from these AVPs (modparams in kamailio.cfg.tmpl).
USER_AVP = "$avp(sipio_tauth_user)"
REALM_AVP = "$avp(sipio_tauth_realm)"
HA1_AVP = "$avp(sipio_tauth_ha1)"
# Per transaction: the trunk of the outbound branch, and whether a challenge was answered.
TRUNK_AVP = "$avp(sipio_trunk)"
ANSWERED_AVP = "$avp(sipio_tauth_done)"
# The caller's answer when the carrier will not take the trunk's credentials: the fault is the
# platform's configuration, not the caller's, so a server error rather than 401/403.
FAILED = (503, "Trunk Authentication Failed")

_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    realm: str
    algorithm: str  # upper case; MD5 when the carrier names none


def parse_challenge(header: str) -> Challenge | None:
    """A ``WWW-Authenticate``/``Proxy-Authenticate`` value; None unless it is Digest with a
    realm."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(rest)}
    if "realm" not in params:
        return None
    return Challenge(params["realm"], (params.get("algorithm") or "MD5").upper())


@dataclass(frozen=True)
class Answer:
    """What uac needs to build the Authorization header."""

    username: str
    realm: str
    ha1: str


@dataclass(frozen=True)
class Refusal:
    """Why this challenge is not answered; ``outcome`` goes into the ``trunk_auth`` trace."""

    outcome: str
    detail: str = ""


def answer(
    trunk: Trunk | None,
    header: str,
    *,
    already_answered: bool,
    resolve: Callable[[str], str],
) -> Answer | Refusal:
    """Decide how to answer one challenge; ``resolve`` is the store's (may raise)."""
    if trunk is None:
        return Refusal("unknown_trunk")
    if not trunk.auth_username or not trunk.auth_secret_ref:
        return Refusal("no_credentials")
    if already_answered:
        return Refusal("rejected", "the carrier refused the trunk's credentials")
    challenge = parse_challenge(header)
    if challenge is None:
        return Refusal("bad_challenge", "no Digest challenge with a realm")
    if challenge.algorithm != "MD5":
        # Kamailio 5.6's uac computes MD5 digests only.
        return Refusal("unsupported_algorithm", challenge.algorithm)
    try:
        password = resolve(trunk.auth_secret_ref)
    except SecretStoreError as exc:
        return Refusal("secret_unavailable", str(exc))  # names the store and reference only
    return Answer(trunk.auth_username, challenge.realm,
                  ha1(trunk.auth_username, challenge.realm, password))  # fmt: skip


def ha1(username: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
