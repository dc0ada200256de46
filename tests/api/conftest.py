"""The provisioning API on a real config database: every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from control.api import create_app
from control.api.bootstrap import bootstrap
from control.db.migrate import upgrade
from control.settings import Settings
from tests.harness.postgres import PostgresServer

_db_numbers = itertools.count(1)


@dataclass
class Api:
    app: Flask
    client: FlaskClient
    root_key: str
    root_account: str
    db_url: str

    def call(self, method: str, path: str, key: str, body: Any = None, **kw: Any) -> Any:
        response = self.client.open(
            path, method=method, json=body, headers={"x-api-key": key}, **kw
        )
        return response

    def ok(self, method: str, path: str, key: str, body: Any = None) -> dict[str, Any]:
        response = self.call(method, path, key, body)
        assert response.status_code in (200, 201), (method, path, response.get_json())
        data: dict[str, Any] = response.get_json()
        return data

    def key_for(self, account_id: str, scopes: list[str] | None = None) -> str:
        body = {"name": "test", "scopes": scopes or ["*"], "account_id": account_id}
        return str(self.ok("POST", "/v1/api_keys", self.root_key, body)["key"])


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.create_database(f"api_{next(_db_numbers)}")
    return f"sqlite:///{tmp_path / 'config.db'}"


@pytest.fixture
def api(db_url: str, tmp_path: Path, stack: Settings) -> Iterator[Api]:
    settings = Settings(state_dir=tmp_path / "state", db_url=db_url, redis_port=stack.redis_port)
    upgrade(db_url)
    account, key = bootstrap(db_url)
    app = create_app(settings)
    yield Api(app, app.test_client(), key, account, db_url)
