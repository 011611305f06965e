"""Step workflows, part two: the 'compensated' execution status (a saga that unwound).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_CONSTRAINT = "ck_workflow_executions_ck_workflow_executions_status"


def upgrade() -> None:
    op.drop_constraint(op.f(_CONSTRAINT), "workflow_executions", schema="app", type_="check")
    op.create_check_constraint(
        op.f(_CONSTRAINT),
        "workflow_executions",
        "status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'compensated')",
        schema="app",
    )


def downgrade() -> None:
    op.drop_constraint(op.f(_CONSTRAINT), "workflow_executions", schema="app", type_="check")
    op.create_check_constraint(
        op.f(_CONSTRAINT),
        "workflow_executions",
        "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
        schema="app",
    )
