"""``python -m control.cdr``: the collector as ``sipio up`` starts it (settings from
``SIPIO_SETTINGS``). SIGTERM and SIGINT stop it between two reads; an uncommitted batch is
simply read again by the next start."""

from __future__ import annotations

import signal
import threading

from control import logs
from control.cdr.collector import Collector
from control.settings import Settings


def serve(settings: Settings, *, json_lines: bool = True) -> None:
    logs.configure(json_lines=json_lines)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Collector(settings).run(stop)


if __name__ == "__main__":
    serve(Settings.from_env())
