"""Flask application factory."""

from __future__ import annotations

import time
from typing import Any

import redis
from flask import Flask, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from control.api import problems
from control.db import make_engine
from control.settings import Settings


def create_app(settings: Settings) -> Flask:
    app = Flask("sipio")
    app.config["SIPIO_SETTINGS"] = settings
    engine = make_engine(settings.db_url)
    live = redis.Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    problems.install(app)

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness and readiness in one: the API is useless without its two stores."""
        checks: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["config_db"] = "ok"
        except SQLAlchemyError as exc:
            checks["config_db"] = f"error: {type(exc).__name__}"
        try:
            live.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        healthy = all(value == "ok" for value in checks.values())
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        if not healthy:
            return problems.problem(
                503, "Service Unavailable", "a backing store is down", checks=checks
            )
        return jsonify(status="ok", checks=checks, elapsed_ms=elapsed_ms)

    return app
