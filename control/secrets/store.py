"""The secret store consumers use: ``resolve(ref)`` with a short cache, writes that invalidate.

A resolved value is served from this process's cache for ``cache_ttl`` seconds, also while the
backend is down; after that the caller gets SecretStoreUnavailable naming the store. After a
failure the backend is not asked again for ``retry_after`` seconds, so a call path never waits
on an unreachable Vault more than once per interval.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import TypeVar

from control.secrets.backend import Backend, Secret
from control.secrets.errors import SecretStoreUnavailable
from control.secrets.redact import REDACTOR, Redactor
from control.secrets.refs import SecretRef

T = TypeVar("T")


class SecretStore:
    def __init__(
        self,
        backend: Backend,
        *,
        cache_ttl: float = 30.0,
        retry_after: float = 1.0,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self.backend = backend
        self.cache_ttl = cache_ttl
        self.retry_after = retry_after
        self.redactor = redactor
        self._cache: dict[str, tuple[str, float]] = {}
        self._recheck: set[str] = set()  # cached, but to be asked again (see revalidate)
        self._down_until = 0.0
        self._down_reason = ""

    @property
    def describe(self) -> str:
        return self.backend.describe

    @property
    def kind(self) -> str:
        return self.backend.kind

    def resolve(self, ref: str) -> str:
        """The current value behind ``ref``; what trunk auth and PIN checks call."""
        now = time.monotonic()
        hit = self._cache.get(ref)
        if hit is not None and hit[1] <= now:
            self._cache.pop(ref, None)
            hit = None
        if hit is not None and ref not in self._recheck:
            return hit[0]
        self._recheck.discard(ref)
        try:
            value = self._guarded(lambda: self.backend.read(SecretRef.parse(ref))).value
        except SecretStoreUnavailable:
            if hit is None:
                raise
            return hit[0]  # asked to re-check, but the store is down: the value is still fresh
        self.redactor.add(value)
        if self.cache_ttl > 0:
            self._cache[ref] = (value, now + self.cache_ttl)
        return value

    def matches(self, ref: str, candidate: str) -> bool:
        """Constant-time comparison of a caller's entry (a PIN) with the stored value."""
        return hmac.compare_digest(self.resolve(ref).encode(), candidate.encode())

    def read(self, ref: str, version: int | None = None) -> Secret:
        """One version, uncached (audits, rollbacks)."""
        secret = self._guarded(lambda: self.backend.read(SecretRef.parse(ref), version))
        self.redactor.add(secret.value)
        return secret

    def put(self, ref: str, value: str, *, cas: int | None = None) -> int:
        """Write a new version; ``cas`` as KV v2 (0: only if absent, n: only if n is current)."""
        self.redactor.add(value)
        version = self._guarded(lambda: self.backend.write(SecretRef.parse(ref), value, cas))
        self._cache.pop(ref, None)
        return version

    def versions(self, ref: str) -> list[int]:
        return self._guarded(lambda: self.backend.versions(SecretRef.parse(ref)))

    def delete(self, ref: str) -> None:
        self._cache.pop(ref, None)
        self._guarded(lambda: self.backend.delete(SecretRef.parse(ref)))

    def forget(self, ref: str | None = None) -> None:
        """Drop cached values (one, or all)."""
        if ref is None:
            self._cache.clear()
            self._recheck.clear()
        else:
            self._cache.pop(ref, None)
            self._recheck.discard(ref)

    def revalidate(self) -> None:
        """Ask the store again at the next resolve of every cached value (e.g. when the config
        version moves: a value may have been rotated), but keep serving a value until its TTL
        if the store cannot answer then."""
        self._recheck = set(self._cache)

    def ping(self) -> None:
        self._guarded(self.backend.ping)

    def _guarded(self, action: Callable[[], T]) -> T:
        now = time.monotonic()
        if now < self._down_until:
            raise SecretStoreUnavailable(self._down_reason)
        try:
            return action()
        except SecretStoreUnavailable as exc:
            self._down_until = now + self.retry_after
            self._down_reason = str(exc)
            raise
