"""tenant config model

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("parent_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_reseller", sa.Integer(), nullable=False),
        sa.Column("is_platform", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("voice_gender", sa.String(length=8), nullable=True),
        sa.Column("brand_name", sa.String(length=200), nullable=True),
        sa.Column("brand_domain", sa.String(length=255), nullable=True),
        sa.Column("max_in", sa.Integer(), nullable=True),
        sa.Column("max_out", sa.Integer(), nullable=True),
        sa.Column("max_dialer", sa.Integer(), nullable=True),
        sa.Column("default_cid_number", sa.String(length=32), nullable=True),
        sa.Column("did_default_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("did_default_dest_id", sa.String(length=40), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["accounts.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("brand_domain"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=24), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("last_used_at", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_account_id"), ["account_id"], unique=False)

    op.create_table(
        "call_flows",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("call_flows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_flows_account_id"), ["account_id"], unique=False)

    op.create_table(
        "call_limits",
        sa.Column("scope_kind", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.String(length=40), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("period_sec", sa.Integer(), nullable=False),
        sa.Column("max_count", sa.Integer(), nullable=False),
        sa.Column("hard", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("call_limits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_limits_account_id"), ["account_id"], unique=False)

    op.create_table(
        "conferences",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("max_members", sa.Integer(), nullable=True),
        sa.Column("pin_secret_ref", sa.String(length=200), nullable=True),
        sa.Column("record", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conferences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conferences_account_id"), ["account_id"], unique=False)

    op.create_table(
        "dids",
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dest_kind", sa.String(length=16), nullable=True),
        sa.Column("dest_id", sa.String(length=40), nullable=True),
        sa.Column("dest_xform", sa.JSON(), nullable=True),
        sa.Column("max_channels", sa.Integer(), nullable=True),
        sa.Column("fax_mode", sa.String(length=16), nullable=False),
        sa.Column("allow_anonymous", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.String(length=40), nullable=True),
        sa.Column("closed_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("closed_dest_id", sa.String(length=40), nullable=True),
        sa.Column("holiday_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("holiday_dest_id", sa.String(length=40), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("e164"),
    )
    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dids_account_id"), ["account_id"], unique=False)

    op.create_table(
        "extensions",
        sa.Column("digits", sa.String(length=32), nullable=False),
        sa.Column("dest_kind", sa.String(length=16), nullable=True),
        sa.Column("dest_id", sa.String(length=40), nullable=True),
        sa.Column("dest_xform", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("schedule_id", sa.String(length=40), nullable=True),
        sa.Column("closed_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("closed_dest_id", sa.String(length=40), nullable=True),
        sa.Column("holiday_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("holiday_dest_id", sa.String(length=40), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "digits"),
    )
    with op.batch_alter_table("extensions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_extensions_account_id"), ["account_id"], unique=False)

    op.create_table(
        "forward_targets",
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("trunk_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("forward_targets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_forward_targets_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "media_files",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("media_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_media_files_account_id"), ["account_id"], unique=False)

    op.create_table(
        "queues",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("agent_ring_timeout_sec", sa.Integer(), nullable=False),
        sa.Column("max_wait_sec", sa.Integer(), nullable=False),
        sa.Column("wrap_up_sec", sa.Integer(), nullable=False),
        sa.Column("max_no_answer", sa.Integer(), nullable=False),
        sa.Column("announce_position", sa.Integer(), nullable=False),
        sa.Column("announce_first_sec", sa.Integer(), nullable=False),
        sa.Column("announce_interval_sec", sa.Integer(), nullable=False),
        sa.Column("moh_mode", sa.String(length=8), nullable=False),
        sa.Column("moh_media_id", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("timeout_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("timeout_dest_id", sa.String(length=40), nullable=True),
        sa.Column("abandon_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("abandon_dest_id", sa.String(length=40), nullable=True),
        sa.Column("no_agents_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("no_agents_dest_id", sa.String(length=40), nullable=True),
        sa.Column("queue_full_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("queue_full_dest_id", sa.String(length=40), nullable=True),
        sa.Column("ewt_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("ewt_dest_id", sa.String(length=40), nullable=True),
        sa.Column("max_queued", sa.Integer(), nullable=True),
        sa.Column("ewt_threshold_sec", sa.Integer(), nullable=True),
        sa.Column("ewt_aht_sec", sa.Integer(), nullable=True),
        sa.Column("schedule_id", sa.String(length=40), nullable=True),
        sa.Column("closed_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("closed_dest_id", sa.String(length=40), nullable=True),
        sa.Column("holiday_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("holiday_dest_id", sa.String(length=40), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queues_account_id"), ["account_id"], unique=False)

    op.create_table(
        "ring_groups",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("ring_timeout_sec", sa.Integer(), nullable=False),
        sa.Column("moh_media_id", sa.String(length=40), nullable=True),
        sa.Column("exit_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("exit_dest_id", sa.String(length=40), nullable=True),
        sa.Column("schedule_id", sa.String(length=40), nullable=True),
        sa.Column("closed_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("closed_dest_id", sa.String(length=40), nullable=True),
        sa.Column("holiday_dest_kind", sa.String(length=16), nullable=True),
        sa.Column("holiday_dest_id", sa.String(length=40), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ring_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ring_groups_account_id"), ["account_id"], unique=False)

    op.create_table(
        "sip_domains",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("is_primary", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain"),
    )
    with op.batch_alter_table("sip_domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sip_domains_account_id"), ["account_id"], unique=False)

    op.create_table(
        "sip_trunks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("proxy", sa.String(length=255), nullable=True),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("do_register", sa.Integer(), nullable=False),
        sa.Column("auth_username", sa.String(length=128), nullable=True),
        sa.Column("auth_secret_ref", sa.String(length=200), nullable=True),
        sa.Column("realm", sa.String(length=255), nullable=True),
        sa.Column("from_domain", sa.String(length=255), nullable=True),
        sa.Column("from_user", sa.String(length=128), nullable=True),
        sa.Column("expire_sec", sa.Integer(), nullable=False),
        sa.Column("cid_number", sa.String(length=32), nullable=True),
        sa.Column("max_channels", sa.Integer(), nullable=True),
        sa.Column("inbound_auth", sa.String(length=16), nullable=False),
        sa.Column("inbound_ips", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sip_trunks_account_id"), ["account_id"], unique=False)

    op.create_table(
        "sip_users",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("is_agent", sa.Integer(), nullable=False),
        sa.Column("out_cid_number", sa.String(length=32), nullable=True),
        sa.Column("out_cid_name", sa.String(length=100), nullable=True),
        sa.Column("max_simultaneous", sa.Integer(), nullable=True),
        sa.Column("ring_strategy", sa.String(length=16), nullable=False),
        sa.Column("ring_timeout_sec", sa.Integer(), nullable=False),
        sa.Column("voicemail_id", sa.String(length=40), nullable=True),
        sa.Column("dnd", sa.Integer(), nullable=False),
        sa.Column("fwd_always_kind", sa.String(length=16), nullable=True),
        sa.Column("fwd_always_id", sa.String(length=40), nullable=True),
        sa.Column("fwd_busy_kind", sa.String(length=16), nullable=True),
        sa.Column("fwd_busy_id", sa.String(length=40), nullable=True),
        sa.Column("fwd_noanswer_kind", sa.String(length=16), nullable=True),
        sa.Column("fwd_noanswer_id", sa.String(length=40), nullable=True),
        sa.Column("auto_ready_on_login", sa.Integer(), nullable=False),
        sa.Column("auto_queue_login", sa.Integer(), nullable=False),
        sa.Column("allow_pstn_blind_transfer", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "username"),
    )
    with op.batch_alter_table("sip_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sip_users_account_id"), ["account_id"], unique=False)

    op.create_table(
        "time_schedules",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("time_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_time_schedules_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "voicemail_boxes",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("greeting_media_id", sa.String(length=40), nullable=True),
        sa.Column("skip_instructions", sa.Integer(), nullable=False),
        sa.Column("quota_mb", sa.Integer(), nullable=False),
        sa.Column("notify_email", sa.String(length=320), nullable=True),
        sa.Column("pin_secret_ref", sa.String(length=200), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("voicemail_boxes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_voicemail_boxes_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "agent_queue_assignments",
        sa.Column("queue_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("tier_level", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["queue_id"], ["queues.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["sip_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("queue_id", "user_id"),
    )
    with op.batch_alter_table("agent_queue_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_agent_queue_assignments_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_agent_queue_assignments_queue_id"), ["queue_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_agent_queue_assignments_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "call_flow_versions",
        sa.Column("flow_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["flow_id"], ["call_flows.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flow_id", "version"),
    )
    with op.batch_alter_table("call_flow_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_call_flow_versions_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_call_flow_versions_flow_id"), ["flow_id"], unique=False
        )

    op.create_table(
        "in_queue_options",
        sa.Column("queue_id", sa.String(length=40), nullable=False),
        sa.Column("digit", sa.String(length=1), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("dest_kind", sa.String(length=16), nullable=True),
        sa.Column("dest_id", sa.String(length=40), nullable=True),
        sa.Column("webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("webhook_secret_ref", sa.String(length=200), nullable=True),
        sa.Column("stay_in_queue", sa.Integer(), nullable=False),
        sa.Column("prompt_media_id", sa.String(length=40), nullable=True),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["queue_id"], ["queues.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("queue_id", "digit"),
    )
    with op.batch_alter_table("in_queue_options", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_in_queue_options_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_in_queue_options_queue_id"), ["queue_id"], unique=False
        )

    op.create_table(
        "sip_devices",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("auth_username", sa.String(length=64), nullable=False),
        sa.Column("realm", sa.String(length=255), nullable=False),
        sa.Column("ha1", sa.String(length=32), nullable=False),
        sa.Column("ha1b", sa.String(length=32), nullable=False),
        sa.Column("ha1_sha256", sa.String(length=64), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("is_webrtc", sa.Integer(), nullable=False),
        sa.Column("ring_order", sa.Integer(), nullable=False),
        sa.Column("ring_on_fork", sa.Integer(), nullable=False),
        sa.Column("ring_specific", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["sip_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("auth_username", "realm"),
    )
    with op.batch_alter_table("sip_devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sip_devices_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sip_devices_user_id"), ["user_id"], unique=False)

    op.create_table(
        "flow_references",
        sa.Column("version_id", sa.String(length=40), nullable=False),
        sa.Column("ref_table", sa.String(length=32), nullable=False),
        sa.Column("ref_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["call_flow_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("version_id", "ref_table", "ref_id"),
    )
    with op.batch_alter_table("flow_references", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flow_references_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index("ix_flow_references_target", ["ref_table", "ref_id"], unique=False)

    op.create_table(
        "ring_group_members",
        sa.Column("ring_group_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("device_id", sa.String(length=40), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("delay_sec", sa.Integer(), nullable=False),
        sa.Column("timeout_sec", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["device_id"], ["sip_devices.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ring_group_id"], ["ring_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["sip_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ring_group_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ring_group_members_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ring_group_members_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ring_group_members_ring_group_id"), ["ring_group_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ring_group_members_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ring_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ring_group_members_user_id"))
        batch_op.drop_index(batch_op.f("ix_ring_group_members_ring_group_id"))
        batch_op.drop_index(batch_op.f("ix_ring_group_members_device_id"))
        batch_op.drop_index(batch_op.f("ix_ring_group_members_account_id"))

    op.drop_table("ring_group_members")
    with op.batch_alter_table("flow_references", schema=None) as batch_op:
        batch_op.drop_index("ix_flow_references_target")
        batch_op.drop_index(batch_op.f("ix_flow_references_account_id"))

    op.drop_table("flow_references")
    with op.batch_alter_table("sip_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sip_devices_user_id"))
        batch_op.drop_index(batch_op.f("ix_sip_devices_account_id"))

    op.drop_table("sip_devices")
    with op.batch_alter_table("in_queue_options", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_in_queue_options_queue_id"))
        batch_op.drop_index(batch_op.f("ix_in_queue_options_account_id"))

    op.drop_table("in_queue_options")
    with op.batch_alter_table("call_flow_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_flow_versions_flow_id"))
        batch_op.drop_index(batch_op.f("ix_call_flow_versions_account_id"))

    op.drop_table("call_flow_versions")
    with op.batch_alter_table("agent_queue_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_queue_assignments_user_id"))
        batch_op.drop_index(batch_op.f("ix_agent_queue_assignments_queue_id"))
        batch_op.drop_index(batch_op.f("ix_agent_queue_assignments_account_id"))

    op.drop_table("agent_queue_assignments")
    with op.batch_alter_table("voicemail_boxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voicemail_boxes_account_id"))

    op.drop_table("voicemail_boxes")
    with op.batch_alter_table("time_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_time_schedules_account_id"))

    op.drop_table("time_schedules")
    with op.batch_alter_table("sip_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sip_users_account_id"))

    op.drop_table("sip_users")
    with op.batch_alter_table("sip_trunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sip_trunks_account_id"))

    op.drop_table("sip_trunks")
    with op.batch_alter_table("sip_domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sip_domains_account_id"))

    op.drop_table("sip_domains")
    with op.batch_alter_table("ring_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ring_groups_account_id"))

    op.drop_table("ring_groups")
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queues_account_id"))

    op.drop_table("queues")
    with op.batch_alter_table("media_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_files_account_id"))

    op.drop_table("media_files")
    with op.batch_alter_table("forward_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forward_targets_account_id"))

    op.drop_table("forward_targets")
    with op.batch_alter_table("extensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_extensions_account_id"))

    op.drop_table("extensions")
    with op.batch_alter_table("dids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dids_account_id"))

    op.drop_table("dids")
    with op.batch_alter_table("conferences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conferences_account_id"))

    op.drop_table("conferences")
    with op.batch_alter_table("call_limits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_limits_account_id"))

    op.drop_table("call_limits")
    with op.batch_alter_table("call_flows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_flows_account_id"))

    op.drop_table("call_flows")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_account_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_parent_id"))

    op.drop_table("accounts")
