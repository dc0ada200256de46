"""Account tree rules: inheritance of defaults and who may act on which account."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# What a child inherits from its parent unless it sets its own value (SPEC 2.1).
INHERITED = ("timezone", "language", "voice_gender", "brand_name", "brand_domain")
ROOT_DEFAULTS: Mapping[str, Any] = {
    "timezone": "UTC",
    "language": "en-US",
    "voice_gender": "male",
    "brand_name": None,
    "brand_domain": None,
}


def effective_settings(chain: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``chain`` runs from the account itself up to its root; the first non-null value wins."""
    result: dict[str, Any] = {}
    for account in chain:
        for key in INHERITED:
            if key not in result and account.get(key) is not None:
                result[key] = account[key]
    for key in INHERITED:
        result.setdefault(key, ROOT_DEFAULTS[key])
    return result


@dataclass(frozen=True)
class AccountNode:
    id: str
    parent_id: str | None
    is_reseller: bool


def subtree(root_id: str, nodes: Iterable[AccountNode]) -> set[str]:
    """``root_id`` and every account below it."""
    children: dict[str | None, list[str]] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node.id)
    found = {root_id}
    stack = [root_id]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def ancestors(account_id: str, parents: Mapping[str, str | None]) -> list[str]:
    """The account and its ancestors, nearest first; stops on a cycle rather than looping."""
    chain: list[str] = []
    current: str | None = account_id
    while current is not None and current not in chain:
        chain.append(current)
        current = parents.get(current)
    return chain
