"""Runtime settings shared by every sipio process.

`sipio up` writes them once to ``<state_dir>/settings.json``; Kamailio's KEMI workers, the API
and the other services read the same file (path in ``SIPIO_SETTINGS``), so a port or URL is
decided in exactly one place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

SETTINGS_ENV = "SIPIO_SETTINGS"
SETTINGS_FILE = "settings.json"


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
    # Seconds a Kamailio worker may serve a config version before re-checking it.
    config_check_sec: float = Field(1.0, gt=0, le=60)
    db_url: str = ""  # empty: SQLite file in the state directory

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
    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/0"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def settings_path(self) -> Path:
        return self.state_dir / SETTINGS_FILE

    def save(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.settings_path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        os.chmod(tmp, 0o600)  # the DB URL may carry a password
        tmp.replace(path)
        return path

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
