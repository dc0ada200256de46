"""Flask application factory."""

from __future__ import annotations

import time
from typing import Any

import redis
from flask import Flask, Response, g, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from control.api import accounts, crud, flows, openapi, problems
from control.api.auth import authenticate, signing_key
from control.db import make_engine
from control.settings import Settings

PUBLIC = ("/healthz", "/v1/openapi.json")


def create_app(settings: Settings) -> Flask:
    app = Flask("sipio")
    app.config["SIPIO_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.config["TOKEN_KEY"] = signing_key(settings.state_dir)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    engine = make_engine(settings.db_url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    live = redis.Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    problems.install(app)
    document: dict[str, Any] = openapi.build()

    @app.before_request
    def open_session() -> None:
        g.db = sessions()
        if request.path.startswith("/v1/") and request.path not in PUBLIC:
            g.principal = authenticate(g.db, app.config["TOKEN_KEY"])

    @app.after_request
    def finish(response: Response) -> Response:
        session = g.pop("db", None)
        if session is None:
            return response
        try:
            if response.status_code < 400:
                session.commit()
            else:
                session.rollback()
        except IntegrityError:
            session.rollback()
            return problems.problem(409, "Conflict", "the change conflicts with existing rows")
        finally:
            session.close()
        return response

    @app.teardown_request
    def close_session(_exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.rollback()
            session.close()

    @app.errorhandler(IntegrityError)
    def _integrity(_exc: IntegrityError) -> Response:
        return problems.problem(409, "Conflict", "the change conflicts with existing rows")

    @app.errorhandler(DBAPIError)
    def _dbapi(exc: DBAPIError) -> Response:
        if exc.connection_invalidated or isinstance(exc.orig, ConnectionError):
            return problems.problem(503, "Service Unavailable", "config database unavailable")
        return problems.problem(422, "Unprocessable Content", "a value cannot be stored")

    @app.get("/v1/openapi.json")
    def openapi_json() -> Response:
        return jsonify(document)

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

    crud.install(app)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(flows.bp)
    return app
