"""Free loopback ports, for stacks and tests that must not collide with anything running."""

from __future__ import annotations

import errno
import random
import socket

_taken: set[int] = set()  # handed out by this process: never give the same port twice


def _bind_error(host: str, port: int, kinds: tuple[int, ...]) -> int | None:
    """errno of the first failing bind, None when every transport could bind."""
    sockets = []
    try:
        for kind in kinds:
            sock = socket.socket(socket.AF_INET, kind)
            sockets.append(sock)
            sock.bind((host, port))
        return None
    except OSError as exc:
        return exc.errno or -1
    finally:
        for sock in sockets:
            sock.close()


def _bindable(host: str, port: int, kinds: tuple[int, ...]) -> bool:
    return _bind_error(host, port, kinds) is None


def in_use(host: str, port: int, *, udp: bool, tcp: bool) -> bool:
    """True only when another socket holds the port; other bind errors (an address that is
    not local, say) are left for the component to report in its own words."""
    kinds = tuple(
        k for k, wanted in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)) if wanted
    )
    return _bind_error(host, port, kinds) == errno.EADDRINUSE


def free_port(host: str = "127.0.0.1", *, udp: bool = True, tcp: bool = True) -> int:
    """A port free for the asked transports at once (SIP needs the same UDP and TCP port)."""
    kinds = tuple(
        k for k, wanted in ((socket.SOCK_DGRAM, udp), (socket.SOCK_STREAM, tcp)) if wanted
    )
    for _ in range(200):
        probe = socket.socket(socket.AF_INET, kinds[0])
        probe.bind((host, 0))
        port = int(probe.getsockname()[1])
        probe.close()
        if port not in _taken and _bindable(host, port, kinds):
            _taken.add(port)
            return port
    raise RuntimeError(f"no free port on {host}")


def free_udp_range(
    size: int, host: str = "127.0.0.1", low: int = 20000, high: int = 32000
) -> range:
    """A run of UDP ports below the kernel's ephemeral range, all free right now."""
    for _ in range(200):
        start = random.randrange(low, high - size, 2)
        ports = range(start, start + size)
        if any(p in _taken for p in ports):
            continue
        if all(_bindable(host, p, (socket.SOCK_DGRAM,)) for p in ports):
            _taken.update(ports)
            return ports
    raise RuntimeError(f"no free range of {size} UDP ports on {host}")


def free_stack_ports(rtp_ports: int = 100) -> dict[str, int]:
    """Every port a stack listens on, free now: the ``Settings`` fields of ``--free-ports``."""
    rtp = free_udp_range(rtp_ports)
    return {
        "sip_port": free_port(),
        "ng_port": free_port(tcp=False),
        "redis_port": free_port(udp=False),
        "api_port": free_port(udp=False),
        "rtp_port_min": rtp.start,
        "rtp_port_max": rtp.stop - 1,
    }
