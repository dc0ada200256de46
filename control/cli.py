"""The ``sipio`` command line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import redis
from pydantic import ValidationError

from control import logs
from control.db.migrate import MigrationError, current_revision, head_revision, upgrade
from control.settings import SETTINGS_ENV, Settings
from control.stack import supervisor
from control.stack.ports import free_stack_ports

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


def _vault_options(func: Any) -> Any:
    """Where OpenBao/Vault is and how components log in; a token or secret id is never an
    option: it comes from a file or from SIPIO_VAULT_TOKEN / SIPIO_VAULT_SECRET_ID."""
    file = click.Path(dir_okay=False, path_type=Path)
    options = [
        click.option("--secrets-backend", type=click.Choice(["local", "vault"]),
                     envvar="SIPIO_SECRETS_BACKEND",
                     help="Secret store [local; vault when a --vault-* option is given]."),
        click.option("--vault-url", envvar="SIPIO_VAULT_URL", help="OpenBao/Vault address."),
        click.option("--vault-mount", envvar="SIPIO_VAULT_MOUNT", help="KV v2 mount [secret]."),
        click.option("--vault-namespace", envvar="SIPIO_VAULT_NAMESPACE", help="Namespace."),
        click.option("--vault-auth", type=click.Choice(["token", "approle"]),
                     envvar="SIPIO_VAULT_AUTH", help="Login method [token]."),
        click.option("--vault-token-file", type=file, envvar="SIPIO_VAULT_TOKEN_FILE",
                     help="File holding the token [else $SIPIO_VAULT_TOKEN]."),
        click.option("--vault-role-id", envvar="SIPIO_VAULT_ROLE_ID", help="AppRole role id."),
        click.option("--vault-role-id-file", type=file, envvar="SIPIO_VAULT_ROLE_ID_FILE",
                     help="File holding the role id."),
        click.option("--vault-secret-id-file", type=file, envvar="SIPIO_VAULT_SECRET_ID_FILE",
                     help="File holding the AppRole secret id [else $SIPIO_VAULT_SECRET_ID]."),
        click.option("--vault-ca-cert", type=file, envvar="SIPIO_VAULT_CA_CERT",
                     help="CA bundle (PEM) for https."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _secrets_section(options: dict[str, Any]) -> dict[str, Any] | None:
    """The ``secrets`` settings the --secrets-*/--vault-* options ask for (None: defaults).
    Files become absolute: components run with the state directory as working directory."""
    vault = {
        name.removeprefix("vault_"): value.resolve() if isinstance(value, Path) else value
        for name, value in options.items()
        if name.startswith("vault_") and value is not None
    }
    backend = options.get("secrets_backend") or ("vault" if vault else None)
    return None if backend is None else {"backend": backend, "vault": vault}


def _check_secret_store(settings: Settings) -> None:
    """With Vault, log in before starting anything: a wrong address or a missing credential is
    one clear line now rather than failed calls later."""
    if settings.secrets.backend != "vault":
        return
    from control.secrets import SecretStoreError, open_store

    try:
        open_store(settings).ping()
    except SecretStoreError as exc:
        click.echo(f"sipio up failed: secret store: {exc}", err=True)
        sys.exit(1)


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
@_vault_options
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
    **secret_options: Any,
) -> None:
    """Start Redis, rtpengine, Kamailio (KEMI) and the control API; return once all are healthy."""
    chosen: dict[str, object] = {"state_dir": state_dir, "redis_persistence": redis_persistence}
    ports = {
        "sip_port": sip_port,
        "ng_port": ng_port,
        "redis_port": redis_port,
        "api_port": api_port,
    }
    if free_ports:
        chosen.update(free_stack_ports(200))  # then the ports given explicitly win
    chosen.update({name: port for name, port in ports.items() if port is not None})
    rtp = _rtp_range(rtp_ports)
    if rtp is not None:
        chosen["rtp_port_min"], chosen["rtp_port_max"] = rtp
    if db_url:
        chosen["db_url"] = db_url
    if kamailio_children:
        chosen["kamailio_children"] = kamailio_children
    secrets_section = _secrets_section(secret_options)
    if secrets_section is not None:
        chosen["secrets"] = secrets_section
    try:
        settings = Settings.model_validate(chosen)
    except ValidationError as exc:
        raise click.UsageError(_validation_message(exc)) from None
    _check_secret_store(settings)
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


# -- CDR and call-event lake (control/cdr, docs/observability.md) -------------------------------
@main.command()
@state_dir_option
@click.option("--batch-size", type=int, help="Entries per Iceberg commit [settings].")
@click.option("--batch-sec", type=float, help="Longest wait before a commit [settings].")
def collector(state_dir: Path, batch_size: int | None, batch_sec: float | None) -> None:
    """Move call events from Redis into the Iceberg lake, exactly once (`sipio up` runs it)."""
    from control.cdr.__main__ import serve

    settings = _stack_settings(state_dir)
    changes: dict[str, object] = {}
    if batch_size:
        changes["collector_batch_size"] = batch_size
    if batch_sec:
        changes["collector_batch_sec"] = batch_sec
    serve(settings.model_copy(update=changes), json_lines=False)


@main.group()
def cdr() -> None:
    """Call detail records in the Iceberg lake: list, export, maintain."""


def _lake(state_dir: Path) -> Any:
    from control.cdr.lake import Lake

    return Lake(_stack_settings(state_dir))


def _cdr_pages(
    state_dir: Path,
    since: str | None,
    until: str | None,
    account: str | None,
    filters: dict[str, str],
    limit: int,
) -> Any:
    from control.cdr.query import list_calls
    from control.cdr.show import parse_when

    lake, cursor = _lake(state_dir), None
    try:
        low = parse_when(since) if since else 0
        high = parse_when(until) if until else int(time.time() * 1000)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    while True:
        page = list_calls(
            lake,
            accounts=[account] if account else None,
            since=low,
            until=high,
            limit=limit,
            cursor=cursor,
            filters=filters,
        )
        yield page.rows
        if not page.next_cursor:
            return
        cursor = (page.rows[-1]["start_ts"], page.rows[-1]["call_id"])


cdr_filters = [
    click.option("--since", help="Epoch ms or ISO date/time (UTC) [all]."),
    click.option("--until", help="Epoch ms or ISO date/time, exclusive [now]."),
    click.option("--account", help="Only this account."),
    click.option("--direction", type=click.Choice(["inbound", "outbound", "internal"])),
    click.option("--disposition", help="e.g. answered, no_answer, busy, failed."),
]


def _with_filters(func: Any) -> Any:
    for option in reversed(cdr_filters):
        func = option(func)
    return func


@cdr.command("list")
@state_dir_option
@_with_filters
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
def cdr_list(
    state_dir: Path,
    since: str | None,
    until: str | None,
    account: str | None,
    direction: str | None,
    disposition: str | None,
    limit: int,
    fmt: str,
) -> None:
    """The oldest CDRs of the window, up to --limit."""
    from control.cdr.query import CDR_FIELDS, to_csv
    from control.cdr.show import cdr_table

    filters = {k: v for k, v in (("direction", direction), ("disposition", disposition)) if v}
    rows = next(_cdr_pages(state_dir, since, until, account, filters, limit))
    if fmt == "csv":
        click.echo(to_csv(rows, CDR_FIELDS), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo("\n".join(cdr_table(rows)))


@cdr.command("export")
@state_dir_option
@_with_filters
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv")
def cdr_export(
    state_dir: Path,
    since: str | None,
    until: str | None,
    account: str | None,
    direction: str | None,
    disposition: str | None,
    output: Any,
    fmt: str,
) -> None:
    """Every CDR of the window, page by page, as RFC 4180 CSV or JSON lines."""
    from control.cdr.query import CDR_FIELDS, to_csv

    filters = {k: v for k, v in (("direction", direction), ("disposition", disposition)) if v}
    total = 0
    for number, rows in enumerate(_cdr_pages(state_dir, since, until, account, filters, 10_000)):
        if fmt == "csv":
            text = to_csv(rows, CDR_FIELDS)
            output.write(text if number == 0 else text.split("\r\n", 1)[1])
        else:
            output.writelines(json.dumps(row) + "\n" for row in rows)
        total += len(rows)
    click.echo(f"{total} CDRs exported", err=True)


@cdr.command("compact")
@state_dir_option
@click.option(
    "--min-files",
    type=click.IntRange(2),
    default=4,
    show_default=True,
    help="Rewrite partitions holding at least this many data files.",
)
@click.option(
    "--expire-days",
    type=click.IntRange(0),
    default=None,
    help="Drop snapshots older than this many days (default: the retention setting).",
)
@click.option(
    "--orphan-age-hours",
    type=click.FloatRange(0),
    default=24.0,
    show_default=True,
    help="Remove unreferenced files last written before this (younger ones may belong to a "
    "commit in flight).",
)
def cdr_compact(
    state_dir: Path, min_files: int, expire_days: int | None, orphan_age_hours: float
) -> None:
    """Lake upkeep: one rewrite per (day, account) partition of every table with small files,
    then snapshot expiry, then removal of files no snapshot references any more."""
    from control.cdr.tables import TABLES

    lake = _lake(state_dir)
    lake.ensure()
    now = int(time.time() * 1000)
    expire = None if expire_days is None else now - expire_days * 86_400_000
    for spec in TABLES:
        done = lake.upkeep(
            spec,
            min_files,
            expire_before_ms=expire,
            orphans_before_ms=now - int(orphan_age_hours * 3_600_000),
        )
        for partition, files in done.rewritten:
            click.echo(f"{spec.name:<13} {partition:<40} {files} files -> 1 rewrite")
        click.echo(
            f"{spec.name:<13} {done.snapshots_expired} snapshots expired, "
            f"{len(done.orphans)} orphan files removed"
        )


@cdr.command("tables")
@state_dir_option
def cdr_tables(state_dir: Path) -> None:
    """Each table's row count and current metadata file (for DuckDB's iceberg_scan)."""
    from control.cdr.tables import TABLES

    lake = _lake(state_dir)
    locations = lake.metadata_locations()
    for spec in TABLES:
        click.echo(
            f"{spec.name:<13} {lake.total_rows(spec):>10} rows  {locations.get(spec.name, '-')}"
        )


@cdr.command("dead-letters")
@state_dir_option
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
def cdr_dead_letters(state_dir: Path, limit: int) -> None:
    """Stream entries that could not be events, newest first, with the reason."""
    from control.cdr.tables import DEAD_LETTERS

    lake = _lake(state_dir)
    rows = lake.read(DEAD_LETTERS).sort_by([("received_ts", "descending")]).to_pylist()
    click.echo(f"{len(rows)} dead letters")
    for row in rows[:limit]:
        click.echo(f"{row['stream']} {row['stream_id']}  {row['error']}  {row['raw'][:200]}")


@main.command()
@state_dir_option
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="Events as a JSON array.")
def trace(state_dir: Path, call_id: str, as_json: bool) -> None:
    """A call's timeline: every event stamped with CALL_ID, in time order."""
    from control.cdr.query import trace as find
    from control.cdr.show import timeline

    rows = find(_lake(state_dir), call_id)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        raise click.ClickException(f"no events for call {call_id!r}")
    click.echo("\n".join(timeline(rows)))


