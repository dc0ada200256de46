"""Two rtpengine nodes behind the KEMI routing: calls spread over both; when one dies the next
calls are anchored on the survivor and still complete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control.rtpengine import NgClient
from control.settings import Settings
from tests.harness.provision import Provisioner
from tests.harness.rtpengine import RtpengineNode, stack_with_extra_node
from tests.routing.test_calls import proxy, registered, settle


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, RtpengineNode]]:
    # The extra node weighs 100: nearly every new call picks it first, so after it dies the
    # next calls really go through the failover.
    with stack_with_extra_node(Path(tmp_path_factory.mktemp("failover")), (1, 100)) as both:
        yield both


def managed(host: str, port: int) -> int:
    with NgClient(host, port) as ng:
        return int(ng.statistics()["totalstatistics"]["managedsessions"])


def test_calls_survive_the_loss_of_an_rtpengine_node(
    two_nodes: tuple[Settings, RtpengineNode],
) -> None:
    stack, extra = two_nodes
    tenant = Provisioner(stack).tenant("Failover", "failover.example.com")
    callee_user, caller_user = tenant.user_with_devices("9001"), tenant.user_with_devices("9002")
    settle(stack)
    callee, caller = registered(stack, tenant, callee_user), registered(stack, tenant, caller_user)

    def one_call() -> None:
        answering = callee.answer()
        result = caller.call(proxy(stack), "9001")
        assert result.ok, result.output
        assert answering.wait().ok

    for _ in range(6):
        one_call()
    own_before = managed(stack.ng_host, stack.ng_port)
    assert own_before + managed(extra.host, extra.ng_port) == 6
    assert managed(extra.host, extra.ng_port) >= 1

    extra.kill()
    for _ in range(3):
        one_call()
    assert managed(stack.ng_host, stack.ng_port) == own_before + 3  # all on the survivor
