"""The config-DB flow loader on a migrated SQLite database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import insert, update

from control.db import make_engine
from control.db import models as m
from control.db.migrate import upgrade
from esl.flows import SqlFlowSource, load_for_start, load_pinned
from tests.esl.harness import doc


def flow_doc(flow_id: str, version: int, target: str | None = None) -> dict[str, object]:
    nodes = [
        {"id": "entry", "type": "entry", "data": {"kind": "entry", "trigger": "inbound"}},
        {"id": "hi", "type": "say", "data": {"kind": "say", "text": f"v{version}"}},
    ]
    edges = [{"id": "e1", "source": "entry", "target": "hi"}]
    if target:
        nodes.append({"id": "go", "type": "goto", "data": {"kind": "goto", "flowId": target}})
        edges.append({"id": "e2", "source": "hi", "target": "go"})
    return {"id": flow_id, "name": flow_id, "version": version, "start": "entry",
            "nodes": nodes, "edges": edges}  # fmt: skip


def test_published_versions_per_account_with_inherited_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(insert(m.Account).values(id="acc_root", name="r", timezone="Europe/Paris",
                                           language="fr-FR"))  # fmt: skip
        c.execute(insert(m.Account).values(id="acc_kid", name="k", parent_id="acc_root",
                                           voice_gender="female"))  # fmt: skip
        c.execute(insert(m.Account).values(id="acc_other", name="o"))
        for flow_id, account, live in (("flow_a", "acc_kid", 1), ("flow_b", "acc_kid", 1),
                                       ("flow_x", "acc_other", 1)):  # fmt: skip
            c.execute(insert(m.CallFlow).values(id=flow_id, account_id=account, name=flow_id,
                                                published_version=live))  # fmt: skip
        rows = [
            ("flow_a", "acc_kid", 1, "published", flow_doc("flow_a", 1, target="flow_b")),
            ("flow_a", "acc_kid", 2, "draft", flow_doc("flow_a", 2)),
            ("flow_b", "acc_kid", 1, "published", flow_doc("flow_b", 1)),
            ("flow_x", "acc_other", 1, "published", doc("main-ivr.json") | {"id": "flow_x"}),
        ]
        for flow_id, account, version, status, document in rows:
            c.execute(insert(m.CallFlowVersion).values(
                id=f"{flow_id}_{version}", flow_id=flow_id, account_id=account, version=version,
                status=status, document=document,
            ))  # fmt: skip
        c.execute(insert(m.TimeSchedule).values(
            id="sch_1", account_id="acc_kid", name="office", timezone=None,
            rules=[{"kind": "weekly", "dow": 1, "start_time": "09:00", "end_time": "17:00"}],
        ))  # fmt: skip

    async def main() -> None:
        source = SqlFlowSource(engine, ttl=0)  # every lookup reads the DB
        live = await source.flow("acc_kid", "flow_a", None)
        assert live is not None and live.version == 1  # the draft is never served
        assert await source.flow("acc_kid", "flow_a", 2) is None
        assert await source.flow("acc_kid", "flow_x", None) is None  # another tenant's flow
        assert await source.flow("acc_other", "flow_x", None) is not None
        profile = await source.profile("acc_kid")
        assert (profile.timezone, profile.language, profile.voice_gender) == (
            "Europe/Paris", "fr-FR", "female",
        )  # fmt: skip
        assert profile.schedules["sch_1"].rules[0].start_time == "09:00"
        loaded = await load_for_start(source, "acc_kid", "flow", "flow_a", None)
        assert loaded is not None
        root, ctx = loaded
        assert root.id == "flow_a" and set(ctx.flows) == {"flow_b"}  # sub-flows pinned at start
        assert ctx.account_timezone == "Europe/Paris" and "sch_1" in ctx.schedules
        with engine.begin() as c:  # publishing v2 later does not change a running call
            c.execute(update(m.CallFlowVersion).where(m.CallFlowVersion.id == "flow_a_2")
                      .values(status="published"))  # fmt: skip
            c.execute(update(m.CallFlow).where(m.CallFlow.id == "flow_a")
                      .values(published_version=2))  # fmt: skip
        pinned = await load_pinned(source, "acc_kid", "flow_a", {"flow_a": 1, "flow_b": 1})
        assert pinned is not None and pinned[0].version == 1
        again = await source.flow("acc_kid", "flow_a", None)
        assert again is not None and again.version == 2

    asyncio.run(main())
    engine.dispose()
