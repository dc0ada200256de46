"""Fixtures: the session stack's Redis with a key prefix of the test's own, and limits."""

from __future__ import annotations

import pytest
import redis

from control.core.admission import AccountLimits, LimitBook, Rule, TrunkLimits
from control.live.admission import AdmissionStore


@pytest.fixture
def store(redis_client: redis.Redis, prefix: str) -> AdmissionStore:
    return AdmissionStore(redis_client, prefix=f"{prefix}:cac", node="n1")


@pytest.fixture
def book() -> LimitBook:
    """acc_a: 3 in / 2 out; users us_a1 (1 call), us_a2 (2 calls); DID did_a1 (2 channels);
    its own trunk tr_a; a platform carrier tr_p (owned by acc_p, 4 channels) shared with acc_b."""
    return LimitBook(
        accounts={
            "acc_a": AccountLimits(max_in=3, max_out=2, max_dialer=1),
            "acc_b": AccountLimits(max_in=10),
            "acc_p": AccountLimits(),
        },
        users={"us_a1": 1, "us_a2": 2, "us_b1": None},
        dids={"did_a1": 2, "did_b1": None},
        trunks={
            "tr_a": TrunkLimits("acc_a", None),
            "tr_p": TrunkLimits("acc_p", 4),
        },
        rules={"acc_p": (Rule("lim_p", "acc_p", "trunk", "tr_p", "in", 60, 1000, True),)},
    )
