"""`sipio up / status / down`: one stack per state directory.

The state directory holds everything a stack owns: ``settings.json`` (what every component
reads), ``stack.json`` (the processes started, written before each health wait so that even an
interrupted start can be stopped), ``logs/`` and ``run/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from control.db.migrate import MigrationError, upgrade
from control.settings import Settings
from control.stack.components import Component, Health, StartError, stack_components
from control.stack.ports import in_use
from control.stack.process import ProcessRecord, is_running, log_tail, spawn, stop

STACK_FILE = "stack.json"


class StackError(Exception):
    """The stack could not be started; the message names the component and shows its log."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    address: str
    running: bool
    health: Health
    log: str

    @property
    def ok(self) -> bool:
        return self.running and self.health.ok


def _stack_path(state_dir: Path) -> Path:
    return state_dir / STACK_FILE


def load_records(state_dir: Path) -> list[ProcessRecord]:
    path = _stack_path(state_dir)
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [ProcessRecord.from_json(item) for item in data.get("processes", [])]


def _save_records(state_dir: Path, records: list[ProcessRecord]) -> None:
    path = _stack_path(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"processes": [r.to_json() for r in records]}, indent=2) + "\n")
    tmp.replace(path)


def up(settings: Settings, *, timeout: float = 30.0) -> list[ComponentStatus]:
    state_dir = settings.state_dir
    if any(is_running(r) for r in load_records(state_dir)):
        raise StackError(f"a stack is already running in {state_dir}: run `sipio down` first")
    busy = [
        f"{name} {host}:{port}"
        for name, host, port, udp, tcp in (
            ("sip_port", settings.sip_host, settings.sip_port, True, True),
            ("ng_port", settings.ng_host, settings.ng_port, True, False),
            ("redis_port", settings.redis_host, settings.redis_port, False, True),
            ("api_port", settings.api_host, settings.api_port, False, True),
        )
        if in_use(host, port, udp=udp, tcp=tcp)
    ]
    if busy:
        raise StackError(
            "ports already in use: " + ", ".join(busy) + " (choose others or use --free-ports)"
        )
    for directory in (state_dir, settings.log_dir, settings.run_dir):
        directory.mkdir(parents=True, exist_ok=True)
    settings.save()
    try:
        upgrade(settings.db_url)
    except MigrationError as exc:
        raise StackError(f"config database: {exc}") from None

    records: list[ProcessRecord] = []
    statuses: list[ComponentStatus] = []
    try:
        for component in stack_components(settings):
            component.prepare()
            record = spawn(
                component.name,
                component.argv(),
                component.env(),
                component.log_path,
                cwd=state_dir,
            )
            records.append(record)
            _save_records(state_dir, records)
            health = wait_healthy(component, record, timeout)
            statuses.append(
                ComponentStatus(
                    component.name, record.pid, component.address, True, health, record.log
                )
            )
    except (StackError, StartError, OSError) as exc:
        stopped = _teardown(state_dir, records)
        left = [name for name, gone in stopped if not gone]
        outcome = (
            f"\nCOULD NOT STOP: {', '.join(left)}"
            if left
            else "\nEverything this start launched has been stopped."
        )
        raise StackError(f"{exc}{outcome}") from None
    except BaseException:
        _teardown(state_dir, records)  # Ctrl-C during start leaves nothing behind either
        raise
    return statuses


def wait_healthy(component: Component, record: ProcessRecord, timeout: float) -> Health:
    deadline = time.monotonic() + timeout
    while True:
        if not is_running(record):
            raise StackError(
                f"{component.name} exited during start-up; last lines of {record.log}:\n"
                + log_tail(record.log)
            )
        health = component.check()
        if health.ok:
            return health
        if time.monotonic() >= deadline:
            raise StackError(
                f"{component.name} not healthy after {timeout:.0f}s ({health.detail}); "
                f"last lines of {record.log}:\n" + log_tail(record.log)
            )
        time.sleep(0.1)


def _teardown(state_dir: Path, records: list[ProcessRecord]) -> list[tuple[str, bool]]:
    results = [(record.name, stop(record)) for record in reversed(records)]
    if all(gone for _, gone in results):
        _stack_path(state_dir).unlink(missing_ok=True)
    return results


def down(state_dir: Path) -> list[tuple[str, bool]]:
    """Stop every process `up` recorded, last started first. Returns (name, fully stopped)."""
    return _teardown(state_dir, load_records(state_dir))


def status(state_dir: Path) -> list[ComponentStatus]:
    settings_path = state_dir / "settings.json"
    records = {r.name: r for r in load_records(state_dir)}
    if not settings_path.exists():
        return []
    settings = Settings.load(settings_path)
    result = []
    for component in stack_components(settings):
        record = records.get(component.name)
        running = record is not None and is_running(record)
        health = component.check() if running else Health(False, "not running")
        result.append(
            ComponentStatus(
                component.name,
                record.pid if record else None,
                component.address,
                running,
                health,
                str(component.log_path),
            )
        )
    return result
