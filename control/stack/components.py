"""The components of a single-node stack: how each is configured, started and checked.

Each component is a thin description: files it needs, its command line and environment, and a
health check that talks to it the way production monitoring would (Kamailio JSON-RPC, ng
``ping``, Redis ``PING``, ``GET /healthz``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis

from control.kamailio import KamailioRpc, KamailioRpcError
from control.rtpengine import NgClient, NgError
from control.settings import SETTINGS_ENV, Settings

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


class StartError(Exception):
    """A component could not be prepared (missing binary, wrong interpreter...)."""


class Component:
    name: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def address(self) -> str:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    def prepare(self) -> None:
        """Write the files the component needs; raise StartError when it cannot run here."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {
            "PATH": CLEAN_PATH,
            "LANG": "C.UTF-8",
            "HOME": str(self.settings.state_dir),
            SETTINGS_ENV: str(self.settings.settings_path),
        }

    def check(self) -> Health:
        raise NotImplementedError


def vault_credentials(settings: Settings) -> dict[str, str]:
    """The Vault token or AppRole secret id that ``sipio up`` was given in its environment
    (``token_env``/``secret_id_env``, when no file is named), for the components that resolve
    secrets. An environment is readable only by the process's user, unlike a command line;
    the value never goes into settings.json or any other file."""
    if settings.secrets.backend != "vault":
        return {}
    v = settings.secrets.vault
    name, file = (v.token_env, v.token_file) if v.auth == "token" else (
        v.secret_id_env, v.secret_id_file)  # fmt: skip
    value = os.environ.get(name, "")
    return {name: value} if value and file is None else {}


def _binary(name: str, package: str) -> str:
    found = shutil.which(name, path=CLEAN_PATH)
    if not found:
        raise StartError(f"{name} not found: install the Debian package {package} (make deps)")
    return found


