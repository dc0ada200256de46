"""The KEMI script inside a real Kamailio, driven with SIPp and raw datagrams."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from control.demo import sipp
from control.kamailio import KamailioRpc, KamailioRpcError
from control.settings import Settings
from control.stack.process import group_members, is_running
from control.stack.supervisor import load_records

SCENARIOS = Path(__file__).with_name("scenarios")


def target(stack: Settings) -> str:
    return f"{stack.sip_host}:{stack.sip_port}"


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_options_keepalive_answered_by_kemi(stack: Settings, transport: str) -> None:
    result = sipp.run(sipp.scenario("options.xml"), target(stack), transport=transport)
    assert result.ok, result.output
    # "Keepalive" is the reason phrase set by kemi/routing.py: the native cfg has no routes.
    assert "SIP/2.0 200 Keepalive" in result.messages


def test_exhausted_max_forwards_gets_483(stack: Settings) -> None:
    result = sipp.run(SCENARIOS / "options_maxfwd0.xml", target(stack))
    assert result.ok, result.output
    assert "SIP/2.0 483 Too Many Hops" in result.messages


def test_unrouted_invite_is_refused_not_relayed(stack: Settings) -> None:
    result = sipp.run(SCENARIOS / "invite_unrouted.xml", target(stack))
    assert result.ok, result.output
    assert "SIP/2.0 403 Forbidden" in result.messages


def test_malformed_sip_neither_answers_nor_kills_a_worker(stack: Settings) -> None:
    kamailio = next(r for r in load_records(stack.state_dir) if r.name == "kamailio")
    before = sorted(group_members(kamailio.pid))
    junk = [
        b"\x00\xff garbage",
        b"INVITE sip:x SIP/2.0\r\nVia: broken\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in junk:
            sock.sendto(datagram, (stack.sip_host, stack.sip_port))
    result = sipp.run(sipp.scenario("options.xml"), target(stack))
    assert result.ok, result.output
    assert is_running(kamailio)
    assert sorted(group_members(kamailio.pid)) == before


def test_jsonrpc_reports_the_running_kamailio(stack: Settings) -> None:
    rpc = KamailioRpc(stack.kamailio_rpc_socket)
    version = rpc.call("core.version")
    assert "kamailio 5." in str(version)
    with pytest.raises(KamailioRpcError, match="Method Not Found"):
        rpc.call("no.such.method")


def test_jsonrpc_without_kamailio_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KamailioRpcError, match="no Kamailio RPC socket"):
        KamailioRpc(tmp_path / "absent.sock").call("core.uptime")
