"""config_meta: platform facts such as the config version that invalidates worker caches

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "config_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.bulk_insert(table, [{"key": "config_version", "value": "1"}])


def downgrade() -> None:
    op.drop_table("config_meta")
