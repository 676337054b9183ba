"""Data and features: snapshots, feature entities and views, materialization watermarks, and the
features a model version was trained on.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column(
            "artifact_digest", sa.String(64), sa.ForeignKey("artifacts.digest"), nullable=False
        ),
        sa.Column("num_rows", sa.BigInteger, nullable=False),
        sa.Column("schema", sa.JSON, nullable=False),
        sa.Column("profile", sa.JSON, nullable=False),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_index("ix_snapshots_name_created", "snapshots", ["name", "created_at"])
    op.create_table(
        "feature_entities",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("join_keys", sa.JSON, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "feature_views",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "feature_materializations",
        sa.Column("view", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("store", sa.String(512), primary_key=True),
        sa.Column("start", sa.Double, nullable=False),
        sa.Column("end", sa.Double, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.ForeignKeyConstraint(
            ["view", "version"], ["feature_views.name", "feature_views.version"]
        ),
    )
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("features", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("features")
    for table in ("feature_materializations", "feature_views", "feature_entities", "snapshots"):
        op.drop_table(table)
