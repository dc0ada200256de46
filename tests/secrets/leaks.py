"""Where a stack keeps what it has seen: every place a secret value must never show up."""

from __future__ import annotations

from pathlib import Path

import redis
from sqlalchemy import inspect, text

from control.db import make_engine
from control.settings import Settings


def haystacks(stack: Settings) -> dict[str, bytes]:
    """Every config DB table, every file under the state directory (component logs, the
    settings, the lake, the secret store's own files) and every Redis key (the event streams)."""
    found: dict[str, bytes] = {}
    engine = make_engine(stack.db_url)
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).fetchall()
            found[f"table {table}"] = repr(rows).encode()
    engine.dispose()
    root: Path = stack.state_dir
    for path in root.rglob("*"):
        if path.is_file():
            found[f"file {path.relative_to(root)}"] = path.read_bytes()
    live = redis.Redis.from_url(stack.redis_url)
    found["redis"] = b"\n".join(
        key + b"=" + (live.dump(key) or b"") for key in live.scan_iter(count=1000)
    )
    live.close()
    return found


def leaks(values: dict[str, str], places: dict[str, bytes]) -> list[str]:
    return [
        f"{what} leaked into {where}"
        for what, value in values.items()
        for where, content in places.items()
        if value.encode() in content
    ]
