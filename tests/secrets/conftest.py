"""Fixtures of the secret-store tests: a real OpenBao dev server, shared per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.secrets.bao import BaoServer


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    server = BaoServer(tmp_path_factory.mktemp("bao"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
