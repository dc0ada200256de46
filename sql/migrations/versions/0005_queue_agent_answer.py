"""queues.agent_whisper / agent_confirm: what an agent hears and must press on answering

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("agent_whisper", "agent_confirm")


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
