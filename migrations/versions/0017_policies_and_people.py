"""agents that act, one approval policy, work shared fairly: an agent's tools and limits; policies,
their versions, their decisions and the approvals they ask for; the people directory, absences,
distribution cursors and the log of assignment changes; who a delegate holds a work item for

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "app"
JSON = postgresql.JSONB()
NOW = sa.func.now()


def _ts(name: str, *, default: bool = False, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=NOW if default else None, nullable=nullable)


def upgrade() -> None:
    op.add_column(
        "orchestrator_agents", sa.Column("tools", JSON, server_default=sa.text("'[]'::jsonb"), nullable=False), schema=S
    )
    op.add_column(
        "orchestrator_agents",
        sa.Column("tool_limits", JSON, server_default=sa.text("'{}'::jsonb"), nullable=False),
        schema=S,
    )
    op.add_column("work_item", sa.Column("on_behalf_of", sa.Text(), nullable=True), schema=S)
    op.add_column("workflow_tasks", sa.Column("on_behalf_of", sa.Text(), nullable=True), schema=S)
    op.create_table(
        "policies",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action_kind", sa.Text(), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        _ts("updated_ts", default=True),
        sa.PrimaryKeyConstraint("name", name="pk_policies"),
        schema=S,
    )
    op.create_index("idx_policies_kind", "policies", ["action_kind"], schema=S, postgresql_where=sa.text("enabled"))
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("body", JSON, nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        _ts("ts", default=True),
        sa.PrimaryKeyConstraint("id", name="pk_policy_versions"),
        sa.UniqueConstraint("name", "version", name="uq_policy_versions_name_version"),
        schema=S,
    )
    op.create_table(
        "policy_decisions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("decision_key", sa.Text(), nullable=False),
        _ts("ts", default=True),
        sa.Column("subject_kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("action_kind", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("arguments", JSON, nullable=False),
        sa.Column("effect", sa.Text(), nullable=False),
        sa.Column("policy_name", sa.Text(), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("approval_id", sa.UUID(), nullable=True),
        sa.Column("decided_by", JSON, nullable=True),
        _ts("decided_ts", nullable=True),
        sa.Column("context", JSON, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policy_decisions"),
        sa.UniqueConstraint("decision_key", name="uq_policy_decisions_decision_key"),
        schema=S,
    )
    op.create_index("idx_policy_decisions_ts", "policy_decisions", ["ts"], schema=S)
    op.create_index("idx_policy_decisions_policy", "policy_decisions", ["policy_name", "ts"], schema=S)
    op.create_index("idx_policy_decisions_subject", "policy_decisions", ["subject", "ts"], schema=S)
    op.create_table(
        "policy_approvals",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        sa.Column("subject_kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("action_kind", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("arguments", JSON, nullable=False),
        sa.Column("policy_name", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("approvers", JSON, nullable=False),
        sa.Column("required", sa.Integer(), nullable=False),
        sa.Column("separation_of_duties", sa.Boolean(), nullable=False),
        sa.Column("votes", JSON, server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("escalated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("escalate_to", JSON, server_default=sa.text("'[]'::jsonb"), nullable=False),
        _ts("deadline_ts"),
        _ts("escalate_ts", nullable=True),
        _ts("created_ts"),
        _ts("decided_ts", nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("context", JSON, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policy_approvals"),
        schema=S,
    )
    op.create_index(
        "idx_policy_approvals_pending",
        "policy_approvals",
        ["created_ts"],
        schema=S,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "people",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("roles", JSON, server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("skills", JSON, server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("max_open", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _ts("updated_ts", default=True),
        sa.PrimaryKeyConstraint("name", name="pk_people"),
        schema=S,
    )
    op.create_table(
        "people_absences",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("person", sa.Text(), nullable=False),
        sa.Column("delegate", sa.Text(), nullable=False),
        _ts("starts_ts"),
        _ts("ends_ts"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        _ts("created_ts", default=True),
        sa.PrimaryKeyConstraint("id", name="pk_people_absences"),
        schema=S,
    )
    op.create_index("idx_people_absences_person", "people_absences", ["person", "ends_ts"], schema=S)
    op.create_table(
        "distribution_cursors",
        sa.Column("pool", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("pool", name="pk_distribution_cursors"),
        schema=S,
    )
    op.create_table(
        "assignment_changes",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("from_assignee", sa.Text(), nullable=True),
        sa.Column("to_assignee", sa.Text(), nullable=False),
        sa.Column("on_behalf_of", sa.Text(), nullable=True),
        sa.Column("how", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _ts("ts", default=True),
        sa.PrimaryKeyConstraint("id", name="pk_assignment_changes"),
        schema=S,
    )
    op.create_index("idx_assignment_changes_item", "assignment_changes", ["item", "ts"], schema=S)
    op.create_index("idx_assignment_changes_ts", "assignment_changes", ["ts"], schema=S)


def downgrade() -> None:
    for table in (
        "assignment_changes",
        "distribution_cursors",
        "people_absences",
        "people",
        "policy_approvals",
        "policy_decisions",
        "policy_versions",
        "policies",
    ):
        op.drop_table(table, schema=S)
    op.drop_column("workflow_tasks", "on_behalf_of", schema=S)
    op.drop_column("work_item", "on_behalf_of", schema=S)
    op.drop_column("orchestrator_agents", "tool_limits", schema=S)
    op.drop_column("orchestrator_agents", "tools", schema=S)
