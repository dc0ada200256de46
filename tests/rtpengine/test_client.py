"""NgClient against real rtpengine daemons: UDP retransmission, TCP and WebSocket, deadlines."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from control.rtpengine import (
    NgCallNotFound,
    NgClient,
    NgCommandError,
    NgConnectionError,
    NgTimeout,
    NgUnsupportedCommand,
)
from control.rtpengine.codec import decode, encode
from control.settings import Settings
from control.stack.ports import free_port
from tests.harness.rtpengine import RtpengineNode
from tests.rtpengine.sdp import audio_sdp


def test_ping_real_rtpengine(stack: Settings) -> None:
    with NgClient(stack.ng_host, stack.ng_port) as ng:
        assert ng.ping() is True


def test_unknown_call_is_a_typed_refusal(stack: Settings) -> None:
    with NgClient(stack.ng_host, stack.ng_port) as ng, pytest.raises(NgCallNotFound) as err:
        ng.command("query", call_id="no-such-call@sipio.test")
    assert isinstance(err.value, NgCommandError)
    assert err.value.command == "query"
    assert err.value.reason == "Unknown call-id"


def test_unknown_command_is_a_typed_refusal(stack: Settings) -> None:
    with NgClient(stack.ng_host, stack.ng_port) as ng, pytest.raises(NgUnsupportedCommand) as err:
        ng.command("no-such-command")
    assert err.value.reason == "Unrecognized command"


def test_silent_node_times_out_within_budget() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        started = time.monotonic()
        port = silent.getsockname()[1]
        with NgClient("127.0.0.1", port, timeout=0.3, attempts=3) as ng, pytest.raises(NgTimeout):
            ng.ping()
        elapsed = time.monotonic() - started
        assert 0.28 < elapsed < 0.6
        silent.settimeout(0.1)
        cookies = {decode(silent.recv(2048))[0] for _ in range(3)}
        assert len(cookies) == 1  # three sends of one request: retransmissions, same cookie
    finally:
        silent.close()


class LossyRelay:
    """Forwards datagrams to rtpengine but drops the first request and answers it with a
    stray reply under a foreign cookie: proves retransmission and cookie matching."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client: tuple[str, int] | None = None
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr == self.upstream:
                if client:
                    self.sock.sendto(data, client)
                continue
            client = addr
            self.seen.append(data)
            if len(self.seen) == 1:
                self.sock.sendto(encode("stray_1", {"result": "pong"}), client)
            else:
                self.sock.sendto(data, self.upstream)

    def __enter__(self) -> LossyRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def lossy_relay(stack: Settings) -> Iterator[LossyRelay]:
    with LossyRelay((stack.ng_host, stack.ng_port)) as relay:
        yield relay


def test_lost_request_is_retransmitted_with_the_same_cookie(lossy_relay: LossyRelay) -> None:
    with NgClient("127.0.0.1", lossy_relay.port, timeout=1.0, attempts=3) as ng:
        reply = ng.command("list")
    assert reply["result"] == "ok"  # the stray "pong" under another cookie was not taken
    assert len(lossy_relay.seen) == 2
    first, second = (decode(d)[0] for d in lossy_relay.seen)
    assert first == second


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_stream_transports_carry_a_large_offer(node_a: RtpengineNode, transport: str) -> None:
    port = node_a.tcp_port if transport == "tcp" else node_a.http_port
    padding = "".join(f"a=x-sipio-pad{i}:{'z' * 40}\r\n" for i in range(60))
    sdp = audio_sdp("alice", "192.0.2.10", 49170) + padding  # > 3 kB: several TCP segments' worth
    call_id = f"stream-{transport}@sipio.test"
    with NgClient(node_a.host, port, transport=transport, timeout=1.0) as ng:  # type: ignore[arg-type]
        assert ng.ping()
        reply = ng.offer(call_id, sdp, from_tag="t1")
        assert "a=x-sipio-pad59:" in reply.sdp
        assert call_id in ng.list_calls()
        ng.delete(call_id)
        assert ng.ping()  # the connection is still good after several exchanges


def test_stream_transport_to_a_closed_port_fails_as_connection_error() -> None:
    port = free_port(udp=False)
    started = time.monotonic()
    with (
        NgClient("127.0.0.1", port, transport="tcp", timeout=0.3) as ng,
        pytest.raises(NgConnectionError),
    ):
        ng.ping()
    assert time.monotonic() - started < 0.6


def test_one_client_serves_many_threads_without_crossed_replies(ng: NgClient) -> None:
    """Each thread offers calls whose SDP names the thread; every reply must name it back."""
    errors: list[str] = []

    def worker(n: int) -> None:
        for i in range(10):
            call_id = f"thread-{n}-{i}@sipio.test"
            reply = ng.offer(call_id, audio_sdp(f"user{n}", "192.0.2.10", 40000 + n), from_tag="t")
            if f"o=user{n} " not in reply.sdp:
                errors.append(f"{call_id} got another thread's reply")
            ng.delete(call_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_forked_worker_gets_its_own_socket_and_cookies(ng: NgClient) -> None:
    """Kamailio forks its workers from the process that loaded the script: a client created
    (and used) before the fork must not share its socket with the children."""
    import os

    assert ng.ping()
    parent_port = ng._transport().sock.getsockname()[1]  # type: ignore[attr-defined]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its socket's port and whether it could talk
        try:
            ok = ng.ping()
            port = ng._transport().sock.getsockname()[1]  # type: ignore[attr-defined]
            os.write(write_end, f"{ok} {port} {ng._cookie()}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    report = os.read(read_end, 200).decode().split()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert report[0] == "True"
    assert int(report[1]) != parent_port
    assert report[2].startswith(f"{pid:x}") and not ng._cookie().startswith(f"{pid:x}")
