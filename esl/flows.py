"""Where the controller gets flow documents and the account facts a step may consult.

The controller takes any :class:`FlowSource`. :class:`SqlFlowSource` is the thin reader of the
config DB (``call_flows`` / ``call_flow_versions``, account settings, time schedules);
:class:`StaticFlowSource` serves documents held in memory (tests, the benchmark, tools).
Published versions never change, so documents are cached by (flow, version); "which version
is live" and the account's settings are cached for a couple of seconds.

Targets other than ``flow`` (a DID pointing straight at a queue, voicemail box or conference)
run through a two-node flow, entry → transfer, built here, so every call goes through the same
interpreter, trace and session state.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine, select

from control.core.flow import FlowContext, FlowDocument, parse_flow, referenced_flows
from control.core.schedule import Schedule
from control.core.tenancy import effective_settings
from control.db.snapshot import schedule_of

MAX_SUBFLOWS = 32
TARGET_PREFIX = "target_"


@dataclass(frozen=True)
class AccountProfile:
    timezone: str = "UTC"
    language: str = "en-US"
    voice_gender: str = "male"
    schedules: Mapping[str, Schedule] = field(default_factory=dict)


class FlowSource(Protocol):
    async def flow(self, account_id: str, flow_id: str, version: int | None) -> FlowDocument | None:
        """A published version (``None``: the live one) of one of the account's flows."""

    async def profile(self, account_id: str) -> AccountProfile: ...


def target_flow(kind: str, target_id: str) -> FlowDocument:
    """entry → transfer(kind, id): the blind hand-off ``docs/flows.md`` defines."""
    return parse_flow(
        {
            "id": f"{TARGET_PREFIX}{kind}_{target_id}",
            "name": f"{kind} {target_id}",
            "version": 1,
            "start": "entry",
            "nodes": [
                {"id": "entry", "type": "entry", "data": {"kind": "entry", "trigger": "inbound"}},
                {
                    "id": kind,
                    "type": "transfer",
                    "data": {"kind": "transfer", "destKind": kind, "destId": target_id},
                },
            ],
            "edges": [{"id": "e1", "source": "entry", "target": kind}],
        }
    )


async def load_for_start(
    source: FlowSource, account_id: str, kind: str, target_id: str, version: int | None
) -> tuple[FlowDocument, FlowContext] | None:
    """The root document and a context pinning the live version of every reachable sub-flow."""
    if kind == "flow":
        root = await source.flow(account_id, target_id, version)
        if root is None:
            return None
    else:
        root = target_flow(kind, target_id)
    flows: dict[str, FlowDocument] = {}
    queue = sorted(referenced_flows(root))
    while queue and len(flows) < MAX_SUBFLOWS:
        flow_id = queue.pop(0)
        if flow_id in flows or flow_id == root.id:
            continue
        doc = await source.flow(account_id, flow_id, None)
        if doc is not None:  # a missing sub-flow ends the call when reached, traced
            flows[flow_id] = doc
            queue.extend(sorted(referenced_flows(doc) - flows.keys()))
    return root, _context(await source.profile(account_id), flows)


async def load_pinned(
    source: FlowSource, account_id: str, root_id: str, pins: Mapping[str, int]
) -> tuple[FlowDocument, FlowContext] | None:
    """Exactly the versions a running call was started with (after a takeover)."""
    docs: dict[str, FlowDocument] = {}
    for flow_id, version in pins.items():
        if flow_id.startswith(TARGET_PREFIX):
            kind, _, target_id = flow_id.removeprefix(TARGET_PREFIX).partition("_")
            doc: FlowDocument | None = target_flow(kind, target_id)
        else:
            doc = await source.flow(account_id, flow_id, version)
        if doc is None:
            return None
        docs[flow_id] = doc
    root = docs.pop(root_id, None)
    if root is None:
        return None
    return root, _context(await source.profile(account_id), docs)


def _context(profile: AccountProfile, flows: Mapping[str, FlowDocument]) -> FlowContext:
    return FlowContext(
        account_timezone=profile.timezone,
        schedules=dict(profile.schedules),
        flows=dict(flows),
        language=profile.language,
        voice_gender=profile.voice_gender,
    )