class RedisServer(Component):
    name = "redis"

    @property
    def address(self) -> str:
        return f"{self.settings.redis_host}:{self.settings.redis_port}"

    def argv(self) -> list[str]:
        s = self.settings
        data_dir = s.state_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            _binary("redis-server", "redis-server"),
            "--bind",
            s.redis_host,
            "--port",
            str(s.redis_port),
            "--dir",
            str(data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ]
        if s.redis_persistence:
            argv += ["--appendonly", "yes", "--save", "3600 1 300 100 60 10000"]
        else:
            argv += ["--appendonly", "no", "--save", ""]
        return argv

    def check(self) -> Health:
        client = redis.Redis(
            host=self.settings.redis_host,
            port=self.settings.redis_port,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        except redis.RedisError as exc:
            return Health(False, f"PING failed: {exc}")
        finally:
            client.close()
        return Health(True, f"PONG (redis {version})")


class Rtpengine(Component):
    name = "rtpengine"

    @property
    def address(self) -> str:
        return f"{self.settings.ng_host}:{self.settings.ng_port}"

    def argv(self) -> list[str]:
        s = self.settings
        return [
            _binary("rtpengine", "rtpengine-daemon"),
            "--config-file=none",
            "--table=-1",  # userspace forwarding: no kernel module on this host
            f"--interface={s.sip_host}",
            f"--listen-ng={s.ng_host}:{s.ng_port}",
            f"--port-min={s.rtp_port_min}",
            f"--port-max={s.rtp_port_max}",
            f"--pidfile={s.run_dir / 'rtpengine.pid'}",
            "--foreground",
            "--log-stderr",
            "--log-level=6",
            "--delete-delay=0",
        ]

    def check(self) -> Health:
        try:
            with NgClient(self.settings.ng_host, self.settings.ng_port, timeout=0.5) as ng:
                pong = ng.ping()
        except NgError as exc:
            return Health(False, str(exc))
        return Health(pong, "pong" if pong else "unexpected ping reply")


class Kamailio(Component):
    name = "kamailio"

    @property
    def address(self) -> str:
        return f"udp+tcp:{self.settings.sip_host}:{self.settings.sip_port}"

    @property
    def cfg_path(self) -> Path:
        return self.settings.state_dir / "kamailio.cfg"

    def prepare(self) -> None:
        from kemi.cfg import render, render_dispatcher  # the KEMI adapter's templates

        if sys.base_prefix != "/usr" or sys.version_info[:2] != (3, 11):
            raise StartError(
                "Kamailio's app_python3 embeds Debian's Python 3.11: run sipio from a venv built "
                f"with /usr/bin/python3 (this one is based on {sys.base_prefix}, "
                f"Python {sys.version.split()[0]})"
            )
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.cfg_path.write_text(render(self.settings))
        self.settings.dispatcher_list.write_text(render_dispatcher(self.settings))

    def argv(self) -> list[str]:
        s = self.settings
        return [
            _binary("kamailio", "kamailio"),
            "-f",
            str(self.cfg_path),
            "-DD",  # stay in the foreground as the leader of its workers
            "-E",  # log to stderr, i.e. the component log
            "-Y",
            str(s.run_dir),
            "-P",
            str(s.run_dir / "kamailio.pid"),
            "-m",
            "128",
            "-M",
            "16",
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONHOME"] = "/usr"  # the embedded interpreter uses Debian's standard library
        env["SIPIO_SITE_PACKAGES"] = sysconfig.get_paths()["purelib"]
        env.update(vault_credentials(self.settings))  # trunk passwords at call time
        return env

    def check(self) -> Health:
        try:
            uptime = KamailioRpc(self.settings.kamailio_rpc_socket, timeout=1.0).call("core.uptime")
        except KamailioRpcError as exc:
            return Health(False, str(exc))
        seconds = uptime.get("uptime") if isinstance(uptime, dict) else None
        return Health(True, f"JSON-RPC core.uptime={seconds}s")


class ControlApi(Component):
    name = "api"

    @property
    def address(self) -> str:
        return self.settings.api_url

    def argv(self) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{s.api_host}:{s.api_port}",
            "--workers",
            str(s.api_workers),
            "--pid",
            str(s.run_dir / "api.pid"),
            "--access-logfile",
            "-",
            "--error-logfile",
            "-",
            "--graceful-timeout",
            "5",
            "control.api.wsgi:app",
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = f"{venv_bin}:{CLEAN_PATH}"
        env["PYTHONUNBUFFERED"] = "1"
        env.update(vault_credentials(self.settings))  # writes of *_secret_ref values
        return env

    def check(self) -> Health:
        url = f"{self.settings.api_url}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return Health(False, f"/healthz answered {exc.code}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return Health(False, f"/healthz unreachable: {exc}")
        return Health(body.get("status") == "ok", f"/healthz {body.get('status')}")


class Collector(Component):
    """Events → Iceberg (``control.cdr``). Healthy while its Redis heartbeat is fresh and says
    it is consuming; the heartbeat also carries its counters (entries, batches, dead letters)."""

    name = "collector"
    stale_ms = 15_000

    @property
    def address(self) -> str:
        return f"{self.settings.redis_url} {','.join(self.settings.event_streams)}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "control.cdr"]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def check(self) -> Health:
        from control.cdr.collector import heartbeat_key

        client = redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        try:
            beat: dict[bytes, bytes] = client.hgetall(  # type: ignore[assignment]
                heartbeat_key(self.settings.collector_consumer)
            )
        except redis.RedisError as exc:
            return Health(False, f"Redis unreachable: {exc}")
        finally:
            client.close()
        fields = {k.decode(): v.decode() for k, v in beat.items()}
        if not fields:
            return Health(False, "no heartbeat yet")
        age = int(time.time() * 1000) - int(fields.get("ts", 0))
        detail = (
            f"{fields.get('state')} {age}ms ago; entries={fields.get('entries')} "
            f"batches={fields.get('batches')} dead_letters={fields.get('dead_letters')}"
        )
        return Health(fields.get("state") == "running" and age < self.stale_ms, detail)


class Reconciler(Component):
    """`sipio reconcile --every N`: admission counters against Kamailio's live dialogs.
    Healthy while its status file says the last pass ran recently and succeeded."""

    name = "reconciler"
    every_sec = 30

    @property
    def address(self) -> str:
        return f"every {self.every_sec}s"

    @property
    def status_path(self) -> Path:
        return self.settings.run_dir / "reconciler.json"

    def argv(self) -> list[str]:
        return [
            str(Path(sys.executable).parent / "sipio"), "reconcile",
            "--state-dir", str(self.settings.state_dir),
            "--every", str(self.every_sec),
            "--status-file", str(self.status_path),
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def check(self) -> Health:
        try:
            status = json.loads(self.status_path.read_text())
        except (FileNotFoundError, ValueError):
            return Health(False, "no pass yet")
        age = time.time() - float(status.get("ts", 0))
        if not status.get("ok") or age > 2 * self.every_sec + 10:
            return Health(False, f"last pass {age:.0f}s ago: {status.get('detail')}")
        return Health(True, f"last pass {age:.0f}s ago: {status.get('detail')}")


def stack_components(settings: Settings) -> list[Component]:
    """In start order: stores first, then media, then signaling, then the API; the collector
    last (it only needs Redis, and nothing waits for it)."""
    return [
        RedisServer(settings),
        Rtpengine(settings),
        Kamailio(settings),
        ControlApi(settings),
        Collector(settings),
        Reconciler(settings),
    ]
