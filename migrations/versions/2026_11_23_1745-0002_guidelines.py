"""Guidelines: versions, frozen segments and their translations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:45
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "guideline_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("project_id", ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("source_markdown", sa.Text(), nullable=False),
        sa.Column("source_locale", sa.String(35), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("created_by_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("published_at", TIMESTAMP, nullable=True),
        sa.Column("published_by_id", ID, nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'published')", name=op.f("ck_guideline_versions_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_guideline_versions_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["accounts.id"],
            name=op.f("fk_guideline_versions_created_by_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["published_by_id"], ["accounts.id"],
            name=op.f("fk_guideline_versions_published_by_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_versions")),
        sa.UniqueConstraint(
            "project_id", "number", name=op.f("uq_guideline_versions_project_id_number")
        ),
    )
    op.create_table(
        "guideline_segments",
        sa.Column("id", ID, nullable=False),
        sa.Column("version_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("context", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("section", sa.String(300), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["guideline_versions.id"],
            name=op.f("fk_guideline_segments_version_id_guideline_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_segments")),
        sa.UniqueConstraint(
            "version_id", "context", name=op.f("uq_guideline_segments_version_id_context")
        ),
        sa.UniqueConstraint(
            "version_id", "position", name=op.f("uq_guideline_segments_version_id_position")
        ),
    )
    op.create_table(
        "segment_translations",
        sa.Column("id", ID, nullable=False),
        sa.Column("segment_id", ID, nullable=False),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("fuzzy", sa.Boolean(), nullable=False),
        sa.Column("previous_source", sa.Text(), nullable=True),
        sa.Column("updated_by_id", ID, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["guideline_segments.id"],
            name=op.f("fk_segment_translations_segment_id_guideline_segments"),
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["accounts.id"],
            name=op.f("fk_segment_translations_updated_by_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_translations")),
        sa.UniqueConstraint(
            "segment_id", "locale", name=op.f("uq_segment_translations_segment_id_locale")
        ),
    )
    op.create_index("ix_segment_translations_locale", "segment_translations", ["locale"])


def downgrade() -> None:
    op.drop_index("ix_segment_translations_locale", table_name="segment_translations")
    op.drop_table("segment_translations")
    op.drop_table("guideline_segments")
    op.drop_table("guideline_versions")
