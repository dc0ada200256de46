"""A byte-exact replay of one captured FreeSWITCH session.

FreeSWITCH's side is replayed record by record, with the capture's own chunk boundaries (so a
frame split across reads, or several frames in one read, reach the client exactly as they did
from the real server). When the capture shows the client speaking, the replay reads exactly
that many bytes and compares them with what the real tool sent: the client under test must
produce the same bytes, in the same order relative to FreeSWITCH's frames. Timing is not
replayed (an 8 s HEARTBEAT wait becomes immediate); order is.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from tests.esl.transcripts import FS, TOOL, Transcript

READ_TIMEOUT = 5.0


class ReplayMismatch(AssertionError):
    pass


@dataclass
class ReplayResult:
    transcript: Transcript
    received: bytearray = field(default_factory=bytearray)
    error: BaseException | None = None
    finished: bool = False

    def check(self) -> None:
        if self.error is not None:
            raise self.error
        assert self.finished, f"{self.transcript.name}: replay did not finish"
        assert bytes(self.received) == self.transcript.tool_bytes


async def replay(
    transcript: Transcript,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    result: ReplayResult,
) -> None:
    try:
        for record in transcript.records:
            if record.type == "data" and record.dir == FS:
                writer.write(record.data)
                await writer.drain()
            elif record.type == "data" and record.dir == TOOL:
                await _expect(reader, record.data, result)
            elif record.type == "eof":  # FreeSWITCH closed the socket here
                writer.close()
                break
            elif record.type == "close":  # the tool closed: we must see EOF, nothing more
                extra = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
                if extra:
                    raise ReplayMismatch(f"{transcript.name}: unexpected bytes {extra[:80]!r}")
        result.finished = True
    except BaseException as exc:
        result.error = exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _expect(reader: asyncio.StreamReader, want: bytes, result: ReplayResult) -> None:
    try:
        got = await asyncio.wait_for(reader.readexactly(len(want)), READ_TIMEOUT)
    except asyncio.IncompleteReadError as exc:
        result.received += exc.partial
        raise ReplayMismatch(
            f"{result.transcript.name}: client closed; wanted {want!r}, got {exc.partial!r}"
        ) from None
    except TimeoutError:
        raise ReplayMismatch(
            f"{result.transcript.name}: client silent; wanted {want!r} after "
            f"{bytes(result.received[-60:])!r}"
        ) from None
    result.received += got
    if got != want:
        raise ReplayMismatch(f"{result.transcript.name}: wanted {want!r}, got {got!r}")


class ReplayServer:
    """Plays FreeSWITCH's event socket (inbound mode): each accepted connection replays the
    next transcript; connections beyond the list are closed at once (FreeSWITCH down)."""

    def __init__(self, *transcripts: Transcript) -> None:
        self.pending = list(transcripts)
        self.results: list[ReplayResult] = []
        self.host, self.port = "127.0.0.1", 0
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ReplayServer:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, READ_TIMEOUT)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.pending:
            writer.close()
            return
        result = ReplayResult(self.pending.pop(0))
        self.results.append(result)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        await replay(result.transcript, reader, writer, result)

    async def finished(self, count: int = 1, timeout: float = READ_TIMEOUT) -> None:
        async def done() -> None:
            while len(self.results) < count or not all(
                r.finished or r.error for r in self.results[:count]
            ):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(done(), timeout)


async def replay_outbound(transcript: Transcript, host: str, port: int) -> ReplayResult:
    """Plays FreeSWITCH's ``socket`` application: connect to the controller and replay."""
    result = ReplayResult(transcript)
    reader, writer = await asyncio.open_connection(host, port)
    await replay(transcript, reader, writer, result)
    return result
