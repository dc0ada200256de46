"""Draft and published versions: drafts change, published versions never do."""

from __future__ import annotations

import pytest

from control.core.flow import (
    AccountRefs,
    FlowInvalid,
    FlowVersion,
    VersionImmutable,
    VersionStatus,
    live_version,
    new_draft,
    publish,
    save_draft,
)
from tests.core.flowkit import edge, flow, node

DRAFT = VersionStatus.DRAFT
PUBLISHED = VersionStatus.PUBLISHED


def doc(version: int, audio: str = "media_a") -> dict[str, object]:
    return flow([node("p", "play", audioId=audio)], [], flow_id="flow_1", version=version)


def test_a_draft_is_saved_even_when_half_built_but_publishing_needs_a_valid_flow() -> None:
    draft = FlowVersion("flow_1", 1, DRAFT, doc(1))
    unreachable = flow([node("p", "play", audioId="a"), node("x", "hangup")], [], flow_id="flow_1")
    saved = save_draft(draft, {**unreachable, "viewport": {"zoom": 1}})
    assert saved.document["viewport"] == {"zoom": 1} and saved.status is DRAFT
    with pytest.raises(FlowInvalid, match=r"nodes\[2\]: node 'x' is unreachable"):
        publish(saved, now_s=1_700_000_000)
    with pytest.raises(FlowInvalid, match=r"nodes\[1\].data.kind: unknown node kind 'nope'"):
        save_draft(draft, flow([node("p", "nope")], [], flow_id="flow_1"))


def test_a_draft_keeps_its_flow_id_and_number() -> None:
    draft = FlowVersion("flow_1", 2, DRAFT, doc(2))
    with pytest.raises(FlowInvalid) as caught:
        save_draft(draft, {**doc(3), "id": "flow_9"})
    assert [str(e) for e in caught.value.errors] == [
        "id: must stay 'flow_1'",
        "version: a draft keeps its number 2",
    ]


def test_published_versions_are_immutable() -> None:
    live = publish(FlowVersion("flow_1", 1, DRAFT, doc(1)), now_s=1_700_000_000)
    assert (live.status, live.published_at) == (PUBLISHED, 1_700_000_000)
    with pytest.raises(VersionImmutable):
        save_draft(live, doc(1, "media_b"))
    with pytest.raises(VersionImmutable):
        publish(live, now_s=1_700_000_001)


def test_publish_checks_account_references() -> None:
    draft = FlowVersion("flow_1", 1, DRAFT, doc(1, "media_gone"))
    with pytest.raises(FlowInvalid, match="no media file 'media_gone' in this account"):
        publish(draft, 1, AccountRefs(media=frozenset({"media_a"})))


def test_new_drafts_bump_the_number_and_the_live_version_is_the_highest_published() -> None:
    v1 = publish(FlowVersion("flow_1", 1, DRAFT, doc(1)), now_s=10)
    v2 = new_draft([v1], base=v1)
    assert (v2.version, v2.status, v2.document["version"]) == (2, DRAFT, 2)
    with pytest.raises(VersionImmutable, match="already has an open draft"):
        new_draft([v1, v2], base=v1)
    assert live_version([v1, v2]) == v1
    v2 = publish(save_draft(v2, doc(2, "media_b")), now_s=20)
    assert live_version([v1, v2]) == v2
    rollback = publish(new_draft([v1, v2], base=v1), now_s=30)  # v3 carries v1's graph
    assert live_version([v1, v2, rollback]) == rollback
    assert rollback.document["nodes"] == v1.document["nodes"]
    assert live_version([FlowVersion("flow_1", 1, DRAFT, doc(1))]) is None


def test_edges_survive_publishing_untouched() -> None:
    raw = flow(
        [node("p", "play", audioId="a"), node("h", "hangup")], [edge("p", "h")], flow_id="flow_1"
    )
    raw["edges"][1]["animated"] = True
    live = publish(save_draft(FlowVersion("flow_1", 1, DRAFT, raw), raw), now_s=1)
    assert live.document == raw
