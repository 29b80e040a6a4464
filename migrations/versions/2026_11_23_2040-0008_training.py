"""Training runs, their predictions and the flags they raise.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 20:40
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
OPTIONAL_DOC = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
DOUBLE = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table('training_runs',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('consensus_run_id', ID, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('options', JSON_DOC, nullable=False),
    sa.Column('dataset_uri', sa.String(length=2000), nullable=True),
    sa.Column('dataset_hash', sa.String(length=64), nullable=False),
    sa.Column('guideline_version', sa.Integer(), nullable=True),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('output_uri', sa.String(length=2000), nullable=True),
    sa.Column('device', sa.String(length=200), nullable=True),
    sa.Column('metrics', OPTIONAL_DOC, nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by_id', ID, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('started_at', TIMESTAMP, nullable=True),
    sa.Column('finished_at', TIMESTAMP, nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f('ck_training_runs_status_known')),
    sa.ForeignKeyConstraint(['consensus_run_id'], ['consensus_runs.id'], name=op.f('fk_training_runs_consensus_run_id_consensus_runs')),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_training_runs_created_by_id_accounts')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_training_runs_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_runs'))
    )
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_runs_project_id'), ['project_id'], unique=False)

    op.create_table('prediction_imports',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('training_run_id', ID, nullable=False),
    sa.Column('consensus_run_id', ID, nullable=False),
    sa.Column('predictions_hash', sa.String(length=64), nullable=False),
    sa.Column('thresholds', JSON_DOC, nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('flagged', sa.Integer(), nullable=False),
    sa.Column('extra_labels', sa.Integer(), nullable=False),
    sa.Column('dispatch_run_id', ID, nullable=True),
    sa.Column('created_by_id', ID, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['consensus_run_id'], ['consensus_runs.id'], name=op.f('fk_prediction_imports_consensus_run_id_consensus_runs')),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_prediction_imports_created_by_id_accounts')),
    sa.ForeignKeyConstraint(['dispatch_run_id'], ['dispatch_runs.id'], name=op.f('fk_prediction_imports_dispatch_run_id_dispatch_runs')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_prediction_imports_project_id_projects')),
    sa.ForeignKeyConstraint(['training_run_id'], ['training_runs.id'], name=op.f('fk_prediction_imports_training_run_id_training_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prediction_imports')),
    sa.UniqueConstraint('project_id', 'predictions_hash', name=op.f('uq_prediction_imports_project_id_predictions_hash'))
    )
    with op.batch_alter_table('prediction_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_imports_project_id'), ['project_id'], unique=False)

    op.create_table('prediction_flags',
    sa.Column('import_id', ID, nullable=False),
    sa.Column('task_id', ID, nullable=False),
    sa.Column('consensus_label', sa.String(length=200), nullable=False),
    sa.Column('predicted_label', sa.String(length=200), nullable=False),
    sa.Column('predicted_probability', DOUBLE, nullable=False),
    sa.Column('consensus_probability', DOUBLE, nullable=False),
    sa.Column('redispatched', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['prediction_imports.id'], name=op.f('fk_prediction_flags_import_id_prediction_imports')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_prediction_flags_task_id_tasks')),
    sa.PrimaryKeyConstraint('import_id', 'task_id', name=op.f('pk_prediction_flags'))
    )
    op.create_table('model_agreements',
    sa.Column('import_id', ID, nullable=False),
    sa.Column('worker_id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('agreeing', sa.Integer(), nullable=False),
    sa.Column('skill', DOUBLE, nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['prediction_imports.id'], name=op.f('fk_model_agreements_import_id_prediction_imports')),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_model_agreements_worker_id_workers')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_model_agreements_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('import_id', 'worker_id', name=op.f('pk_model_agreements'))
    )


def downgrade() -> None:
    op.drop_table('model_agreements')
    op.drop_table('prediction_flags')
    with op.batch_alter_table('prediction_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_imports_project_id'))

    op.drop_table('prediction_imports')
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_runs_project_id'))

    op.drop_table('training_runs')
