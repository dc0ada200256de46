"""httpRequest commands: strict budget, no redirects, capped bodies, public targets only."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from esl.http_command import HttpPolicy, HttpRunner


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if status == 302:
                self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/slow":
                time.sleep(2)
            if self.path == "/redirect":
                return self._reply(302, b"")
            if self.path == "/big":
                return self._reply(200, b"x" * 70_000, "text/plain")
            if self.path == "/fail":
                return self._reply(503, b'{"error": "down"}')
            return self._reply(
                200, json.dumps({"path": self.path, "ua": self.headers["User-Agent"]}).encode()
            )

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            self._reply(
                201, json.dumps({"got": body, "type": self.headers["Content-Type"]}).encode()
            )

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def run(args: dict[str, Any], *, allow_private: bool = True) -> tuple[str, dict[str, Any]]:
    async def main() -> tuple[str, dict[str, Any]]:
        runner = HttpRunner(HttpPolicy(allow_private=allow_private))
        try:
            return await runner.run(args)
        finally:
            runner.close()

    return asyncio.run(main())


def test_json_get_and_post(server: str) -> None:
    outcome, data = run({"method": "GET", "url": server + "/a?b=1", "timeoutSec": 2})
    assert outcome == "response" and data["status"] == 200
    assert data["body"] == {"path": "/a?b=1", "ua": "sipio-flow/1"}
    posted = run({"method": "POST", "url": server + "/p", "body": {"n": 1}, "timeoutSec": 2})
    assert posted[1]["status"] == 201
    assert posted[1]["body"] == {"got": {"n": 1}, "type": "application/json"}


def test_errors_are_answers_and_redirects_are_not_followed(server: str) -> None:
    assert run({"url": server + "/fail"})[1]["status"] == 503
    assert run({"url": server + "/redirect"})[1]["status"] == 302
    outcome, data = run({"url": server + "/big"})
    assert outcome == "error" and "larger than" in data["reason"]


def test_the_budget_is_a_wall_clock_limit(server: str) -> None:
    began = time.monotonic()
    assert run({"url": server + "/slow", "timeoutSec": 0.3}) == ("timeout", {})
    assert time.monotonic() - began < 1.0


def test_private_targets_and_other_schemes_are_refused(server: str) -> None:
    outcome, data = run({"url": server + "/a"}, allow_private=False)
    assert outcome == "error" and "127.0.0.1 refused" in data["reason"]
    metadata = run({"url": "http://169.254.169.254/latest"}, allow_private=False)
    assert metadata[0] == "error" and "refused" in metadata[1]["reason"]
    assert run({"url": "file:///etc/passwd"})[0] == "error"
