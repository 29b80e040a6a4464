"""Gold questions, worker blocks, review rounds and dynamic overlap.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 20:10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
DOUBLE = sa.Float(precision=53)


def upgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        # Server defaults fill the existing rows, then go: the model supplies the defaults.
        batch_op.add_column(sa.Column('gold_rate', DOUBLE, nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('gold_accuracy_floor', DOUBLE, nullable=True))
        batch_op.add_column(sa.Column('gold_min_answers', sa.Integer(), nullable=False,
                                      server_default='10'))
        batch_op.add_column(sa.Column('target_confidence', DOUBLE, nullable=False,
                                      server_default='0.95'))
        batch_op.add_column(sa.Column('max_overlap', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('review_workforce_id', ID, nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_projects_review_workforce_id_workforces'),
                                    'workforces', ['review_workforce_id'], ['id'])
        batch_op.create_check_constraint(
            batch_op.f('ck_projects_gold_rate_range'), 'gold_rate >= 0 AND gold_rate < 1')
        batch_op.create_check_constraint(
            batch_op.f('ck_projects_target_confidence_range'),
            'target_confidence > 0 AND target_confidence <= 1')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.alter_column('gold_rate', server_default=None)
        batch_op.alter_column('gold_min_answers', server_default=None)
        batch_op.alter_column('target_confidence', server_default=None)

    op.create_table('worker_blocks',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('worker_id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('run_id', ID, nullable=True),
    sa.Column('gold_answers', sa.Integer(), nullable=False),
    sa.Column('gold_correct', sa.Integer(), nullable=False),
    sa.Column('accuracy', DOUBLE, nullable=False),
    sa.Column('floor', DOUBLE, nullable=False),
    sa.Column('blocked_at', TIMESTAMP, nullable=False),
    sa.Column('lifted_at', TIMESTAMP, nullable=True),
    sa.Column('lifted_by_id', ID, nullable=True),
    sa.Column('lift_reason', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['lifted_by_id'], ['accounts.id'], name=op.f('fk_worker_blocks_lifted_by_id_accounts')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_worker_blocks_project_id_projects')),
    sa.ForeignKeyConstraint(['run_id'], ['consensus_runs.id'], name=op.f('fk_worker_blocks_run_id_consensus_runs')),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_worker_blocks_worker_id_workers')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_worker_blocks_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_blocks'))
    )
    with op.batch_alter_table('worker_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_blocks_project_id'), ['project_id'], unique=False)
        batch_op.create_index('ix_worker_blocks_workforce_id_lifted_at', ['workforce_id', 'lifted_at'],
                              unique=False)

    op.create_table('review_items',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('task_id', ID, nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('run_id', ID, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('leased_by_id', ID, nullable=True),
    sa.Column('lease_expires_at', TIMESTAMP, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("reason IN ('uncertain_at_max_overlap', 'gold_conflict')", name=op.f('ck_review_items_reason_known')),
    sa.CheckConstraint("status IN ('open', 'leased', 'decided')", name=op.f('ck_review_items_status_known')),
    sa.ForeignKeyConstraint(['leased_by_id'], ['workforces.id'], name=op.f('fk_review_items_leased_by_id_workforces')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_review_items_project_id_projects')),
    sa.ForeignKeyConstraint(['run_id'], ['consensus_runs.id'], name=op.f('fk_review_items_run_id_consensus_runs')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_review_items_task_id_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_items')),
    sa.UniqueConstraint('task_id', name=op.f('uq_review_items_task_id'))
    )
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index('ix_review_items_project_id_status', ['project_id', 'status', 'id'],
                              unique=False)

    op.create_table('review_verdicts',
    sa.Column('id', ID, nullable=False),
    sa.Column('review_item_id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('task_id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('reviewer_id', ID, nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('decided_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_review_verdicts_project_id_projects')),
    sa.ForeignKeyConstraint(['review_item_id'], ['review_items.id'], name=op.f('fk_review_verdicts_review_item_id_review_items')),
    sa.ForeignKeyConstraint(['reviewer_id'], ['workers.id'], name=op.f('fk_review_verdicts_reviewer_id_workers')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_review_verdicts_task_id_tasks')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_review_verdicts_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_verdicts')),
    sa.UniqueConstraint('review_item_id', name=op.f('uq_review_verdicts_review_item_id')),
    sa.UniqueConstraint('task_id', name=op.f('uq_review_verdicts_task_id'))
    )


def downgrade() -> None:
    op.drop_table('review_verdicts')
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index('ix_review_items_project_id_status')
    op.drop_table('review_items')
    with op.batch_alter_table('worker_blocks', schema=None) as batch_op:
        batch_op.drop_index('ix_worker_blocks_workforce_id_lifted_at')
        batch_op.drop_index(batch_op.f('ix_worker_blocks_project_id'))
    op.drop_table('worker_blocks')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_projects_target_confidence_range'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_projects_gold_rate_range'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_projects_review_workforce_id_workforces'),
                                 type_='foreignkey')
        batch_op.drop_column('review_workforce_id')
        batch_op.drop_column('max_overlap')
        batch_op.drop_column('target_confidence')
        batch_op.drop_column('gold_min_answers')
        batch_op.drop_column('gold_accuracy_floor')
        batch_op.drop_column('gold_rate')
