"""The captured FreeSWITCH 1.11.1 ESL transcripts (``../shared/fixtures/esl``), as records."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FIXTURES = Path(
    os.environ.get(
        "SIPIO_ESL_FIXTURES", Path(__file__).resolve().parents[3] / "shared/fixtures/esl"
    )
)
FS, TOOL = "fs->tool", "tool->fs"


@dataclass(frozen=True)
class Record:
    type: str  # data | connect | accept | note | eof | close
    dir: str = ""
    data: bytes = b""
    t: float = 0.0
    text: str = ""


@dataclass(frozen=True)
class Transcript:
    name: str
    records: tuple[Record, ...]

    @property
    def outbound(self) -> bool:
        return any(r.type == "accept" for r in self.records)

    def stream(self, direction: str) -> bytes:
        return b"".join(r.data for r in self.records if r.type == "data" and r.dir == direction)

    @property
    def fs_bytes(self) -> bytes:
        return self.stream(FS)

    @property
    def tool_bytes(self) -> bytes:
        return self.stream(TOOL)

    def bin(self, direction: str) -> bytes:
        suffix = "fs2tool" if direction == FS else "tool2fs"
        return (FIXTURES / f"{self.name}.{suffix}.bin").read_bytes()

    def timeline_events(self) -> list[str]:
        """Event names in the order FreeSWITCH sent them, found by a plain regex over the raw
        bytes (an independent view, to check that the client lost or reordered nothing)."""
        pattern = rb'(?:\nEvent-Name: |"Event-Name":"|<Event-Name>)([A-Z_]+)'
        names = [m.decode() for m in re.findall(pattern, self.fs_bytes)]
        return [n for n in names if n != "CHANNEL_DATA"]  # the outbound connect reply


@cache
def load(name: str) -> Transcript:
    records = []
    for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
        raw = json.loads(line)
        kind = raw["type"]
        if kind == "meta":
            continue
        data = base64.b64decode(raw["b64"]) if kind == "data" else b""
        records.append(
            Record(kind, raw.get("dir", ""), data, float(raw.get("t", 0.0)), raw.get("text", ""))
        )
    return Transcript(name, tuple(records))


def names() -> list[str]:
    return sorted(p.name.removesuffix(".jsonl") for p in FIXTURES.glob("*.jsonl"))
