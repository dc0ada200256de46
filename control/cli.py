"""The ``sipio`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from control import logs
from control.db.migrate import MigrationError, current_revision, head_revision, upgrade
from control.settings import Settings
from control.stack import supervisor
from control.stack.ports import free_port, free_udp_range

DEFAULT_STATE_DIR = "./.sipio"

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    envvar="SIPIO_STATE_DIR",
    help="Directory holding the stack's settings, logs, pids and embedded databases.",
)


@click.group()
def main() -> None:
    """sipio: multi-tenant SIP platform on Kamailio, rtpengine and FreeSWITCH."""
    logs.configure(json_lines=False)


def _rtp_range(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        low, high = (int(part) for part in value.split("-", 1))
    except ValueError:
        raise click.BadParameter("expected LOW-HIGH, e.g. 30000-30999") from None
    return low, high


@main.command()
@state_dir_option
@click.option("--sip-port", type=int, help="Kamailio UDP+TCP port [default 5060].")
@click.option("--ng-port", type=int, help="rtpengine ng control port [default 22222].")
@click.option("--redis-port", type=int, help="Port of the stack's own Redis [default 16379].")
@click.option("--api-port", type=int, help="Control API port [default 8080].")
@click.option("--rtp-ports", help="RTP port range LOW-HIGH [default 30000-30999].")
@click.option(
    "--free-ports", is_flag=True, help="Pick free loopback ports for every port not given."
)
@click.option("--db-url", envvar="SIPIO_DB_URL", help="Config DB URL [default SQLite in state].")
@click.option("--redis-persistence", is_flag=True, help="Keep Redis data across restarts (AOF).")
@click.option("--kamailio-children", type=int, help="Kamailio UDP/TCP worker processes.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per start.")
def up(
    state_dir: Path,
    sip_port: int | None,
    ng_port: int | None,
    redis_port: int | None,
    api_port: int | None,
    rtp_ports: str | None,
    free_ports: bool,
    db_url: str | None,
    redis_persistence: bool,
    kamailio_children: int | None,
    timeout: float,
) -> None:
    """Start Redis, rtpengine, Kamailio (KEMI) and the control API; return once all are healthy."""
    chosen: dict[str, object] = {"state_dir": state_dir, "redis_persistence": redis_persistence}
    ports = {
        "sip_port": sip_port,
        "ng_port": ng_port,
        "redis_port": redis_port,
        "api_port": api_port,
    }
    for name, port in ports.items():
        if port is not None:
            chosen[name] = port
        elif free_ports:
            chosen[name] = free_port(udp=name in ("sip_port", "ng_port"))
    rtp = _rtp_range(rtp_ports)
    if rtp is None and free_ports:
        span = free_udp_range(200)
        rtp = (span.start, span.stop - 1)
    if rtp is not None:
        chosen["rtp_port_min"], chosen["rtp_port_max"] = rtp
    if db_url:
        chosen["db_url"] = db_url
    if kamailio_children:
        chosen["kamailio_children"] = kamailio_children
    try:
        settings = Settings.model_validate(chosen)
    except ValidationError as exc:
        raise click.UsageError(_validation_message(exc)) from None
    try:
        statuses = supervisor.up(settings, timeout=timeout)
    except supervisor.StackError as exc:
        click.echo(f"sipio up failed: {exc}", err=True)
        sys.exit(1)
    _print_table(statuses)
    click.echo(f"\nstack running in {settings.state_dir}; stop it with: sipio down")


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors()
    )


@main.command()
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop exactly the processes `sipio up` started in this state directory."""
    results = supervisor.down(state_dir.resolve())
    if not results:
        click.echo(f"no stack recorded in {state_dir}")
        return
    for name, gone in results:
        click.echo(f"{name:<10} {'stopped' if gone else 'STILL RUNNING'}")
    if not all(gone for _, gone in results):
        sys.exit(1)


@main.command()
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(state_dir: Path, as_json: bool) -> None:
    """Show each component's pid, address and health. Exit 0 only when all are healthy."""
    statuses = supervisor.status(state_dir.resolve())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "state_dir": str(state_dir.resolve()),
                    "healthy": bool(statuses) and all(s.ok for s in statuses),
                    "components": [
                        {
                            "name": s.name,
                            "pid": s.pid,
                            "address": s.address,
                            "running": s.running,
                            "healthy": s.ok,
                            "detail": s.health.detail,
                            "log": s.log,
                        }
                        for s in statuses
                    ],
                },
                indent=2,
            )
        )
    elif not statuses:
        click.echo(f"no stack in {state_dir}")
    else:
        _print_table(statuses)
    if not statuses or not all(s.ok for s in statuses):
        sys.exit(1)


def _print_table(statuses: list[supervisor.ComponentStatus]) -> None:
    click.echo(f"{'COMPONENT':<10} {'PID':>7}  {'STATE':<9} {'ADDRESS':<28} DETAIL")
    for s in statuses:
        state = "healthy" if s.ok else ("running" if s.running else "down")
        pid = str(s.pid) if s.pid else "-"
        click.echo(f"{s.name:<10} {pid:>7}  {state:<9} {s.address:<28} {s.health.detail}")


@main.group()
def db() -> None:
    """Config database schema."""


@db.command("upgrade")
@state_dir_option
@click.option("--db-url", envvar="SIPIO_DB_URL", help="Defaults to the stack's configured DB.")
def db_upgrade(state_dir: Path, db_url: str | None) -> None:
    """Apply every pending migration (idempotent)."""
    url = db_url or _stack_settings(state_dir).db_url
    try:
        upgrade(url)
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"config database at revision {current_revision(url)} (head {head_revision()})")


def _stack_settings(state_dir: Path) -> Settings:
    path = state_dir.resolve() / "settings.json"
    if not path.exists():
        return Settings(state_dir=state_dir)
    return Settings.load(path)


@main.command()
@state_dir_option
def demo(state_dir: Path) -> None:
    """Show the running stack at work: SIP through Kamailio's KEMI script, media control, API."""
    from control.stack.demo import DemoError, run_demo

    settings = _stack_settings(state_dir)
    try:
        for line in run_demo(settings):
            click.echo(line)
    except DemoError as exc:
        click.echo(f"demo failed: {exc}", err=True)
        sys.exit(1)


@main.group()
def admin() -> None:
    """Platform administration."""


@admin.command("bootstrap")
@state_dir_option
@click.option("--db-url", envvar="SIPIO_DB_URL", help="Defaults to the stack's configured DB.")
@click.option("--name", default="Platform", show_default=True, help="Root account name.")
@click.option("--new-key", is_flag=True, help="Root exists: mint another all-scope key.")
def admin_bootstrap(state_dir: Path, db_url: str | None, name: str, new_key: bool) -> None:
    """Create the platform root account and print its first API key (shown once)."""
    from control.api.bootstrap import AlreadyBootstrapped, bootstrap

    url = db_url or _stack_settings(state_dir).db_url
    try:
        upgrade(url)
        account_id, key = bootstrap(url, name=name, new_key=new_key)
    except (MigrationError, AlreadyBootstrapped) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"platform account: {account_id}")
    click.echo(f"api key (shown once, store it now): {key}")
