"""Kamailio adapter seen from the control plane: its JSON-RPC management socket."""

from control.kamailio.rpc import KamailioRpc, KamailioRpcError

__all__ = ["KamailioRpc", "KamailioRpcError"]
