"""The control API's health endpoint and error format (RFC 9457), with real stores."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from control.api import create_app
from control.db.migrate import upgrade
from control.settings import Settings
from control.stack.ports import free_port


def get(url: str) -> tuple[int, str, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], json.loads(exc.read())


def test_running_api_is_healthy(stack: Settings) -> None:
    status, content_type, body = get(f"{stack.api_url}/healthz")
    assert status == 200
    assert content_type.startswith("application/json")
    assert body["checks"] == {"config_db": "ok", "redis": "ok"}


def test_unknown_path_is_a_problem_document(stack: Settings) -> None:
    # Under /v1 the credential is checked first (401); elsewhere an unknown path is a 404.
    status, content_type, _ = get(f"{stack.api_url}/v1/no-such-thing")
    assert (status, content_type) == (401, "application/problem+json")
    status, content_type, body = get(f"{stack.api_url}/no-such-thing")
    assert status == 404
    assert content_type == "application/problem+json"
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert "Traceback" not in json.dumps(body)


def test_redis_down_makes_health_503_with_the_failing_store(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, redis_port=free_port(udp=False))  # nobody listens
    upgrade(settings.db_url)
    client = create_app(settings).test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["checks"]["config_db"] == "ok"
    assert body["checks"]["redis"].startswith("error")


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_wrong_method_is_405_problem(stack: Settings, method: str) -> None:
    request = urllib.request.Request(f"{stack.api_url}/healthz", method=method)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert err.value.code == 405
    assert err.value.headers["Content-Type"] == "application/problem+json"
