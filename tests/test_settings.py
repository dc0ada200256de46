"""Settings validation: pure, no servers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from control.settings import Settings


def test_default_config_db_is_sqlite_inside_state_dir(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "st")
    assert settings.db_url == f"sqlite:///{tmp_path / 'st' / 'sipio.db'}"
    assert settings.kamailio_rpc_socket.parent == settings.run_dir


def test_two_components_on_one_port_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="both use port 7000"):
        Settings(state_dir=tmp_path, sip_port=7000, api_port=7000)


def test_port_inside_rtp_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="inside the RTP port range"):
        Settings(state_dir=tmp_path, ng_port=30010)


def test_inverted_rtp_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="rtp_port_min"):
        Settings(state_dir=tmp_path, rtp_port_min=40000, rtp_port_max=39000)


def test_saved_settings_are_private_and_round_trip(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, db_url="postgresql://u:secret@127.0.0.1/db")
    path = settings.save()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Settings.load(path) == settings


def test_from_env_without_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPIO_SETTINGS", raising=False)
    with pytest.raises(RuntimeError, match="SIPIO_SETTINGS"):
        Settings.from_env()
