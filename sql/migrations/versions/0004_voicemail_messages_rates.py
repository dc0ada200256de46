"""voicemail_messages (SPEC 10) and rates (the rate table behind call_cdr.cost_micros)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _stamped() -> list[sa.Column]:
    return [
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column(
            "account_id",
            sa.String(length=40),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "voicemail_messages",
        *_stamped(),
        sa.Column(
            "box_id",
            sa.String(length=40),
            sa.ForeignKey("voicemail_boxes.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("caller_number", sa.String(length=64), nullable=True),
        sa.Column("caller_name", sa.String(length=128), nullable=True),
        sa.Column("duration_sec", sa.Integer(), nullable=False),
        sa.Column("media_key", sa.String(length=500), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=8), nullable=False),
        sa.Column("heard_at", sa.Integer(), nullable=True),
    )
    op.create_table(
        "rates",
        *_stamped(),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("per_minute_micros", sa.Integer(), nullable=False),
        sa.Column("connect_micros", sa.Integer(), nullable=False),
        sa.Column("min_sec", sa.Integer(), nullable=False),
        sa.Column("increment_sec", sa.Integer(), nullable=False),
        sa.UniqueConstraint("account_id", "direction", "prefix"),
    )


def downgrade() -> None:
    op.drop_table("rates")
    op.drop_table("voicemail_messages")
