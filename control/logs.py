"""The one logging set-up of every sipio process: CLI commands, the API workers, the collector,
the reconciler, the ESL controller and the KEMI code inside Kamailio.

Whatever leaves a process as a log line passes the secret redactor (``control.secrets``): the
values this process stored or resolved, and fields whose names say they are secret, are
masked in structlog events before rendering and in the rendered line after it (tracebacks
included); stdlib loggers (libraries, gunicorn) and uncaught exceptions get the same mask.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import TextIO

import structlog

from control.secrets.redact import REDACTOR, Redactor

STDLIB_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MaskingFormatter(logging.Formatter):
    """Formats with ``inner`` (or the sipio format), then masks the whole text: the message,
    its arguments and any traceback the record carries."""

    def __init__(self, inner: logging.Formatter | None = None, redactor: Redactor = REDACTOR):
        super().__init__(STDLIB_FORMAT)
        self.inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record) if self.inner else super().format(record)
        return self.redactor.text(text)


def configure(
    *, json_lines: bool = True, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Install the chain; calling it again replaces it (a process configures once, early)."""
    out = stream or sys.stderr
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,  # the event dict (its traceback is text by now), before rendering
            renderer,
            REDACTOR.rendered,  # the line, with tracebacks rendered into it
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "sipio", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(out)
    handler.sipio = True  # type: ignore[attr-defined]
    handler.setFormatter(MaskingFormatter())
    root.addHandler(handler)
    mask_handlers(*logging.Logger.manager.loggerDict)
    sys.excepthook = _masked_excepthook


def mask_handlers(*logger_names: str) -> None:
    """Mask the handlers others set up (gunicorn's error and access logs, say)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        for handler in getattr(logger, "handlers", ()):
            if not isinstance(handler.formatter, MaskingFormatter):
                handler.setFormatter(MaskingFormatter(handler.formatter or logging.Formatter()))


def _masked_excepthook(
    kind: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """An exception nobody caught ends the process as a masked log line, not a raw traceback."""
    structlog.get_logger("sipio").critical("uncaught exception", exc_info=exc)
