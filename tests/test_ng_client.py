"""ng client against a real rtpengine (userspace mode) started by the session stack."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from control.rtpengine import NgClient, NgCommandError, NgProtocolError, NgTimeout
from control.rtpengine.ng import decode, encode
from control.settings import Settings
from control.stack.ports import free_port


def test_encode_decode_round_trip_keeps_text_and_numbers() -> None:
    datagram = encode("c1", {"command": "offer", "flags": ["trust-address"], "ttl": 5, "sdp": "é"})
    cookie, body = decode(datagram)
    assert cookie == "c1"
    assert body == {"command": "offer", "flags": ["trust-address"], "ttl": 5, "sdp": "é"}


@pytest.mark.parametrize("garbage", [b"", b"nocookie", b"c1 not-bencode", b"c1 li1ee"])
def test_garbage_replies_raise_protocol_error(garbage: bytes) -> None:
    with pytest.raises(NgProtocolError):
        decode(garbage)


def test_ping_real_rtpengine(stack: Settings) -> None:
    with NgClient(stack.ng_host, stack.ng_port) as ng:
        assert ng.ping() is True


def test_unknown_call_is_a_typed_refusal(stack: Settings) -> None:
    with NgClient(stack.ng_host, stack.ng_port) as ng, pytest.raises(NgCommandError) as err:
        ng.command("query", call_id="no-such-call@sipio.test")
    assert err.value.command == "query"
    assert "call" in err.value.reason.lower()


def test_unknown_command_is_a_typed_refusal(stack: Settings) -> None:
    with NgClient(stack.ng_host, stack.ng_port) as ng, pytest.raises(NgCommandError) as err:
        ng.command("no-such-command")
    assert err.value.reason == "Unrecognized command"


def test_silent_node_times_out_within_budget() -> None:
    port = free_port(tcp=False)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", port))  # bound, never answers
    try:
        started = time.monotonic()
        with NgClient("127.0.0.1", port, timeout=0.3, attempts=3) as ng, pytest.raises(NgTimeout):
            ng.ping()
        assert time.monotonic() - started < 1.0
    finally:
        silent.close()


class LossyRelay:
    """Forwards datagrams to rtpengine but drops the first request: proves retransmission."""

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
            if len(self.seen) > 1:
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
        assert ng.ping() is True
    assert len(lossy_relay.seen) == 2
    first, second = (decode(d)[0] for d in lossy_relay.seen)
    assert first == second
