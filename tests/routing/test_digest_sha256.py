"""RFC 8760: a stack configured for SHA-256 challenges with it and checks the SHA-256 HA1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control.settings import Settings
from control.stack import supervisor
from tests.conftest import free_settings
from tests.harness.digest_client import register
from tests.harness.provision import Provisioner


@pytest.fixture(scope="module")
def sha_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = free_settings(Path(tmp_path_factory.mktemp("sha")), digest_algorithm="SHA-256")
    supervisor.up(settings)
    try:
        yield settings
    finally:
        supervisor.down(settings.state_dir)


def test_sha256_registration(sha_stack: Settings) -> None:
    tenant = Provisioner(sha_stack).tenant("Sha", "sha.example.com")
    device = tenant.user_with_devices("5001")["devices"][0]
    import time

    time.sleep(0.6)
    target = (sha_stack.sip_host, sha_stack.sip_port)
    challenge, final = register(target, "5001", "sha.example.com", device["password"])
    assert "algorithm=SHA-256" in challenge
    assert final.startswith("SIP/2.0 200"), final
    _, wrong = register(target, "5001", "sha.example.com", "wrong-password")
    assert wrong.startswith("SIP/2.0 401"), wrong


def test_md5_registration_on_the_default_stack(stack: Settings) -> None:
    tenant = Provisioner(stack).tenant("Md5", "md5.example.com")
    device = tenant.user_with_devices("5002")["devices"][0]
    import time

    time.sleep(0.6)
    challenge, final = register((stack.sip_host, stack.sip_port), "5002", "md5.example.com",
                                device["password"])  # fmt: skip
    assert "algorithm=MD5" in challenge
    assert final.startswith("SIP/2.0 200"), final
