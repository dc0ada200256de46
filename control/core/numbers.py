"""Dialled strings and E.164 (stored without "+", SPEC 3.1)."""

from __future__ import annotations

import re

_VISUAL = re.compile(r"[\s().\-]")
_DIGITS = re.compile(r"^[0-9]+$")
# Shorter strings are internal (extensions, usernames): never sent to the PSTN.
MIN_PSTN_DIGITS = 7


def to_e164(dialled: str, international_prefix: str = "00") -> str | None:
    """``+49 30 1234567``, ``004930...``, ``tel``-style separators -> ``49301234567``.
    None when the string cannot be a public number."""
    text = _VISUAL.sub("", dialled)
    if text.startswith("+"):
        text = text[1:]
    elif international_prefix and text.startswith(international_prefix):
        text = text[len(international_prefix) :]
    if not _DIGITS.match(text) or text.startswith("0"):
        return None
    if not MIN_PSTN_DIGITS <= len(text) <= 15:
        return None
    return text
