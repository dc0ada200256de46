"""The example inventory's variables, resolved and rendered with plain Jinja2 the way Ansible does.

Ansible's rules that matter here, and only those: precedence (role defaults < inventory
group_vars/all < the host's inventory variables < extra vars), lazy templating of variables
that may refer to other variables and to other hosts (``hostvars``, ``groups``), native types
for a value that is a single ``{{ expression }}``, undefined names as errors
(``StrictUndefined``), ``trim_blocks`` in template files, and the Ansible filters the roles use
(``extract``, ``regex_replace``, ``combine``, ``to_nice_json``). Lookups are never run: tests
give the vaulted values as extra vars, as an operator would with ``-e``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2.nativetypes import NativeEnvironment

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
INVENTORY_DIR = ANSIBLE_DIR / "inventory" / "example"
ROLES_DIR = ANSIBLE_DIR / "roles"

# What `-e` would carry at deploy time instead of the Vault lookup.
VAULTED = {
    "freeswitch_esl_password": "Kx3.vaulted_Esl+Pass-0123456789",
    "signalwire_token": "pat_vaulted_token",
    "postgres_password": "pg/vaulted&pass:0123",
    "sipio_approle_secret_id": "vaulted-secret-id-0123",
}
EXTRA_VARS = {"sipio_deploy_secrets": VAULTED}


def _extract(item: Any, container: Mapping[str, Any], morekeys: Any = None) -> Any:
    value = container[item]
    return value if morekeys is None else value[morekeys]


def _regex_replace(value: Any, pattern: str = "", replacement: str = "") -> str:
    return re.sub(pattern, replacement, str(value))


def _combine(*dicts: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for d in dicts:
        merged.update(d)
    return merged


def _to_nice_json(value: Any) -> str:
    return json.dumps(value, indent=4, sort_keys=True)


FILTERS = {
    "extract": _extract,
    "regex_replace": _regex_replace,
    "combine": _combine,
    "to_nice_json": _to_nice_json,
    "to_json": json.dumps,
}


def _environment(cls: type[Environment], **options: Any) -> Environment:
    env = cls(undefined=StrictUndefined, **options)
    env.filters.update(FILTERS)
    return env


NATIVE = _environment(NativeEnvironment)


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def role_defaults(role: str | None = None) -> dict[str, Any]:
    """The defaults a role sees: its meta dependencies' first, then its own. Without a role,
    every role's (for tests that compare values across roles)."""
    if role is None:
        merged: dict[str, Any] = {}
        for path in sorted(ROLES_DIR.glob("*/defaults/main.yml")):
            merged.update(_load(path))
        return merged
    meta = ROLES_DIR / role / "meta" / "main.yml"
    merged = {}
    for dependency in _load(meta).get("dependencies", []) if meta.exists() else []:
        name = dependency["role"] if isinstance(dependency, dict) else dependency
        merged.update(role_defaults(name))
    defaults = ROLES_DIR / role / "defaults" / "main.yml"
    return merged | (_load(defaults) if defaults.exists() else {})


def _walk(
    group: str,
    node: Mapping[str, Any],
    hosts: dict[str, dict[str, Any]],
    groups: dict[str, list[str]],
) -> None:
    members = groups.setdefault(group, [])
    for host, variables in (node.get("hosts") or {}).items():
        hosts.setdefault(host, {}).update(variables or {})
        if host not in members:
            members.append(host)
    for child, sub in (node.get("children") or {}).items():
        _walk(child, sub or {}, hosts, groups)
        members.extend(h for h in groups[child] if h not in members)


class HostVars(Mapping[str, Any]):
    """One host's variables, each templated on first use (like Ansible's lazy templating)."""

    def __init__(self, inventory: Inventory, host: str, raw: dict[str, Any]) -> None:
        self._inventory, self._raw, self._cache = inventory, raw, {}
        self._resolving: set[str] = set()
        self.host = host

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        if key not in self._raw:
            raise KeyError(key)
        if key in self._resolving:
            raise RecursionError(f"{self.host}: {key} refers to itself")
        self._resolving.add(key)
        try:
            value = self.template(self._raw[key])
        finally:
            self._resolving.discard(key)
        self._cache[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def template(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.template(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.template(v) for v in value]
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return render_string(NATIVE, value, self)
        return value

    def resolved(self) -> dict[str, Any]:
        return {key: self[key] for key in self}


def render_string(env: Environment, source: str, variables: Mapping[str, Any]) -> Any:
    """Render with ``variables`` as the context's parent, read lazily (no eager copy)."""
    template = env.from_string(source)
    # shared=True: the parent is this mapping itself; Jinja's globals (namespace, range...)
    # sit below it, as they do in an ordinary render.
    context = template.new_context(_Layer(variables, template.globals), shared=True)  # type: ignore[arg-type]
    return env.concat(template.root_render_func(context))  # type: ignore[attr-defined]


class Inventory:
    def __init__(
        self,
        extra_vars: Mapping[str, Any] | None = None,
        hosts_yaml: Mapping[str, Any] | None = None,
        role: str | None = None,
    ) -> None:
        """``role``: only that role's defaults are visible, as in a play that runs it alone
        (a role must not rely on another role's defaults)."""
        self._args = (extra_vars, hosts_yaml)
        self._scoped: dict[str, Inventory] = {}
        tree = hosts_yaml if hosts_yaml is not None else _load(INVENTORY_DIR / "hosts.yml")
        hosts: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        _walk("all", tree["all"], hosts, self.groups)
        self.groups["ungrouped"] = []
        common = {**role_defaults(role), **_load(INVENTORY_DIR / "group_vars" / "all.yml")}
        self.hostvars: dict[str, HostVars] = {}
        for host, own in hosts.items():
            raw = {**common, **own, **(extra_vars if extra_vars is not None else EXTRA_VARS)}
            raw.update(
                inventory_hostname=host,
                groups=self.groups,
                group_names=sorted(g for g, m in self.groups.items() if host in m and g != "all"),
                hostvars=self.hostvars,
                playbook_dir=str(ANSIBLE_DIR),
            )
            self.hostvars[host] = HostVars(self, host, raw)

    def render(self, role: str, template: str, host: str, **local: Any) -> str:
        """A role's template file as the template module writes it for ``host``."""
        source = (ROLES_DIR / role / "templates" / template).read_text()
        return self.render_text(role, source, host, **local)

    def render_text(self, role: str, source: str, host: str, **local: Any) -> str:
        """Any template text of a role (a task argument, say), for ``host``."""
        env = _environment(
            Environment,
            loader=FileSystemLoader(ROLES_DIR / role / "templates"),
            trim_blocks=True,
            keep_trailing_newline=True,
        )
        if role not in self._scoped:
            self._scoped[role] = Inventory(*self._args, role=role)
        variables: Mapping[str, Any] = self._scoped[role].hostvars[host]
        if local:
            variables = _Layer(local, variables)
        return str(render_string(env, source, variables))


class _Layer(Mapping[str, Any]):
    """Loop variables (``item``, ``unit``) over a host's variables."""

    def __init__(self, top: Mapping[str, Any], below: Mapping[str, Any]) -> None:
        self._top, self._below = top, below

    def __getitem__(self, key: str) -> Any:
        return self._top[key] if key in self._top else self._below[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._top
        yield from (k for k in self._below if k not in self._top)

    def __len__(self) -> int:
        return len(set(self._top) | set(self._below))
