"""Initial schema: workforces, accounts, API tokens, audit events, projects and tasks.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:37
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Spelled out here rather than imported, so later model changes cannot alter this migration.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workforces",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("countries", JSON_DOC, nullable=False),
        sa.Column("languages", JSON_DOC, nullable=False),
        sa.Column("daily_capacity", sa.Integer(), nullable=False),
        sa.Column("price_per_label", sa.Numeric(12, 4), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("kind IN ('vendor', 'mturk')", name=op.f("ck_workforces_kind_known")),
        sa.CheckConstraint("daily_capacity >= 0", name=op.f("ck_workforces_capacity_not_negative")),
        sa.CheckConstraint("price_per_label >= 0", name=op.f("ck_workforces_price_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workforces")),
        sa.UniqueConstraint("name", name=op.f("uq_workforces_name")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("workforce_id", ID, nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "(role = 'vendor') = (workforce_id IS NOT NULL)",
            name=op.f("ck_accounts_vendor_has_workforce"),
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'manager', 'vendor', 'auditor')", name=op.f("ck_accounts_role_known")
        ),
        sa.ForeignKeyConstraint(
            ["workforce_id"], ["workforces.id"], name=op.f("fk_accounts_workforce_id_workforces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("display_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_api_tokens_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("actor_id", ID, nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("before", JSON_DOC, nullable=True),
        sa.Column("after", JSON_DOC, nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["accounts.id"], name=op.f("fk_audit_events_actor_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_occurred_at"), "audit_events", ["occurred_at"])
    op.create_index("ix_audit_events_subject", "audit_events", ["subject_type", "subject_id"])
    op.create_table(
        "projects",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("label_classes", JSON_DOC, nullable=False),
        sa.Column("source_locale", sa.String(35), nullable=False),
        sa.Column("redundancy", sa.Integer(), nullable=False),
        sa.Column("residency_region", sa.String(32), nullable=False),
        sa.Column("created_by_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("redundancy BETWEEN 1 AND 25", name=op.f("ck_projects_redundancy_range")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["accounts.id"], name=op.f("fk_projects_created_by_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("languages", JSON_DOC, nullable=False),
        sa.Column("gold", sa.String(200), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_tasks_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint(
            "project_id", "external_id", name=op.f("uq_tasks_project_id_external_id")
        ),
    )
    op.create_index("ix_tasks_project_id_content_hash", "tasks", ["project_id", "content_hash"])


def downgrade() -> None:
    op.drop_index("ix_tasks_project_id_content_hash", table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("projects")
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_occurred_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("api_tokens")
    op.drop_table("accounts")
    op.drop_table("workforces")