# -- FreeSWITCH flow controller (esl/, docs/esl.md) ---------------------------------------------
@main.command("esl-controller")
@state_dir_option
@click.option("--host", help="Listen address for FreeSWITCH's socket app [settings esl_host].")
@click.option("--port", type=int, help="Listen port [settings esl_port, 8084].")
@click.option("--redis-url", envvar="SIPIO_REDIS_URL", help="Session store [the stack's Redis].")
@click.option("--db-url", envvar="SIPIO_DB_URL", help="Config DB with the flows [settings].")
@click.option("--node-id", help="This controller's name in traces and session ownership.")
@click.option("--proxy", help="Kamailio host:port that bridges go through [sip_host:sip_port].")
@click.option("--media-root", help="Directory FreeSWITCH reads prompts from.")
@click.option("--allow-private-http", is_flag=True, help="Let flows' HTTP nodes reach LAN hosts.")
@click.option("--freeswitch", metavar="HOST:PORT",
              help="Event socket for queue callbacks [settings freeswitch_esl_*].")  # fmt: skip
@click.option("--callbacks/--no-callbacks", default=True, show_default=True,
              help="Place queue callbacks through FreeSWITCH's event socket "
                   "[settings freeswitch_esl_*].")  # fmt: skip
def esl_controller(
    state_dir: Path,
    host: str | None,
    port: int | None,
    redis_url: str | None,
    db_url: str | None,
    node_id: str | None,
    proxy: str | None,
    media_root: str | None,
    allow_private_http: bool,
    freeswitch: str | None,
    callbacks: bool,
) -> None:
    """Run the flow controller FreeSWITCH's `socket` application connects to, one call each."""
    import socket as _socket

    from control.secrets import default_store
    from esl.callbacks import CallbackPolicy
    from esl.conference import EslTarget
    from esl.controller import ControllerConfig
    from esl.http_command import HttpPolicy
    from esl.service import ServiceConfig, media_config, run
    from esl.voicemail import VoicemailConfig

    settings = _stack_settings(state_dir)
    if settings.settings_path.exists():
        # PIN and token checks open the secret store from SIPIO_SETTINGS (default_store):
        # the stack's own settings, Vault address and credentials files included.
        os.environ[SETTINGS_ENV] = str(settings.settings_path)
    config = ServiceConfig(
        redis_url=redis_url or settings.redis_url,
        db_url=db_url or settings.db_url,
        host=host or settings.esl_host,
        port=settings.esl_port if port is None else port,
        controller=ControllerConfig(
            node_id=node_id or _socket.gethostname(),
            media=media_config(
                proxy or f"{settings.sip_host}:{settings.sip_port}",
                media_root or str(settings.media_dir),
                str(settings.recordings_dir),
            ),
        ),
        http=HttpPolicy(allow_private=allow_private_http),
        voicemail=VoicemailConfig(notify_url=settings.voicemail_notify_url),
        callbacks=CallbackPolicy(
            window_sec=settings.queue_callback_window_sec,
            attempts=settings.queue_callback_attempts,
            retry_sec=settings.queue_callback_retry_sec,
            caller_ring_sec=settings.queue_callback_ring_sec,
        ),
        freeswitch=EslTarget(
            *_host_port(freeswitch, settings.freeswitch_esl_host, settings.freeswitch_esl_port),
            lambda: default_store().resolve(settings.freeswitch_esl_password_ref),
        )
        if callbacks
        else None,
    )
    run(config)


