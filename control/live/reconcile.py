"""Repair drift between Redis and the dialogs Kamailio really has.

Feed it the call-ids of the live dialogs (Kamailio JSON-RPC ``dlg.list``, from every node
that shares this Redis, or from one node with ``node=`` set to the name its workers give the
``AdmissionStore``). For each account with admission state it then, in one script per
account:

- releases calls Redis holds that are no longer live (a lost BYE, a crashed worker), once
  they are older than ``grace`` (a dialog admitted after ``dlg.list`` ran is not yet in it);
- pushes back the deadline of live calls, which is what keeps long calls from expiring;
- rebuilds every counter from the call records and reports what differed (drift).

``adopt`` maps call-ids of live dialogs to the decision ``token`` stored with them; a live call
Redis does not know (admitted fail-open during an outage, or Redis restarted empty) takes its
counters again, without a limit check: a call that is up is never affected.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from control.core.admission import decode_held
from control.live.admission import AdmissionStore
from control.live.client import text
from control.live.scripts import ADOPT, RECONCILE


@dataclass
class AccountRepair:
    account_id: str
    released: list[str] = field(default_factory=list)  # call-ids given back: not live anymore
    refreshed: int = 0
    expired: int = 0
    adopted: list[str] = field(default_factory=list)
    drift: list[tuple[str, int, int]] = field(default_factory=list)  # (field, was, now)

    @property
    def changed(self) -> bool:
        return bool(self.released or self.expired or self.adopted or self.drift)


@dataclass
class Report:
    accounts: dict[str, AccountRepair] = field(default_factory=dict)

    @property
    def released(self) -> int:
        return sum(len(a.released) for a in self.accounts.values())

    @property
    def drifted(self) -> int:
        return sum(len(a.drift) for a in self.accounts.values())


def reconcile(
    store: AdmissionStore,
    live: Collection[str],
    *,
    node: str | None = None,
    grace: float = 5.0,
    adopt: Mapping[str, str] | None = None,
    accounts: Iterable[str] | None = None,
    still_live: Callable[[], Collection[str]] | None = None,
) -> Report:
    """One pass over ``accounts`` (default: every account with admission state in Redis).

    ``still_live`` reads the live calls again once adoption is done: a call that ended
    between ``live`` and its adoption has already released what it held, and adopting it
    would count it again until the next pass; it is given back at once."""
    redis = store.redis
    sec, usec = redis.time()
    now_ms = int(sec) * 1000 + int(usec) // 1000
    report = Report()
    adopting = _by_account(adopt or {}, live)
    names = set(accounts) if accounts is not None else known_accounts(store)
    for account in sorted(names | set(adopting)):
        repair = report.accounts.setdefault(account, AccountRepair(account))
        keys = store.keys.account(account)
        records = {text(k): text(v) for k, v in redis.hgetall(keys[2]).items()}
        gone, still = [], []
        for call_id, record in records.items():
            admitted, owner = _head(record)
            if node is not None and owner != node:
                continue
            if call_id in live:
                still.append(call_id)
            elif now_ms - admitted >= grace * 1000:
                gone.append(call_id)
        for call_id, fields in adopting.get(account, {}).items():
            if call_id not in records:
                args = [call_id, store.ttl_ms, node or store.node, *fields]
                if int(ADOPT(redis, keys, args)):
                    repair.adopted.append(call_id)
                    owners = " ".join(h.account_id for h in decode_held((adopt or {})[call_id]))
                    redis.set(store.keys.steering(call_id), owners, px=store.ttl_ms)
        reply = RECONCILE(redis, keys, [store.ttl_ms, len(gone), *gone, *still])
        repair.refreshed, repair.expired = int(reply[1]), int(reply[2])
        repair.released = gone
        repair.drift = [
            (text(reply[i]), int(reply[i + 1]), int(reply[i + 2])) for i in range(3, len(reply), 3)
        ]
        pipe = redis.pipeline(transaction=False)
        for call_id in still:  # a BYE must still find the account of a long call
            pipe.pexpire(store.keys.steering(call_id), store.ttl_ms)
        if gone:
            pipe.delete(*(store.keys.steering(c) for c in gone))
        pipe.execute()
        if not repair.changed and not repair.refreshed:
            del report.accounts[account]
    adopted = [c for repair in report.accounts.values() for c in repair.adopted]
    if adopted and still_live is not None:
        now_live = set(still_live())
        for call_id in adopted:
            if call_id not in now_live and store.release(call_id):
                for repair in report.accounts.values():
                    if call_id in repair.adopted:
                        repair.adopted.remove(call_id)
                        repair.released.append(call_id)
    return report


def known_accounts(store: AdmissionStore) -> set[str]:
    """Accounts with counters or call records in Redis (SCAN; every node of a cluster)."""
    found = set()
    for suffix in ("n", "calls"):
        pattern = f"{store.keys.prefix}:{{*}}:{suffix}"
        for key in store.redis.scan_iter(match=pattern, count=1000):
            account = store.keys.account_of(text(key))
            if account:
                found.add(account)
    return found


def _head(record: str) -> tuple[int, str]:
    head = record.split("\n", 1)[0]
    admitted, _, node = head.partition(" ")
    return int(admitted or 0), node


def _by_account(adopt: Mapping[str, str], live: Collection[str]) -> dict[str, dict[str, list[str]]]:
    """account -> call-id -> fields, for live calls only."""
    found: dict[str, dict[str, list[str]]] = {}
    for call_id, token in adopt.items():
        if call_id in live:
            for held in decode_held(token):
                found.setdefault(held.account_id, {})[call_id] = list(held.fields)
    return found
