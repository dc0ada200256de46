"""Bridge between the API and the flow core: document errors as API field errors, and the
objects a document references."""

from __future__ import annotations

from typing import Any

from control.api.errors import field_error


def document_errors(document: Any, refs: dict[str, set[str]] | None) -> list[dict[str, Any]]:
    """Shape checks until publish; with ``refs`` (ids per table in the account) also dangling
    references. Located as ``document.nodes.3.data.maxDigits``."""
    if not isinstance(document, dict):
        return [field_error("document", "must be an object")]
    errors = []
    for key, kind in (("nodes", list), ("edges", list), ("start", str)):
        if not isinstance(document.get(key), kind):
            errors.append(field_error(f"document.{key}", f"required ({kind.__name__})"))
    return errors


def document_references(document: dict[str, Any]) -> set[tuple[str, str]]:
    return set()