def _host_port(value: str | None, host: str, port: int) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``) over the settings' defaults."""
    if not value:
        return host, port
    name, _, number = value.rpartition(":") if ":" in value else (value, "", "")
    if not number:
        return value, port
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT", param_hint="--freeswitch")
    return name, int(number)


@main.command()
@state_dir_option
@click.option("--every", type=float, default=0.0, help="Repeat every N seconds (0: once).")
@click.option("--grace", type=float, default=5.0, show_default=True,
              help="Calls younger than this are never released (still being set up).")  # fmt: skip
@click.option("--status-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the last pass's outcome here (read by `sipio status`).")  # fmt: skip
def reconcile(state_dir: Path, every: float, grace: float, status_file: Path | None) -> None:
    """Repair admission counters against Kamailio's live dialogs (dlg.list); with --every,
    also feed agents' reachability from the registrar's events between passes."""
    from control.kamailio import KamailioRpc, KamailioRpcError
    from control.live.admission import AdmissionStore
    from control.live.feed import PresenceFeed
    from control.live.kamailio_sync import reconcile_once

    settings = _stack_settings(state_dir)
    rpc = KamailioRpc(settings.kamailio_rpc_socket)
    store = AdmissionStore.from_url(settings.redis_url)
    feed = PresenceFeed(redis.Redis.from_url(settings.redis_url)) if every > 0 else None
    while True:
        try:
            report = reconcile_once(rpc, store, grace)
            ok = True
            detail = f"released {report.released} stale calls, repaired {report.drifted} counters"
        except KamailioRpcError as exc:
            ok, detail = False, f"Kamailio: {exc}"
        except redis.RedisError as exc:  # an outage: try again next pass, never exit
            ok, detail = False, f"Redis: {exc}"
        if status_file is not None:
            status_file.write_text(json.dumps({"ts": time.time(), "ok": ok, "detail": detail}))
        click.echo(f"reconcile: {detail}")
        if every <= 0 or feed is None:
            if not ok:
                sys.exit(1)
            return
        # Between passes, keep agents' reachability current from the registrar's events.
        until = time.monotonic() + every
        while time.monotonic() < until:
            try:
                feed.run_once(block_ms=1000)
            except redis.RedisError as exc:
                click.echo(f"presence feed: {exc}", err=True)
                time.sleep(1)
