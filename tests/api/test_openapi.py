"""The OpenAPI document validates, and the live app honours it under property-based testing
(schemathesis drives the real app on a real database: no 5xx, no response off-schema)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.db.migrate import upgrade
from control.settings import Settings
from tests.api.conftest import Api
from tests.harness.postgres import PostgresServer

_numbers = itertools.count(1)


def test_document_is_valid_openapi_31(api: Api) -> None:
    response = api.client.get("/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    for name in ("sip_users", "sip_devices", "dids", "extensions", "queues", "ring_groups",
                 "time_schedules", "call_limits", "sip_trunks", "media_files", "voicemail_boxes",
                 "accounts", "api_keys", "call_flows"):  # fmt: skip
        assert f"/v1/{name}" in document["paths"], name
    assert "/v1/call_flows/{flow_id}/publish" in document["paths"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, stack: Settings
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("fuzz")
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"fuzz_{next(_numbers)}")
    else:
        url = f"sqlite:///{Path(state) / 'config.db'}"
    upgrade(url)
    _, root_key = bootstrap(url)
    app = create_app(Settings(state_dir=state, db_url=url, redis_port=stack.redis_port))
    client = app.test_client()
    headers = {"x-api-key": root_key}
    account = client.post("/v1/accounts", json={"name": "fuzz", "is_reseller": 1}, headers=headers)
    key = client.post(
        "/v1/api_keys",
        json={"name": "fuzz", "scopes": ["*"], "account_id": account.get_json()["id"]},
        headers=headers,
    ).get_json()["key"]
    yield {"app": app, "key": key}


def test_no_server_error_and_no_off_schema_response(fuzzed: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", fuzzed["app"])
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def exercise(case: Any) -> None:
            response = case.call(headers={"x-api-key": fuzzed["key"]})
            statuses.append(response.status_code)
            try:
                case.validate_response(
                    response,
                    checks=[not_a_server_error, response_schema_conformance,
                            content_type_conformance],
                )  # fmt: skip
            except Exception as exc:  # collect every failing operation, not just the first
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:400]}")

        exercise()
    assert operations > 60
    # The fuzzer reached past authentication and validation into real work.
    assert {200, 201, 204} & set(statuses) and 422 in statuses
    assert not failures, "\n".join(sorted(set(failures))[:25])
