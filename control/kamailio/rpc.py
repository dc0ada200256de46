"""JSON-RPC 2.0 over Kamailio's ``jsonrpcs`` Unix datagram socket.

The datagram transport answers to the sender's address, so the client binds its own socket
file (in a private temporary directory) for the reply and removes it afterwards.
"""

from __future__ import annotations

import itertools
import json
import socket
import tempfile
from pathlib import Path
from typing import Any


class KamailioRpcError(Exception):
    """Kamailio is unreachable, or answered the call with an error."""


class KamailioRpc:
    def __init__(self, socket_path: Path | str, *, timeout: float = 2.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        request_id = next(self._ids)
        request = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params:
            request["params"] = list(params)
        with tempfile.TemporaryDirectory(prefix="sipio-rpc-") as tmp:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(str(Path(tmp) / "reply.sock"))
                sock.settimeout(self.timeout)
                sock.sendto(json.dumps(request).encode(), self.socket_path)
                data = sock.recv(262144)
            except FileNotFoundError:
                raise KamailioRpcError(f"no Kamailio RPC socket at {self.socket_path}") from None
            except ConnectionRefusedError:
                raise KamailioRpcError(f"Kamailio is not listening on {self.socket_path}") from None
            except TimeoutError:
                raise KamailioRpcError(f"Kamailio did not answer {method!r}") from None
            finally:
                sock.close()
        try:
            reply = json.loads(data)
        except ValueError:
            raise KamailioRpcError(f"Kamailio sent a non-JSON reply to {method!r}") from None
        if "error" in reply:
            error = reply["error"]
            raise KamailioRpcError(f"{method}: {error.get('code')} {error.get('message')}")
        return reply.get("result")
