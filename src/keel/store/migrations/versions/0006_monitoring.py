"""Monitoring: windows computed, their results, alerts with their events and rule state, SLO
counter samples.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("window_start", sa.Double, nullable=False),
        sa.Column("window_end", sa.Double, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("computed_at", sa.Double, nullable=False),
        sa.UniqueConstraint("endpoint", "window_start", "window_end", name="uq_monitor_windows"),
    )
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("window_start", sa.Double, nullable=False),
        sa.Column("window_end", sa.Double, nullable=False),
        sa.Column("monitor", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("statistic", sa.String(32), nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("p_value", sa.Double),
        sa.Column("threshold", sa.Double),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("details", sa.JSON),
        sa.Column("computed_at", sa.Double, nullable=False),
        sa.UniqueConstraint(
            "endpoint",
            "window_start",
            "window_end",
            "monitor",
            "subject",
            "model_version",
            "statistic",
            name="uq_monitor_results",
        ),
        sa.Index("ix_monitor_results_series", "endpoint", "monitor", "subject", "window_end"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("threshold", sa.Double),
        sa.Column("window_start", sa.Double),
        sa.Column("window_end", sa.Double),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("last_seen_at", sa.Double, nullable=False),
        sa.Column("acknowledged_at", sa.Double),
        sa.Column("acknowledged_by", sa.String(255)),
        sa.Column("resolved_at", sa.Double),
        sa.Column("resolved_by", sa.String(255)),
        sa.Column("resolve_reason", sa.Text),
        sa.Index("ix_alerts_state", "state", "started_at"),
        sa.Index("ix_alerts_fingerprint", "fingerprint", "state"),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("alert_id", sa.String(32), sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sink", sa.String(255)),
        sa.Column("attempt", sa.Integer),
        sa.Column("detail", sa.Text),
        sa.Index("ix_alert_events_alert", "alert_id", "id"),
    )
    op.create_table(
        "alert_rule_state",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("pending_since", sa.Double),
        sa.Column("last_fired_at", sa.Double),
        sa.Column("last_resolved_at", sa.Double),
    )
    op.create_table(
        "slo_samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("requests", sa.Double, nullable=False),
        sa.Column("errors", sa.Double, nullable=False),
        sa.Column("slow", sa.Double, nullable=False),
        sa.Column("latency_threshold_ms", sa.Double, nullable=False),
        sa.Index("ix_slo_samples_series", "endpoint", "target", "at"),
    )


def downgrade() -> None:
    op.drop_table("slo_samples")
    op.drop_table("alert_rule_state")
    op.drop_table("alert_events")
    op.drop_table("alerts")
    op.drop_table("monitor_results")
    op.drop_table("monitor_windows")
