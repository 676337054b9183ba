"""The metadata schema as SQLAlchemy Core tables.

These definitions are what queries are written against. The database itself is only ever
created and changed by the Alembic migrations in ``migrations/versions``; a test checks that
migrating an empty database to head yields exactly these tables.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Epoch seconds as double precision: the same type and ordering on SQLite and PostgreSQL.
Timestamp = sa.Double

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("ended_at", Timestamp),
    sa.Column("error", sa.Text),
    sa.Column("code_commit", sa.String(64)),
    sa.Column("code_dirty_hash", sa.String(64)),
    sa.Column("environment", sa.JSON),
    sa.Column("seeds", sa.JSON),
    sa.Column("resources", sa.JSON),
    sa.Column("hostname", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Index("ix_runs_experiment_started", "experiment_id", "started_at"),
)

run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", Timestamp, nullable=False),
    sa.Index("ix_run_metrics_run_key_step", "run_id", "key", "step"),
)

# The last value of each metric, kept beside the history so searching runs by a metric
# threshold is one indexed join instead of a scan of every logged value.
run_latest_metrics = sa.Table(
    "run_latest_metrics",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", Timestamp, nullable=False),
    sa.Index("ix_run_latest_metrics_key_value", "key", "value"),
)

run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("digest", sa.String(64), sa.ForeignKey("artifacts.digest"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("details", sa.JSON),
)

run_inputs = sa.Table(
    "run_inputs",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("num_rows", sa.BigInteger),
    sa.Column("columns", sa.JSON),
)

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    # Version counter, bumped with UPDATE ... RETURNING inside the registering transaction:
    # the row lock makes concurrent registrations queue, and a rollback un-bumps it (no gaps).
    sa.Column("last_version", sa.Integer, nullable=False, server_default="0"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", sa.String(255), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("semver", sa.String(32), nullable=False),
    sa.Column("flavor", sa.String(32), nullable=False),
    sa.Column("artifact_digest", sa.String(64), sa.ForeignKey("artifacts.digest"), nullable=False),
    sa.Column("library_versions", sa.JSON, nullable=False),
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id")),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("card_notes", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    # Feature references ("view:feature", with view versions) the version was trained on (0003).
    sa.Column("features", sa.JSON),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("name", sa.String(255), sa.ForeignKey("registered_models.name"), primary_key=True),
    sa.Column("alias", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
    sa.ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
)

# Append-only: the migration installs triggers that refuse UPDATE and DELETE on this table.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("entity_key", sa.String(512), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("from_value", sa.Text),
    sa.Column("to_value", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Index("ix_audit_log_entity", "entity", "entity_key", "id"),
)

# -- data and features (migration 0003) -----------------------------------------------------------

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("artifact_digest", sa.String(64), sa.ForeignKey("artifacts.digest"), nullable=False),
    sa.Column("num_rows", sa.BigInteger, nullable=False),
    sa.Column("schema", sa.JSON, nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Index("ix_snapshots_name_created", "name", "created_at"),
)

feature_entities = sa.Table(
    "feature_entities",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("join_keys", sa.JSON, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# One row per distinct definition of a view: re-applying an unchanged view adds nothing, a
# changed one (features, TTL, source, transformation code) gets the next version.
feature_views = sa.Table(
    "feature_views",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition_hash", sa.String(64), nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
)

# The materialization watermark of each view version in each online store.
feature_materializations = sa.Table(
    "feature_materializations",
    metadata,
    sa.Column("view", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("store", sa.String(512), primary_key=True),
    sa.Column("start", Timestamp, nullable=False),
    sa.Column("end", Timestamp, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.ForeignKeyConstraint(["view", "version"], ["feature_views.name", "feature_views.version"]),
)

# -- serving (migration 0004) ---------------------------------------------------------------------

# A named endpoint and the number of its live deployment revision. The counter is bumped inside
# the transaction that writes the revision, with the endpoint's row locked, so revisions are
# numbered 1, 2, 3... per endpoint with no gaps or duplicates under concurrent changes.
endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("current_revision", sa.Integer, nullable=False),
)

# Every traffic policy an endpoint has had; rows are never changed, a change adds a revision.
deployment_revisions = sa.Table(
    "deployment_revisions",
    metadata,
    sa.Column("endpoint", sa.String(255), sa.ForeignKey("endpoints.name"), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("policy", sa.JSON, nullable=False),
    # create, set or rollback: lets history read without joining the audit log.
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text),
)

# -- API keys (migration 0005) --------------------------------------------------------------------

# Keys for `keel serve`. Only the SHA-256 of a secret is kept (the secret is shown once, when it
# is made). A key is never deleted: revoking sets revoked_at, and its name stays taken, so the
# audit log's references to it keep meaning one key.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    # Token bucket: refill rate and capacity; NULL rate means no per-key limit.
    sa.Column("rate_per_second", sa.Double),
    sa.Column("burst", sa.Integer),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("expires_at", Timestamp),
    sa.Column("revoked_at", Timestamp),
    sa.Column("revoked_by", sa.String(255)),
    sa.Column("revoke_reason", sa.Text),
)

# -- monitoring (migration 0006) -------------------------------------------------------------------

# One row per endpoint and window a monitor run finished: what makes `keel monitor run`
# idempotent (a window already here is not computed again unless forced).
monitor_windows = sa.Table(
    "monitor_windows",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("endpoint", sa.String(255), nullable=False),
    sa.Column("window_start", Timestamp, nullable=False),
    sa.Column("window_end", Timestamp, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("computed_at", Timestamp, nullable=False),
    sa.UniqueConstraint("endpoint", "window_start", "window_end", name="uq_monitor_windows"),
)

# One statistic of one monitor over one window: a drift score of a column, a realised or
# estimated metric of a model version, a data-quality count, an SLO's budget.
# model_version 0 means "every version the window holds".
monitor_results = sa.Table(
    "monitor_results",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("endpoint", sa.String(255), nullable=False),
    sa.Column("window_start", Timestamp, nullable=False),
    sa.Column("window_end", Timestamp, nullable=False),
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
    sa.Column("computed_at", Timestamp, nullable=False),
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

# Alerts people take in hand: firing -> acknowledged -> resolved. The fingerprint (rule,
# endpoint, subject) identifies "the same problem" across evaluations.
alerts = sa.Table(
    "alerts",
    metadata,
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
    sa.Column("window_start", Timestamp),
    sa.Column("window_end", Timestamp),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Column("acknowledged_at", Timestamp),
    sa.Column("acknowledged_by", sa.String(255)),
    sa.Column("resolved_at", Timestamp),
    sa.Column("resolved_by", sa.String(255)),
    sa.Column("resolve_reason", sa.Text),
    sa.Index("ix_alerts_state", "state", "started_at"),
    sa.Index("ix_alerts_fingerprint", "fingerprint", "state"),
)

# What happened to an alert: notifications sent or failed (per sink and attempt), actions run,
# acknowledgements and resolutions.
alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("alert_id", sa.String(32), sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("sink", sa.String(255)),
    sa.Column("attempt", sa.Integer),
    sa.Column("detail", sa.Text),
    sa.Index("ix_alert_events_alert", "alert_id", "id"),
)

# Per rule and subject between evaluations: since when the condition has held (the rule's
# "for" duration) and when it last fired (its cooldown).
alert_rule_state = sa.Table(
    "alert_rule_state",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("rule", sa.String(255), nullable=False),
    sa.Column("endpoint", sa.String(255), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("pending_since", Timestamp),
    sa.Column("last_fired_at", Timestamp),
    sa.Column("last_resolved_at", Timestamp),
)

# Cumulative request counters scraped from a server's /metrics, per endpoint and target: SLOs
# and burn rates are differences between samples (a counter that went down was reset).
slo_samples = sa.Table(
    "slo_samples",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("endpoint", sa.String(255), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("requests", sa.Double, nullable=False),
    sa.Column("errors", sa.Double, nullable=False),
    sa.Column("slow", sa.Double, nullable=False),
    sa.Column("latency_threshold_ms", sa.Double, nullable=False),
    sa.Index("ix_slo_samples_series", "endpoint", "target", "at"),
)
