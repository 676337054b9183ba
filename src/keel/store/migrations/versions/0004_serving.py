"""Serving: named endpoints and their numbered, audited deployment revisions.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("current_revision", sa.Integer, nullable=False),
    )
    op.create_table(
        "deployment_revisions",
        sa.Column("endpoint", sa.String(255), sa.ForeignKey("endpoints.name"), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("deployment_revisions")
    op.drop_table("endpoints")
