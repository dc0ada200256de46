"""Config tables. The schema of record is the Alembic history in ``sql/migrations``."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ConfigMeta(Base):
    """Platform-wide key/value facts, e.g. ``config_version``: bumped on every provisioning
    change so that caches in Kamailio workers know when to reload."""

    __tablename__ = "config_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
