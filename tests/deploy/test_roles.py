"""Every name a role's tasks, handlers and templates use is defined where that role runs: its
own defaults or its dependencies', the inventory, something the role registers, or one of
Ansible's own variables. Each play in site.yml runs one role, so a role that leans on another
role's defaults would fail only on a real host; this finds it here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from jinja2 import Environment, meta

from tests.deploy.inventory import INVENTORY_DIR, ROLES_DIR, role_defaults

ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks").is_dir())
ANSIBLE_VARIABLES = {
    "inventory_hostname", "groups", "group_names", "hostvars", "playbook_dir",
    "ansible_playbook_python", "ansible_facts", "ansible_managed", "omit", "item", "lookup",
}  # fmt: skip
CONDITIONS = ("when", "that", "changed_when", "failed_when")


class _AnyName(dict[str, Any]):
    """Ansible's filters and tests (dirname, match, changed...): any name is one."""

    def __contains__(self, name: object) -> bool:
        return True

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name) or (lambda value, *args, **kwargs: value)


ENV = Environment()
ENV.filters = _AnyName(ENV.filters)
ENV.tests = _AnyName(ENV.tests)


def inventory_names() -> set[str]:
    names = set(yaml.safe_load((INVENTORY_DIR / "group_vars" / "all.yml").read_text()))
    hosts = yaml.safe_load((INVENTORY_DIR / "hosts.yml").read_text())

    def walk(node: dict[str, Any]) -> Iterator[str]:
        for variables in (node.get("hosts") or {}).values():
            yield from variables or {}
        for child in (node.get("children") or {}).values():
            yield from walk(child or {})

    return names | set(walk(hosts["all"]))


def expressions(value: Any, key: str = "") -> Iterator[str]:
    """Jinja sources inside a task: templated strings, and bare conditions."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from expressions(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from expressions(v, key)
    elif isinstance(value, str):
        if key in CONDITIONS and "{{" not in value:
            yield "{{ " + value + " }}"
        elif "{{" in value or "{%" in value:
            yield value


def task_names(tasks: Any) -> tuple[set[str], set[str]]:
    """(registered or set_fact names, loop variables) of a task list, blocks included."""
    defined: set[str] = set()
    loop_vars: set[str] = set()
    for task in tasks or []:
        if "register" in task:
            defined.add(task["register"])
        for module in ("set_fact", "ansible.builtin.set_fact"):
            defined |= set(task.get(module) or {})
        if "loop_var" in (task.get("loop_control") or {}):
            loop_vars.add(task["loop_control"]["loop_var"])
        for nested in ("block", "rescue", "always"):
            d, lv = task_names(task.get(nested))
            defined |= d
            loop_vars |= lv
    return defined, loop_vars


@pytest.mark.parametrize("role", ROLES)
def test_every_name_a_role_uses_is_defined_where_it_runs(role: str) -> None:
    root = ROLES_DIR / role
    documents = [
        yaml.safe_load(p.read_text())
        for folder in ("tasks", "handlers")
        for p in sorted((root / folder).glob("*.yml"))
    ]
    known = set(role_defaults(role)) | inventory_names() | ANSIBLE_VARIABLES | set(ENV.globals)
    for document in documents:
        defined, loop_vars = task_names(document)
        known |= defined | loop_vars
    sources = [s for document in documents for s in expressions(document)]
    sources += [p.read_text() for p in sorted((root / "templates").rglob("*.j2"))]
    sources += [str(v) for v in expressions(role_defaults(role))]
    used: set[str] = set()
    for source in sources:
        used |= meta.find_undeclared_variables(ENV.parse(source))
    assert used, role  # the scan found the role's expressions
    assert used - known == set(), f"{role} uses names it cannot see"
