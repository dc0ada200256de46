"""Runtime settings shared by every sipio process.

`sipio up` writes them once to ``<state_dir>/settings.json``; Kamailio's KEMI workers, the API
and the other services read the same file (path in ``SIPIO_SETTINGS``), so a port or URL is
decided in exactly one place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SETTINGS_ENV = "SIPIO_SETTINGS"
SETTINGS_FILE = "settings.json"


class VaultSettings(BaseModel):
    """Where the Vault/OpenBao KV v2 store is and how to log in to it.

    Credentials never live here (settings.json is copied around and read by every process):
    only the name of an environment variable or the path of a file that holds them.
    """

    model_config = ConfigDict(extra="forbid")
    url: str = "http://127.0.0.1:8200"
    mount: str = "secret"  # KV v2 mount point
    namespace: str | None = None
    path_prefix: str = Field("sipio", max_length=100, pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    auth: Literal["token", "approle"] = "token"
    token_env: str = "SIPIO_VAULT_TOKEN"
    token_file: Path | None = None  # wins over token_env (e.g. a Vault Agent sink)
    approle_mount: str = "approle"
    role_id: str | None = None
    role_id_file: Path | None = None
    secret_id_env: str = "SIPIO_VAULT_SECRET_ID"
    secret_id_file: Path | None = None
    ca_cert: Path | None = None  # PEM bundle for https; None: the system's CAs
    timeout_sec: float = Field(2.0, gt=0, le=30)  # per request: a call path never waits longer

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"token", "secret_id"} & data.keys():
            raise ValueError(
                "a Vault token or secret_id never goes into settings: name an environment "
                "variable (token_env, secret_id_env) or a file (token_file, secret_id_file)"
            )
        return data


class SecretsSettings(BaseModel):
    """Which store holds the values behind ``*_secret_ref`` (see docs/secrets.md)."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["local", "vault"] = "local"
    local_dir: Path | None = None  # None: <state_dir>/secrets
    key_file: Path | None = None  # None: <local_dir>/kv.key
    # Seconds a process serves a resolved value without asking the store again.
    cache_ttl_sec: float = Field(30.0, ge=0, le=3600)
    vault: VaultSettings = Field(default_factory=VaultSettings)


