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
