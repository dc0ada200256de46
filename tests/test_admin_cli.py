"""`sipio admin bootstrap`: the platform root and its first key, once."""

from __future__ import annotations

import subprocess
from pathlib import Path

from control.api import create_app
from control.settings import Settings


def run(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def test_bootstrap_prints_a_working_key_once(tmp_path: Path, sipio_bin: str) -> None:
    first = run(sipio_bin, "admin", "bootstrap", "--state-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    key = first.stdout.split("store it now): ")[1].strip()
    again = run(sipio_bin, "admin", "bootstrap", "--state-dir", str(tmp_path))
    assert again.returncode == 1
    assert "exists" in again.stderr and "Traceback" not in again.stderr
    extra = run(sipio_bin, "admin", "bootstrap", "--state-dir", str(tmp_path), "--new-key")
    assert extra.returncode == 0
    client = create_app(Settings(state_dir=tmp_path)).test_client()
    who = client.get("/v1/whoami", headers={"x-api-key": key})
    assert who.status_code == 200
    assert who.get_json()["scopes"] == ["*"]