class StaticFlowSource:
    """Documents in memory: ``{(account_id, flow_id): [raw versions...]}``; the highest
    version is live."""

    def __init__(
        self,
        flows: Mapping[tuple[str, str], Iterable[Mapping[str, Any]]],
        profiles: Mapping[str, AccountProfile] | None = None,
    ) -> None:
        self._docs: dict[tuple[str, str], dict[int, FlowDocument]] = {}
        for key, versions in flows.items():
            parsed = [parse_flow(raw) for raw in versions]
            self._docs[key] = {doc.version: doc for doc in parsed}
        self._profiles = dict(profiles or {})

    async def flow(self, account_id: str, flow_id: str, version: int | None) -> FlowDocument | None:
        versions = self._docs.get((account_id, flow_id), {})
        if not versions:
            return None
        return versions.get(max(versions) if version is None else version)

    async def profile(self, account_id: str) -> AccountProfile:
        return self._profiles.get(account_id, AccountProfile())


class SqlFlowSource:
    """Reads the config DB in a worker thread. Immutable versions are cached for good; which
    version is live and the account's settings for ``ttl`` seconds, so a burst of calls costs
    one query, and a publish reaches new calls within ``ttl``."""

    def __init__(self, engine: Engine, *, cache_size: int = 512, ttl: float = 2.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._cache: OrderedDict[tuple[str, str, int], FlowDocument] = OrderedDict()
        self._cache_size = cache_size
        self._live: dict[tuple[str, str], tuple[float, FlowDocument | None]] = {}
        self._profiles: dict[str, tuple[float, AccountProfile]] = {}

    async def flow(self, account_id: str, flow_id: str, version: int | None) -> FlowDocument | None:
        if version is not None:
            cached = self._cache.get((account_id, flow_id, version))
            if cached is not None:
                return cached
        else:
            live = self._live.get((account_id, flow_id))
            if live is not None and time.monotonic() - live[0] < self.ttl:
                return live[1]
        doc = await asyncio.to_thread(self._read_flow, account_id, flow_id, version)
        if version is None:
            self._live[(account_id, flow_id)] = (time.monotonic(), doc)
            if len(self._live) > 4 * self._cache_size:
                self._live.clear()
        if doc is not None:
            self._cache[(account_id, flow_id, doc.version)] = doc
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return doc

    def _read_flow(self, account_id: str, flow_id: str, version: int | None) -> FlowDocument | None:
        from control.db import models as m

        with self.engine.connect() as c:
            if version is None:
                version = c.scalar(
                    select(m.CallFlow.published_version).where(
                        m.CallFlow.id == flow_id, m.CallFlow.account_id == account_id
                    )
                )
                if version is None:
                    return None
            row = c.execute(
                select(m.CallFlowVersion.document, m.CallFlowVersion.status).where(
                    m.CallFlowVersion.flow_id == flow_id,
                    m.CallFlowVersion.account_id == account_id,
                    m.CallFlowVersion.version == version,
                )
            ).first()
        if row is None or row.status != "published":
            return None
        return parse_flow(row.document)

    async def profile(self, account_id: str) -> AccountProfile:
        cached = self._profiles.get(account_id)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        profile = await asyncio.to_thread(self._read_profile, account_id)
        if len(self._profiles) > 4 * self._cache_size:
            self._profiles.clear()
        self._profiles[account_id] = (time.monotonic(), profile)
        return profile

    def _read_profile(self, account_id: str) -> AccountProfile:
        from control.db import models as m

        with self.engine.connect() as c:
            chain: list[Mapping[str, Any]] = []
            current: str | None = account_id
            while current and len(chain) < 16:  # the tree is shallow; the cap guards a cycle
                row = c.execute(select(m.Account).where(m.Account.id == current)).first()
                if row is None:
                    break
                chain.append(dict(row._mapping))
                current = row.parent_id
            schedules = c.execute(
                select(m.TimeSchedule).where(m.TimeSchedule.account_id == account_id)
            ).all()
        settings = effective_settings(chain)
        return AccountProfile(
            timezone=settings["timezone"],
            language=settings["language"],
            voice_gender=settings["voice_gender"],
            schedules={s.id: schedule_of(s) for s in schedules},
        )
