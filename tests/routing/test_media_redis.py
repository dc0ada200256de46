"""What anchoring a call costs in Redis: nothing for a call on its home node (the node is
kept in the transaction and the dialog), and the C module driver anchors calls too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from control.rtpengine import NgClient
from control.settings import Settings
from control.stack import supervisor
from tests.conftest import free_settings
from tests.harness.provision import Provisioner
from tests.harness.rtpengine import RtpengineNode, stack_with_extra_node
from tests.routing.test_calls import proxy, registered, settle


def managed(host: str, port: int) -> int:
    with NgClient(host, port) as ng:
        return int(ng.statistics()["totalstatistics"]["managedsessions"])


class Monitor:
    """Every command Redis runs while it is open (MONITOR), as text."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.commands: list[str] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            for entry in monitor.listen():
                self.commands.append(entry["command"])
                if entry["command"].startswith("ECHO stop-monitor"):
                    return

    def __enter__(self) -> Monitor:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.echo("stop-monitor")
        self.thread.join(5)


def one_call(stack: Settings, tenant_name: str, domain: str) -> None:
    tenant = Provisioner(stack).tenant(tenant_name, domain)
    callee_user, caller_user = tenant.user_with_devices("7001"), tenant.user_with_devices("7002")
    settle(stack)
    callee, caller = registered(stack, tenant, callee_user), registered(stack, tenant, caller_user)
    answering = callee.answer()
    result = caller.call(proxy(stack), "7001")
    assert result.ok, result.output
    assert answering.wait().ok


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, RtpengineNode]]:
    with stack_with_extra_node(Path(tmp_path_factory.mktemp("placed"))) as both:
        yield both


def test_calls_on_their_home_node_make_no_redis_round_trip_for_media(
    two_nodes: tuple[Settings, RtpengineNode],
) -> None:
    stack, extra = two_nodes
    before = managed(stack.ng_host, stack.ng_port) + managed(extra.host, extra.ng_port)
    with Monitor(stack.redis_url) as seen:
        for i in range(3):
            one_call(stack, f"Placed{i}", f"placed{i}.example.com")
    after = managed(stack.ng_host, stack.ng_port) + managed(extra.host, extra.ng_port)
    assert after - before == 3  # anchored, on either node
    assert any("sipio:events" in command for command in seen.commands)  # Monitor saw traffic
    assert not [c for c in seen.commands if "sipio:rtpengine:call:" in c], seen.commands


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = free_settings(Path(tmp_path_factory.mktemp("module")) / "stack",
                             media_driver="module")  # fmt: skip
    supervisor.up(settings)
    try:
        yield settings
    finally:
        supervisor.down(settings.state_dir)


def test_the_c_module_driver_anchors_calls(module_stack: Settings) -> None:
    stack = module_stack
    assert 'loadmodule "rtpengine.so"' in (stack.state_dir / "kamailio.cfg").read_text()
    before = managed(stack.ng_host, stack.ng_port)
    one_call(stack, "Module", "module.example.com")
    assert managed(stack.ng_host, stack.ng_port) == before + 1
    with NgClient(stack.ng_host, stack.ng_port) as ng:
        assert ng.list_calls() == []  # the BYE deleted it
