"""Flask application factory."""

from __future__ import annotations

import time
from typing import Any

import redis
import structlog
from flask import Flask, Response, g, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from control.api import (
    accounts,
    calls,
    conferences,
    crud,
    flows,
    hooks,
    openapi,
    problems,
    voicemail,
)
from control.api import live as live_state
from control.api.auth import authenticate, signing_key
from control.db import make_engine
from control.secrets import (
    CasMismatch,
    SecretAccessDenied,
    SecretNotFound,
    SecretStoreError,
    SecretStoreUnavailable,
    open_store,
)
from control.settings import Settings

PUBLIC = ("/healthz", "/v1/openapi.json")
log = structlog.get_logger("sipio.api")
STORE_LABEL = {"vault": "OpenBao/Vault", "local": "local encrypted store"}


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
    document: dict[str, Any] = hooks.document_secret_routes(openapi.build())
    # Write-only secrets go to the store at flush; rows keep references (docs/secrets.md).
    secret_store = open_store(settings)
    app.config["ROW_SECRETS"] = hooks.install_secrets(sessions, secret_store)

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

    @app.errorhandler(SecretStoreError)
    def _secret_store(exc: SecretStoreError) -> Response:
        """Name the store, not its address: the full reason is in the API log."""
        store = f"the secret store ({STORE_LABEL.get(secret_store.kind, secret_store.kind)})"
        if isinstance(exc, CasMismatch):
            return problems.problem(
                409, "Conflict", "expected_version is not the current version",
                field="expected_version",
            )  # fmt: skip
        if isinstance(exc, SecretNotFound):
            return problems.problem(404, "Not Found", f"{store} has no such secret")
        log.warning("secret store failure", error=str(exc), error_type=type(exc).__name__)
        if isinstance(exc, SecretStoreUnavailable):
            detail = f"{store} is unavailable; try again later"
        elif isinstance(exc, SecretAccessDenied):
            detail = f"{store} refused the request; an operator must check its credentials"
        else:
            detail = f"{store} failed; an operator will find the reason in the API log"
        return problems.problem(503, "Service Unavailable", detail, secret_store=secret_store.kind)

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
    app.register_blueprint(calls.bp)
    app.register_blueprint(live_state.bp)
    app.register_blueprint(voicemail.bp)
    app.register_blueprint(conferences.bp)
    return app
