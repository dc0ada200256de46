"""Masking secrets wherever text leaves a process: logs, traces, CDRs, error messages.

Two rules: a value the process has seen as a secret (stored or resolved through the store) is
masked wherever it appears, and a field whose name says it is secret (``*_password``, ``pin``,
``*token``, ``*secret``, authorization headers, API keys) is masked whatever it holds.
References (``*_secret_ref``) are not secret and stay readable.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import structlog

MASK = "***"
SECRET_KEY = re.compile(
    r"(password|passwd|pin|token|secret|authorization|api[_-]?key)$", re.IGNORECASE
)
MIN_LENGTH = 4  # shorter values would mask half of every log line
REMEMBERED = 4096  # the most recent values are enough: a process uses few secrets at a time


class Redactor:
    def __init__(self) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None) -> None:
        if not value or len(value) < MIN_LENGTH:
            return
        self._values[value] = None
        self._values.move_to_end(value)
        while len(self._values) > REMEMBERED:
            self._values.popitem(last=False)
        self._pattern = None

    def forget(self) -> None:
        """Drop every remembered value (a new process role, or a test starting clean)."""
        self._values.clear()
        self._pattern = None

    def text(self, text: str) -> str:
        if not self._values:
            return text
        if self._pattern is None:
            longest_first = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, longest_first)))
        return self._pattern.sub(MASK, text)

    def data(self, value: Any) -> Any:
        """A copy of a JSON-like structure (a CDR, a span's attributes) with secrets masked."""
        if isinstance(value, Mapping):
            return {
                k: MASK if _secret_key(k) and v not in (None, "") else self.data(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.data(item) for item in value]
        if isinstance(value, tuple):  # kept a tuple: structlog's exc_info is one
            return tuple(self.data(item) for item in value)
        if isinstance(value, str):
            return self.text(value)
        return value

    # structlog processors: one on the event dict, one on the rendered line (tracebacks
    # rendered with their local variables are text only after the renderer).
    def __call__(self, _logger: Any, _method: str, event: Any) -> Any:
        return self.data(event)

    def rendered(self, _logger: Any, _method: str, line: Any) -> Any:
        return self.text(line) if isinstance(line, str) else line


def _secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(SECRET_KEY.search(key))


REDACTOR = Redactor()  # per process: what the secret store has handed out here


class RedactingFilter(logging.Filter):
    """For stdlib loggers (gunicorn, libraries): the formatted message, masked."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        return True


def install_structlog(redactor: Redactor = REDACTOR) -> None:
    """Wrap the configured structlog chain with both processors; calling it again is a no-op."""
    processors = list(structlog.get_config()["processors"])
    if redactor in processors:
        return
    structlog.configure(processors=[redactor, *processors, redactor.rendered])
