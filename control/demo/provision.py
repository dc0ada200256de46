"""Provisioning through the running stack's HTTP API, as an integrator would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from control.api.bootstrap import bootstrap
from control.settings import Settings


class Provisioner:
    def __init__(self, stack: Settings, key: str | None = None) -> None:
        self.stack = stack
        self.key = key or bootstrap(stack.db_url, new_key=True)[1]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.stack.api_url + path, data,
            {"Content-Type": "application/json", "x-api-key": self.key}, method=method,
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    def make(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        status, data = self.call("POST", f"/v1/{resource}", body)
        assert status == 201, (resource, body, data)
        return dict(data)

    def patch(self, resource: str, row_id: str, body: dict[str, Any]) -> dict[str, Any]:
        status, data = self.call("PATCH", f"/v1/{resource}/{row_id}", body)
        assert status == 200, (resource, body, data)
        return dict(data)

    def tenant(self, name: str, domain: str, **account: Any) -> Tenant:
        acc = self.make("accounts", {"name": name, **account})["id"]
        self.make("sip_domains", {"domain": domain, "is_primary": 1, "account_id": acc})
        return Tenant(self, acc, domain)


class Tenant:
    def __init__(self, p: Provisioner, account_id: str, domain: str) -> None:
        self.p, self.id, self.domain = p, account_id, domain

    def make(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.p.make(resource, {**body, "account_id": self.id})

    def user_with_devices(self, username: str, devices: int = 1, **user: Any) -> dict[str, Any]:
        """A user and its devices; device i authenticates as ``<username>`` or ``<username>-i``."""
        row = self.make("sip_users", {"username": username, **user})
        row["devices"] = []
        for i in range(devices):
            auth = username if i == 0 else f"{username}-{i}"
            device = self.make("sip_devices", {"user_id": row["id"], "auth_username": auth,
                                               "realm": self.domain, "ring_order": i})  # fmt: skip
            row["devices"].append(device)
        return row


def demo_key(stack: Settings) -> str:
    """An all-scope platform key for the demo, minted once and kept (0600) in the state dir."""
    path = stack.state_dir / "secrets" / "demo-api-key"
    if path.exists():
        key = path.read_text().strip()
        if Provisioner(stack, key).call("GET", "/v1/whoami")[0] == 200:
            return key
    key = bootstrap(stack.db_url, new_key=True)[1]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key