class Settings(BaseModel):
    """Where each component listens and keeps its files. All addresses are loopback by default."""

    state_dir: Path
    sip_host: str = "127.0.0.1"
    sip_port: int = Field(5060, ge=1, le=65535)
    ng_host: str = "127.0.0.1"
    ng_port: int = Field(22222, ge=1, le=65535)
    rtp_port_min: int = Field(30000, ge=1024, le=65535)
    rtp_port_max: int = Field(30999, ge=1024, le=65535)
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(16379, ge=1, le=65535)
    redis_persistence: bool = False
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    api_workers: int = Field(2, ge=1, le=64)
    kamailio_children: int = Field(4, ge=1, le=64)
    # rtpengine nodes for media anchoring, "host:port[:weight]"; empty: the stack's own (ng_*).
    rtpengine_nodes: list[str] = Field(default_factory=list)
    # Anchor the media of relayed calls on rtpengine (off only for signalling-only set-ups).
    media_anchor: bool = True
    # Who sends the ng commands: "python" (control.rtpengine, Redis-backed stickiness) or
    # "module" (Kamailio's C rtpengine module: a measurement baseline and a fallback for plain
    # calls; WebRTC callees are not offered per branch there). docs/rtpengine.md
    media_driver: str = Field("python", pattern="^(python|module)$")
    # FreeSWITCH nodes that answer flow/queue/voicemail/conference targets (dispatcher set 1),
    # as SIP URIs, e.g. "sip:127.0.0.1:5080".
    media_nodes: list[str] = Field(default_factory=list)
    # Seconds between OPTIONS health probes of the media nodes; 0 turns probing off.
    media_ping_interval: int = Field(5, ge=0, le=3600)
    # Final timeout of non-INVITE transactions (BYE, OPTIONS probes): a media node that does
    # not answer its probe is out of rotation after about this long.
    sip_transaction_timeout_ms: int = Field(8000, ge=500, le=32000)
    # Digest algorithm of the challenges Kamailio sends: "MD5" (every phone) or "SHA-256".
    digest_algorithm: str = Field("MD5", pattern="^(MD5|SHA-256)$")
    # Shortest registration Kamailio accepts (shorter Expires are raised to it), and how often
    # usrloc looks for registrations that ran out: an agent whose phone stops refreshing turns
    # unreachable within about this many seconds after its expiry.
    registration_min_expires: int = Field(60, ge=1, le=3600)
    registration_check_sec: int = Field(10, ge=1, le=3600)
    # Seconds a Kamailio worker may serve a config version before re-checking it.
    config_check_sec: float = Field(1.0, gt=0, le=60)
    db_url: str = ""  # empty: SQLite file in the state directory
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    # -- CDR and call-event lake (control/cdr, docs/observability.md) --------------------------
    # Redis streams the collector consumes (shards); one collector owns a stream at a time.
    event_streams: list[str] = Field(default_factory=lambda: ["sipio:events"], min_length=1)
    collector_group: str = Field("sipio-collector", min_length=1)
    # Stable per collector process: a restart with the same name resumes its pending entries.
    collector_consumer: str = Field("collector-1", min_length=1)
    # A batch is committed to Iceberg when it holds this many entries or is this old.
    collector_batch_size: int = Field(5000, ge=1, le=1_000_000)
    collector_batch_sec: float = Field(5.0, gt=0, le=3600)
    # Stream ownership lease; must outlast the slowest commit of a batch.
    collector_lock_ttl_sec: float = Field(30.0, ge=1, le=3600)
    # Trim stream entries every consumer group has acknowledged. Emitters never cap the stream
    # (an unread event must not be lost), so this is what bounds it; turn it off only when
    # another reader without a consumer group needs old entries.
    collector_trim_acked: bool = True
    # Calls still open after this long are no longer tracked in memory (their rows stay).
    cdr_open_horizon_sec: int = Field(2 * 86400, ge=60)
    # pyiceberg catalog properties; empty: SQL catalog on SQLite + warehouse under <state>/lake.
    # Production, e.g. {"type": "rest", "uri": "https://…", "warehouse": "s3://…"} or
    # {"type": "sql", "uri": "postgresql+psycopg://…", "warehouse": "s3://…", "s3.endpoint": …}.
    lake_catalog: dict[str, str] = Field(default_factory=dict)
    lake_namespace: str = Field("sipio", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # The collector expires older snapshots (commit cost grows with the snapshot count); the
    # replaced data files stay on disk until an orphan-file sweep.
    lake_snapshot_retention_sec: int = Field(900, ge=60)
    # -- FreeSWITCH flow controller (esl/, docs/esl.md) ------------------------------------------
    # Where `sipio esl-controller` listens for FreeSWITCH's `socket` dialplan application.
    esl_host: str = "127.0.0.1"
    esl_port: int = Field(8084, ge=1, le=65535)
    # -- media store and media-engine control (docs/voicemail.md) --------------------------------
    # Private media store (prompts, greetings, voicemail at <account>/vm/…) and recordings
    # (<account>/…); None: <state_dir>/media, <state_dir>/recordings. FreeSWITCH, the controller
    # and the API must see the same files, as the same user (directories are 0700).
    media_root: Path | None = None
    recordings_root: Path | None = None
    # FreeSWITCH's inbound event socket (conference control, recording on demand). Its password
    # is in the secret store under this reference, never here.
    freeswitch_esl_host: str = "127.0.0.1"
    freeswitch_esl_port: int = Field(8021, ge=1, le=65535)
    freeswitch_esl_password_ref: str = "kv:esl:freeswitch:password"
    # Queue courtesy callbacks (docs/acd.md): how long a callback keeps its place, how many
    # tries reach for the caller (each after an agent answered), the pause between two tries,
    # and how long the caller's phone rings. Placed through the event socket above.
    queue_callback_window_sec: int = Field(3600, ge=60, le=7 * 86400)
    queue_callback_attempts: int = Field(3, ge=1, le=10)
    queue_callback_retry_sec: int = Field(120, ge=5, le=86400)
    queue_callback_ring_sec: int = Field(30, ge=5, le=120)
    # POSTed for every new voicemail message (the flows' HTTP egress rules apply).
    voicemail_notify_url: str | None = None

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.rtp_port_min > self.rtp_port_max:
            raise ValueError("rtp_port_min must not exceed rtp_port_max")
        if not self.db_url:
            self.db_url = f"sqlite:///{self.state_dir / 'sipio.db'}"
        ports = {
            "sip_port": self.sip_port,
            "ng_port": self.ng_port,
            "redis_port": self.redis_port,
            "api_port": self.api_port,
        }
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} both use port {port}")
            seen[port] = name
            if self.rtp_port_min <= port <= self.rtp_port_max:
                raise ValueError(f"{name} {port} lies inside the RTP port range")
        return self

    # Derived paths: one definition each, used by the launcher and by the clients.
    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def kamailio_rpc_socket(self) -> Path:
        return self.run_dir / "kamailio_rpc.sock"

    @property
    def dispatcher_list(self) -> Path:
        return self.state_dir / "dispatcher.list"

    @property
    def lake_dir(self) -> Path:
        return self.state_dir / "lake"

    @property
    def secrets_dir(self) -> Path:
        return self.secrets.local_dir or self.state_dir / "secrets"

    @property
    def media_dir(self) -> Path:
        return self.media_root or self.state_dir / "media"

    @property
    def recordings_dir(self) -> Path:
        return self.recordings_root or self.state_dir / "recordings"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/0"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def settings_path(self) -> Path:
        return self.state_dir / SETTINGS_FILE

    def save(self) -> Path:
        from control.secrets.files import write_private  # the package imports this module

        self.state_dir.mkdir(parents=True, exist_ok=True)
        # 0600 from its creation on: the DB URL may carry a password.
        write_private(self.settings_path, (self.model_dump_json(indent=2) + "\n").encode())
        return self.settings_path

    @classmethod
    def load(cls, path: Path | str) -> Settings:
        return cls.model_validate(json.loads(Path(path).read_text()))

    @classmethod
    def from_env(cls) -> Settings:
        """Settings of the running stack, as every child process finds them."""
        path = os.environ.get(SETTINGS_ENV)
        if not path:
            raise RuntimeError(f"{SETTINGS_ENV} is not set: start components through `sipio up`")
        return cls.load(path)
