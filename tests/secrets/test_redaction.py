"""Log lines, tracebacks and records (CDRs, spans) leave a process with secrets masked."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from control.secrets import (
    MASK,
    REDACTOR,
    RedactingFilter,
    Redactor,
    install_structlog,
    open_store,
)
from control.settings import Settings

# Kept away from the raising frame: rich tracebacks also print the source lines around it,
# and a literal in test source is not what this test is about.
STORED = "Logged-" + "Passw0rd-9"
BY_KEY = "Chosen-" + "By-Key-1"


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    REDACTOR.forget()  # values other tests' stores handed out in this process
    yield
    structlog.configure(**saved)


def test_known_values_and_secret_keys_are_masked_references_are_not() -> None:
    redactor = Redactor()
    redactor.add("Known-Secret-42")
    redactor.add("12")  # too short to mask safely
    record = {
        "event": "dialled with Known-Secret-42 in the URI",
        "auth_password": "anything",
        "pin": 1234,
        "webhook_token": "tok",
        "x-api-key": "sk_abc",
        "Authorization": "Bearer xyz",
        "auth_secret_ref": "kv:trunk:tr_1:auth_password",
        "nested": [{"sip_password": "p", "note": "Known-Secret-42!"}],
        "empty_pin": None,
        "duration": 12,
    }
    assert redactor.data(record) == {
        "event": f"dialled with {MASK} in the URI",
        "auth_password": MASK,
        "pin": MASK,
        "webhook_token": MASK,
        "x-api-key": MASK,
        "Authorization": MASK,
        "auth_secret_ref": "kv:trunk:tr_1:auth_password",
        "nested": [{"sip_password": MASK, "note": f"{MASK}!"}],
        "empty_pin": None,
        "duration": 12,
    }


def test_structlog_lines_and_their_tracebacks_are_masked(
    tmp_path: Path, restore_structlog: None
) -> None:
    out = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.dev.ConsoleRenderer(colors=False)],
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )  # fmt: skip
    install_structlog()
    install_structlog()  # idempotent
    store = open_store(Settings(state_dir=tmp_path))
    store.put("kv:trunk:tr_01log:auth_password", STORED)
    log = structlog.get_logger("test")
    log.info("registering", password=BY_KEY, detail=f"uses {STORED}")
    try:
        password_in_a_local = str(STORED)
        raise RuntimeError(f"carrier refused {password_in_a_local}")
    except RuntimeError:
        log.exception("outbound auth failed")
    try:
        raise ValueError(f"as a tuple {STORED}")
    except ValueError:
        caught = sys.exc_info()
    log.error("exc_info given as a tuple", exc_info=caught)  # outside the except block
    text = out.getvalue()
    assert "ValueError: as a tuple" in text  # the tuple reached the renderer intact
    assert "registering" in text and "outbound auth failed" in text and "RuntimeError" in text
    assert "password_in_a_local" in text  # rich printed the frame's locals...
    assert STORED not in text and BY_KEY not in text  # ...with the value masked
    assert MASK in text


def test_stdlib_loggers_through_the_filter() -> None:
    redactor = Redactor()
    redactor.add("Gunicorn-Seen-7")
    out = io.StringIO()
    logger = logging.getLogger("sipio.test.redaction")
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    logger.addFilter(RedactingFilter(redactor))
    logger.propagate = False
    try:
        logger.warning("body had %s in it", "Gunicorn-Seen-7")
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == f"body had {MASK} in it\n"
