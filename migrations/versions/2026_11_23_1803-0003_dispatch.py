"""Dispatch: routing runs and decisions, workers, assignments, labels, idempotent requests,
webhook deliveries; projects gain a residency rule, a lease length and a pause switch;
workforces gain a webhook.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:03:35.861478
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table('idempotent_requests',
    sa.Column('id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('response', JSON_DOC, nullable=False),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_idempotent_requests_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotent_requests')),
    sa.UniqueConstraint('workforce_id', 'key', name=op.f('uq_idempotent_requests_workforce_id_key'))
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('payload', JSON_DOC, nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', TIMESTAMP, nullable=False),
    sa.Column('last_attempt_at', TIMESTAMP, nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('delivered_at', TIMESTAMP, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name=op.f('ck_webhook_deliveries_status_known')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_webhook_deliveries_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_workforce', ['workforce_id', 'id'], unique=False)

    op.create_table('workers',
    sa.Column('id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('identity_hash', sa.String(length=128), nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_workers_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers')),
    sa.UniqueConstraint('workforce_id', 'external_id', name=op.f('uq_workers_workforce_id_external_id'))
    )
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workers_identity_hash'), ['identity_hash'], unique=False)

    op.create_table('dispatch_runs',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('created_by_id', ID, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.Column('task_filter', JSON_DOC, nullable=False),
    sa.Column('policy', JSON_DOC, nullable=False),
    sa.Column('guideline_version_id', ID, nullable=False),
    sa.Column('tasks_considered', sa.Integer(), nullable=False),
    sa.Column('assignments_created', sa.Integer(), nullable=False),
    sa.Column('unroutable', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_dispatch_runs_created_by_id_accounts')),
    sa.ForeignKeyConstraint(['guideline_version_id'], ['guideline_versions.id'], name=op.f('fk_dispatch_runs_guideline_version_id_guideline_versions')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_dispatch_runs_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_runs'))
    )
    with op.batch_alter_table('dispatch_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatch_runs_project_id'), ['project_id'], unique=False)

    op.create_table('assignments',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('task_id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('run_id', ID, nullable=True),
    sa.Column('guideline_version_id', ID, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('price', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('leased_at', TIMESTAMP, nullable=True),
    sa.Column('lease_expires_at', TIMESTAMP, nullable=True),
    sa.Column('guideline_locale', sa.String(length=35), nullable=True),
    sa.Column('worker_id', ID, nullable=True),
    sa.Column('submitted_at', TIMESTAMP, nullable=True),
    sa.Column('reviewed_at', TIMESTAMP, nullable=True),
    sa.Column('review_reason', sa.String(length=500), nullable=True),
    sa.Column('replaces_id', ID, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.CheckConstraint("status IN ('offered', 'leased', 'submitted', 'accepted', 'rejected', 'expired', 'cancelled')", name=op.f('ck_assignments_status_known')),
    sa.ForeignKeyConstraint(['guideline_version_id'], ['guideline_versions.id'], name=op.f('fk_assignments_guideline_version_id_guideline_versions')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_assignments_project_id_projects')),
    sa.ForeignKeyConstraint(['replaces_id'], ['assignments.id'], name=op.f('fk_assignments_replaces_id_assignments')),
    sa.ForeignKeyConstraint(['run_id'], ['dispatch_runs.id'], name=op.f('fk_assignments_run_id_dispatch_runs')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_assignments_task_id_tasks')),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_assignments_worker_id_workers')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_assignments_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments'))
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index('ix_assignments_lease', ['status', 'lease_expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_project_id'), ['project_id'], unique=False)
        batch_op.create_index('ix_assignments_pull', ['workforce_id', 'status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_task_id'), ['task_id'], unique=False)

    op.create_table('routing_decisions',
    sa.Column('id', ID, nullable=False),
    sa.Column('run_id', ID, nullable=False),
    sa.Column('task_id', ID, nullable=False),
    sa.Column('group', sa.String(length=200), nullable=False),
    sa.Column('chosen', JSON_DOC, nullable=False),
    sa.Column('scores', JSON_DOC, nullable=False),
    sa.Column('needed', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['dispatch_runs.id'], name=op.f('fk_routing_decisions_run_id_dispatch_runs')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_routing_decisions_task_id_tasks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_decisions'))
    )
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routing_decisions_task_id'), ['task_id'], unique=False)

    op.create_table('labels',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('task_id', ID, nullable=False),
    sa.Column('assignment_id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('worker_id', ID, nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('guideline_version_id', ID, nullable=False),
    sa.Column('guideline_locale', sa.String(length=35), nullable=False),
    sa.Column('counted', sa.Boolean(), nullable=False),
    sa.Column('set_aside', sa.String(length=32), nullable=True),
    sa.Column('supersedes_id', ID, nullable=True),
    sa.Column('submitted_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_labels_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['guideline_version_id'], ['guideline_versions.id'], name=op.f('fk_labels_guideline_version_id_guideline_versions')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_labels_project_id_projects')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['labels.id'], name=op.f('fk_labels_supersedes_id_labels')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_labels_task_id_tasks')),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_labels_worker_id_workers')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_labels_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labels'))
    )
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_labels_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index('ix_labels_project_id_id', ['project_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_labels_task_id'), ['task_id'], unique=False)

    op.create_table('task_workers',
    sa.Column('task_id', ID, nullable=False),
    sa.Column('person_key', sa.String(length=200), nullable=False),
    sa.Column('assignment_id', ID, nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_task_workers_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_workers_task_id_tasks')),
    sa.PrimaryKeyConstraint('task_id', 'person_key', name=op.f('pk_task_workers'))
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        # Existing projects keep the rule their residency region implies (an empty list).
        batch_op.add_column(
            sa.Column('allowed_regions', JSON_DOC, nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column('lease_minutes', sa.Integer(), nullable=False, server_default="60"))
        batch_op.add_column(
            sa.Column('paused', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_check_constraint(
            op.f("ck_projects_lease_minutes_range"), "lease_minutes BETWEEN 1 AND 10080")

    with op.batch_alter_table('workforces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_url', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('webhook_secret', sa.String(length=128), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('workforces', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret')
        batch_op.drop_column('webhook_url')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_projects_lease_minutes_range"), type_="check")
        batch_op.drop_column('paused')
        batch_op.drop_column('lease_minutes')
        batch_op.drop_column('allowed_regions')

    op.drop_table('task_workers')
    with op.batch_alter_table('labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_labels_task_id'))
        batch_op.drop_index('ix_labels_project_id_id')
        batch_op.drop_index(batch_op.f('ix_labels_assignment_id'))

    op.drop_table('labels')
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routing_decisions_task_id'))

    op.drop_table('routing_decisions')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignments_task_id'))
        batch_op.drop_index('ix_assignments_pull')
        batch_op.drop_index(batch_op.f('ix_assignments_project_id'))
        batch_op.drop_index('ix_assignments_lease')

    op.drop_table('assignments')
    with op.batch_alter_table('dispatch_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatch_runs_project_id'))

    op.drop_table('dispatch_runs')
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workers_identity_hash'))

    op.drop_table('workers')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_workforce')
        batch_op.drop_index('ix_webhook_deliveries_due')

    op.drop_table('webhook_deliveries')
    op.drop_table('idempotent_requests')
