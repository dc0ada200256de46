"""``http`` commands (the flow's httpRequest node), run by the controller under a strict budget.

Stdlib ``urllib`` in a bounded thread pool: one request per node visit does not justify an
HTTP client dependency, and a thread keeps the event loop free while a slow server is read.
The budget is enforced twice: as the socket timeout and as a wall-clock limit around the
whole request (a trickling server cannot stretch it). Redirects are not followed (a 3xx is the
answer), bodies are capped, and by default the target must be a public address: a flow author
must not reach the platform's own services or a cloud metadata endpoint through a call.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_BUDGET = 10.0


@dataclass(frozen=True)
class HttpPolicy:
    allow_private: bool = False  # loopback / RFC 1918 / link-local targets (tests, labs)
    max_body: int = 64 * 1024
    user_agent: str = "sipio-flow/1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class HttpRunner:
    def __init__(self, policy: HttpPolicy | None = None, *, workers: int = 32) -> None:
        self.policy = policy or HttpPolicy()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="flow-http")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, args: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``response`` {status, headers, body} | ``timeout`` | ``error`` {reason}."""
        budget = min(max(float(args.get("timeoutSec") or 5), 0.1), MAX_BUDGET)
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + budget
        try:
            async with asyncio.timeout(budget):  # not wait_for: 3.11's can swallow a cancel
                return await loop.run_in_executor(self._pool, _fetch, args, self.policy, deadline)
        except TimeoutError:
            return "timeout", {}


def _fetch(
    args: Mapping[str, Any], policy: HttpPolicy, deadline: float
) -> tuple[str, dict[str, Any]]:
    url = str(args.get("url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "error", {"reason": "url must be http(s) with a host"}
    try:
        refused = _refused(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError as exc:
        return "error", {"reason": f"cannot resolve {parts.hostname}: {exc}"}
    if refused and not policy.allow_private:
        return "error", {"reason": f"egress to {refused} refused"}
    body = args.get("body")
    data = None
    headers = {
        "User-Agent": policy.user_agent,
        **{str(k): str(v) for k, v in (args.get("headers") or {}).items()},
    }
    if body is not None:
        if isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
    method = str(args.get("method") or "GET").upper()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    timeout = max(deadline - time.monotonic(), 0.05)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return _response(response.status, response.headers, response, policy)
    except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx: still an answer
        return _response(exc.code, exc.headers, exc, policy)
    except TimeoutError:
        return "timeout", {}
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return "timeout", {}
        return "error", {"reason": str(exc.reason)}
    except (OSError, ValueError) as exc:
        return "error", {"reason": f"{type(exc).__name__}: {exc}"}


def _refused(host: str, port: int) -> str | None:
    """The first resolved address that is not public (checked before connecting)."""
    for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return str(address)
    return None


def _response(
    status: int, headers: Any, stream: Any, policy: HttpPolicy
) -> tuple[str, dict[str, Any]]:
    raw = stream.read(policy.max_body + 1) if stream is not None else b""
    if len(raw) > policy.max_body:
        return "error", {"reason": f"response larger than {policy.max_body} bytes"}
    text = raw.decode("utf-8", "replace")
    body: Any = text
    content_type = (headers.get("Content-Type") or "") if headers is not None else ""
    if "json" in content_type:
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    found = {k: v for k, v in headers.items()} if headers is not None else {}
    return "response", {"status": status, "headers": found, "body": body}
