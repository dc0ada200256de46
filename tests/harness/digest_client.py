"""A minimal SIP digest REGISTER over UDP, for algorithms SIPp does not speak (SHA-256)."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket


def _h(algorithm: str, text: str) -> str:
    if algorithm.upper() == "SHA-256":
        return hashlib.sha256(text.encode()).hexdigest()
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def register(proxy: tuple[str, int], user: str, domain: str, password: str) -> tuple[str, str]:
    """REGISTER, answer the challenge with the algorithm it names; return (challenge, final)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    port = sock.getsockname()[1]
    call_id = secrets.token_hex(8)

    def request(cseq: int, auth: str = "") -> str:
        lines = [
            f"REGISTER sip:{domain} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{secrets.token_hex(6)}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{domain}>;tag={call_id[:6]}",
            f"To: <sip:{user}@{domain}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:{user}@127.0.0.1:{port}>",
            "Expires: 60",
        ]
        if auth:
            lines.append(auth)
        sock.sendto(("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode(), proxy)
        return sock.recv(65535).decode()

    try:
        challenge = request(1)
        params = dict(
            re.findall(r'(\w+)="?([^",\r\n]+)"?', challenge.split("WWW-Authenticate:")[1])
        )
        algorithm = params.get("algorithm", "MD5")
        ha1 = _h(algorithm, f"{user}:{params['realm']}:{password}")
        ha2 = _h(algorithm, f"REGISTER:sip:{domain}")
        cnonce, nc = secrets.token_hex(4), "00000001"
        response = _h(algorithm, f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        auth = (
            f'Authorization: Digest username="{user}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="sip:{domain}", response="{response}", '
            f'algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"'
        )
        return challenge, request(2, auth)
    finally:
        sock.close()
