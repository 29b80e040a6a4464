"""Mechanical Turk: HIT types, HITs, qualifications and the MTurk side of assignments.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 20:20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('mturk_settings',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('reward', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('title', sa.String(length=128), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('keywords', sa.String(length=1000), nullable=False),
    sa.Column('assignment_duration_seconds', sa.Integer(), nullable=False),
    sa.Column('lifetime_seconds', sa.Integer(), nullable=False),
    sa.Column('auto_approval_delay_seconds', sa.Integer(), nullable=False),
    sa.Column('places', JSON_DOC, nullable=False),
    sa.Column('min_approval_rate', sa.Integer(), nullable=True),
    sa.Column('min_approved_hits', sa.Integer(), nullable=True),
    sa.Column('block_qualification_type_id', sa.String(length=64), nullable=True),
    sa.Column('review_policy', sa.String(length=16), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('updated_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("review_policy IN ('consensus', 'gold', 'manual')", name=op.f('ck_mturk_settings_policy_known')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_mturk_settings_project_id_projects')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_mturk_settings_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_settings')),
    sa.UniqueConstraint('project_id', 'workforce_id', name=op.f('uq_mturk_settings_project_id_workforce_id'))
    )
    op.create_table('mturk_hit_types',
    sa.Column('id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('guideline_version_id', ID, nullable=False),
    sa.Column('reward', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('params_hash', sa.String(length=64), nullable=False),
    sa.Column('hit_type_id', sa.String(length=64), nullable=False),
    sa.Column('params', JSON_DOC, nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['guideline_version_id'], ['guideline_versions.id'], name=op.f('fk_mturk_hit_types_guideline_version_id_guideline_versions')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_mturk_hit_types_project_id_projects')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_mturk_hit_types_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_hit_types')),
    sa.UniqueConstraint('params_hash', name=op.f('uq_mturk_hit_types_params_hash'))
    )
    op.create_table('mturk_hits',
    sa.Column('id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('task_id', ID, nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('hit_type_pk', ID, nullable=False),
    sa.Column('hit_id', sa.String(length=64), nullable=False),
    sa.Column('request_token', sa.String(length=64), nullable=False),
    sa.Column('max_assignments', sa.Integer(), nullable=False),
    sa.Column('reward', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('expires_at', TIMESTAMP, nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('polled_at', TIMESTAMP, nullable=True),
    sa.CheckConstraint('max_assignments BETWEEN 1 AND 9', name=op.f('ck_mturk_hits_below_fee_step')),
    sa.CheckConstraint("status IN ('live', 'expired', 'disposed')", name=op.f('ck_mturk_hits_status_known')),
    sa.ForeignKeyConstraint(['hit_type_pk'], ['mturk_hit_types.id'], name=op.f('fk_mturk_hits_hit_type_pk_mturk_hit_types')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_mturk_hits_project_id_projects')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_mturk_hits_task_id_tasks')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_mturk_hits_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_hits')),
    sa.UniqueConstraint('hit_id', name=op.f('uq_mturk_hits_hit_id')),
    sa.UniqueConstraint('request_token', name=op.f('uq_mturk_hits_request_token')),
    sa.UniqueConstraint('task_id', 'workforce_id', 'round', name=op.f('uq_mturk_hits_task_id_workforce_id_round'))
    )
    with op.batch_alter_table('mturk_hits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mturk_hits_project_id'), ['project_id'], unique=False)

    op.create_table('mturk_hit_slots',
    sa.Column('assignment_id', ID, nullable=False),
    sa.Column('hit_pk', ID, nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_mturk_hit_slots_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['hit_pk'], ['mturk_hits.id'], name=op.f('fk_mturk_hit_slots_hit_pk_mturk_hits')),
    sa.PrimaryKeyConstraint('assignment_id', name=op.f('pk_mturk_hit_slots'))
    )
    with op.batch_alter_table('mturk_hit_slots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mturk_hit_slots_hit_pk'), ['hit_pk'], unique=False)

    op.create_table('mturk_assignments',
    sa.Column('id', ID, nullable=False),
    sa.Column('mturk_assignment_id', sa.String(length=64), nullable=False),
    sa.Column('hit_pk', ID, nullable=False),
    sa.Column('assignment_id', ID, nullable=True),
    sa.Column('worker_external_id', sa.String(length=64), nullable=False),
    sa.Column('locale', sa.String(length=35), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('label_id', ID, nullable=True),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('problem', sa.String(length=500), nullable=True),
    sa.Column('answer_label', sa.String(length=200), nullable=True),
    sa.Column('review_reason', sa.String(length=1024), nullable=True),
    sa.Column('accepted_at', TIMESTAMP, nullable=False),
    sa.Column('submitted_at', TIMESTAMP, nullable=True),
    sa.Column('reviewed_at', TIMESTAMP, nullable=True),
    sa.CheckConstraint("status IN ('working', 'submitted', 'approved', 'rejected', 'invalid')", name=op.f('ck_mturk_assignments_status_known')),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_mturk_assignments_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['hit_pk'], ['mturk_hits.id'], name=op.f('fk_mturk_assignments_hit_pk_mturk_hits')),
    sa.ForeignKeyConstraint(['label_id'], ['labels.id'], name=op.f('fk_mturk_assignments_label_id_labels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_assignments')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_mturk_assignments_assignment_id')),
    sa.UniqueConstraint('mturk_assignment_id', name=op.f('uq_mturk_assignments_mturk_assignment_id'))
    )
    with op.batch_alter_table('mturk_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mturk_assignments_hit_pk'), ['hit_pk'], unique=False)

    op.create_table('mturk_bonuses',
    sa.Column('id', ID, nullable=False),
    sa.Column('mturk_assignment_pk', ID, nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('reason', sa.String(length=1024), nullable=False),
    sa.Column('request_token', sa.String(length=64), nullable=False),
    sa.Column('paid', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('paid_at', TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['mturk_assignment_pk'], ['mturk_assignments.id'], name=op.f('fk_mturk_bonuses_mturk_assignment_pk_mturk_assignments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mturk_bonuses')),
    sa.UniqueConstraint('request_token', name=op.f('uq_mturk_bonuses_request_token'))
    )
    with op.batch_alter_table('mturk_bonuses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mturk_bonuses_mturk_assignment_pk'), ['mturk_assignment_pk'], unique=False)

    op.create_table('mturk_qualification_syncs',
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('qualification_type_id', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('synced_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_mturk_qualification_syncs_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('workforce_id', 'qualification_type_id', name=op.f('pk_mturk_qualification_syncs'))
    )


def downgrade() -> None:
    op.drop_table('mturk_qualification_syncs')
    with op.batch_alter_table('mturk_bonuses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mturk_bonuses_mturk_assignment_pk'))
    op.drop_table('mturk_bonuses')
    with op.batch_alter_table('mturk_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mturk_assignments_hit_pk'))
    op.drop_table('mturk_assignments')
    with op.batch_alter_table('mturk_hit_slots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mturk_hit_slots_hit_pk'))
    op.drop_table('mturk_hit_slots')
    with op.batch_alter_table('mturk_hits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mturk_hits_project_id'))
    op.drop_table('mturk_hits')
    op.drop_table('mturk_hit_types')
    op.drop_table('mturk_settings')
