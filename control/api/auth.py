"""Who is calling: API keys (``x-api-key``) and short-lived bearer tokens (HS256 JWT).

The account always comes from the credential. A key of a reseller reaches its subtree, the
platform key reaches every account, any other key only its own account.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from flask import g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from control.api.errors import Forbidden, Unauthorized
from control.core.tenancy import AccountNode, subtree
from control.db import models as m

# Spec scopes (SPEC 16.2) plus one per provisioning area; "*" grants all.
SCOPES = (
    "cdr", "agents", "queues", "numbers", "dnc", "campaign", "webhooks", "messaging",
    "caller_id", "wallboard",
    "accounts", "users", "trunks", "flows", "ring_groups", "voicemail", "conferences",
    "schedules", "limits", "media", "keys",
)  # fmt: skip
ALL = "*"
KEY_PREFIX = "sk_"
TOKEN_ISSUER = "sipio"


@dataclass(frozen=True)
class Principal:
    account_id: str
    scopes: frozenset[str]
    via: str  # "key" | "bearer"
    key_id: str
    is_platform: bool
    accounts: frozenset[str] | None  # reachable account ids; None = every account

    def has(self, scope: str) -> bool:
        return ALL in self.scopes or scope in self.scopes

    def reaches(self, account_id: str | None) -> bool:
        return account_id is not None and (self.accounts is None or account_id in self.accounts)


def new_api_key() -> tuple[str, str, str]:
    """(full key shown once, public prefix, stored hash)."""
    prefix = KEY_PREFIX + secrets.token_hex(6)
    key = f"{prefix}.{secrets.token_urlsafe(32)}"
    return key, prefix, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def signing_key(state_dir: Path) -> bytes:
    """The HS256 secret, created once with mode 0600 beside the stack's other state."""
    path = state_dir / "secrets" / "api-token.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker created it first
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def mint_token(principal: Principal, scopes: frozenset[str], ttl: int, key: bytes) -> str:
    now = int(time.time())
    claims = {
        "iss": TOKEN_ISSUER,
        "sub": principal.account_id,
        "kid": principal.key_id,
        "scopes": sorted(scopes),
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def authenticate(session: Session, token_key: bytes) -> Principal:
    if "api_key" in request.args or "token" in request.args:
        raise Unauthorized("credentials are accepted in headers only")
    api_key = request.headers.get("x-api-key")
    bearer = request.headers.get("Authorization", "")
    if api_key:
        account_id, scopes, key_id = _from_key(session, api_key)
        via = "key"
    elif bearer.lower().startswith("bearer "):
        account_id, scopes, key_id = _from_token(session, bearer[7:].strip(), token_key)
        via = "bearer"
    else:
        raise Unauthorized("send an API key in x-api-key or a token in Authorization: Bearer")
    account = session.get(m.Account, account_id)
    if account is None:
        raise Unauthorized("credential of an account that no longer exists")
    if account.status != "active":
        raise Forbidden(f"account is {account.status}")
    return Principal(
        account_id=account.id,
        scopes=frozenset(scopes),
        via=via,
        key_id=key_id,
        is_platform=bool(account.is_platform),
        accounts=_reachable(session, account),
    )


def _from_key(session: Session, key: str) -> tuple[str, list[str], str]:
    prefix = key.split(".", 1)[0]
    row = session.scalar(select(m.ApiKey).where(m.ApiKey.prefix == prefix))
    if (
        row is None
        or row.revoked_at is not None
        or not hmac.compare_digest(row.key_hash, hash_key(key))
    ):
        raise Unauthorized("invalid API key")
    now = int(time.time())
    if row.last_used_at is None or now - row.last_used_at > 60:
        row.last_used_at = now  # coarse, so reads do not turn into a write per request
    return row.account_id, list(row.scopes), row.id


def _from_token(session: Session, token: str, key: bytes) -> tuple[str, list[str], str]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["HS256"], issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "sub", "kid"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid token") from None
    minted_by = session.get(m.ApiKey, str(claims["kid"]))
    if minted_by is None or minted_by.revoked_at is not None:
        raise Unauthorized("the key that issued this token was revoked")
    return str(claims["sub"]), [str(s) for s in claims.get("scopes", [])], minted_by.id


def _reachable(session: Session, account: m.Account) -> frozenset[str] | None:
    if account.is_platform:
        return None
    if not account.is_reseller:
        return frozenset({account.id})
    nodes = [
        AccountNode(id_, parent, bool(reseller))
        for id_, parent, reseller in session.execute(
            select(m.Account.id, m.Account.parent_id, m.Account.is_reseller)
        )
    ]
    return frozenset(subtree(account.id, nodes))


def require(scope: str) -> Principal:
    principal: Principal = g.principal
    if not principal.has(scope):
        raise Forbidden(f"this credential lacks the scope {scope!r}", required_scope=scope)
    return principal
