"""The platform root account and its first key (``sipio admin bootstrap``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from control.api.auth import ALL, new_api_key
from control.api.store import bump_config_version, new_id
from control.db import make_engine
from control.db import models as m


class AlreadyBootstrapped(Exception):
    pass


def bootstrap(db_url: str, *, name: str = "Platform", new_key: bool = False) -> tuple[str, str]:
    """Create the platform account (once) and an all-scope key; returns (account id, key)."""
    engine = make_engine(db_url)
    try:
        with Session(engine) as session, session.begin():
            root = session.scalar(select(m.Account).where(m.Account.is_platform == 1))
            if root is not None and not new_key:
                raise AlreadyBootstrapped(
                    f"platform account {root.id} exists; use --new-key for another key"
                )
            if root is None:
                root = m.Account(
                    id=new_id("acc"), name=name, is_platform=1, is_reseller=1, timezone="UTC",
                    language="en-US", voice_gender="male",
                )  # fmt: skip
                session.add(root)
                session.flush()
            key, prefix, digest = new_api_key()
            session.add(
                m.ApiKey(
                    id=new_id("key"),
                    account_id=root.id,
                    name="bootstrap",
                    prefix=prefix,
                    key_hash=digest,
                    scopes=[ALL],
                )
            )
            bump_config_version(session)
            return root.id, key
    finally:
        engine.dispose()
