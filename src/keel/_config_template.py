"""The commented keel.toml ``keel init`` and ``keel demo`` write: every setting with its default.

A test loads it back and checks it gives the defaults of :class:`keel.config.Settings`.
"""

from __future__ import annotations

from pathlib import Path

from keel.config import CONFIG_FILE_NAME
from keel.errors import ConfigError

CONFIG_TEMPLATE = """\
# keel project configuration. Every key is optional; the values shown are the defaults.
# Any key can be overridden by an environment variable: KEEL_<KEY>, nested keys joined
# with a double underscore (KEEL_REGISTRY__REQUIRE_DISTINCT_APPROVER=true).

# Metadata database: runs, metrics, the model registry and its audit log.
#   sqlite:///.keel/keel.db              embedded default, relative to this directory
#   postgresql://user@host:5432/keel     a shared server (pip install 'keel-ml[postgres]')
metadata_url = "sqlite:///.keel/keel.db"

# Artifact store root (models, files logged by runs), content-addressed by sha256.
#   .keel/artifacts                      a local directory, relative to this directory
#   s3://bucket/prefix, gs://bucket/...  any fsspec URL (install the matching fsspec package)
artifacts_url = ".keel/artifacts"

# Who is acting, written into audit entries. Defaults to your login name.
# actor = "jane"

[tracking]
# Metric values are buffered and written in batches: when this many are pending...
metric_batch_size = 1000
# ...or when the oldest pending value is this many seconds old.
metric_flush_seconds = 2.0
# Record the version of every installed package with each run.
capture_packages = true

[registry]
# Four-eyes rule: the person approving a model version must not be the one who registered it.
require_distinct_approver = false

[features]
# Online store the serving path reads features from.
#   sqlite:///.keel/online.db            embedded default
#   redis://127.0.0.1:6379/0             a Redis server (pip install 'keel-ml[redis]')
online_url = "sqlite:///.keel/online.db"
# The module defining entities, feature views and on-demand features (`keel features apply`).
definitions = "features.py"
# Timestamps without a time zone: "reject" (default) or "utc" (take them to be UTC).
naive_timestamps = "reject"
# Fraction of online lookups recorded for `keel features skew`, and where they are written.
lookup_sample_rate = 0.01
lookup_log_dir = ".keel/feature-lookups"

[serving]
# Where `keel serve` listens, and how many worker processes it runs.
host = "127.0.0.1"
port = 8080
workers = 1
# Prediction and feedback logs: append-only segments, compacted into Parquet by endpoint and date.
prediction_log_dir = ".keel/predictions"
# Entries reach the OS before their response is sent; fsync forces them to disk:
# "never" (the OS decides), "interval" (every fsync_interval_seconds) or "always".
fsync = "interval"
fsync_interval_seconds = 1.0
segment_max_bytes = 67108864
# Request bodies larger than this are refused with 413.
max_request_bytes = 8388608
# Requests holding more records than this are refused with 413.
max_request_rows = 10000
# API keys: "auto" (required unless listening on loopback only), "on" or "off". Per-key rate
# limits are shared by the workers through Redis when ratelimit_url names one.
auth = "auto"
# ratelimit_url = "redis://127.0.0.1:6379/0"
# Prediction cache of endpoints with `--cache`: "memory" or a redis:// URL; answers expire
# after cache_ttl_seconds, and a new model version never sees an old version's answers.
cache_url = "memory"
cache_ttl_seconds = 600.0
cache_max_entries = 100000
# Circuit breaker per model version: opens when breaker_error_rate of the calls of the last
# breaker_window_seconds failed (with at least breaker_min_requests calls); probes the model
# again after breaker_open_seconds. While open, the endpoint's fallback answers.
breaker_window_seconds = 10.0
breaker_min_requests = 20
breaker_error_rate = 0.5
breaker_open_seconds = 5.0
# How often each server checks its endpoints' revisions, and how long the previous one stays
# loaded so `keel endpoints rollback` switches back at once (blue-green).
revision_poll_seconds = 2.0
keep_previous_seconds = 300.0
# Model calls expected to take less than this (ms) run on the event loop's thread, where a
# hand-off to the batch thread would cost more; slower ones never block the loop. 0: never.
inline_below_ms = 0.5
# Fields a signature marks sensitive never reach the prediction log in clear: "tokenize" logs
# a keyed HMAC-SHA256 token (same value, same token) or "drop" leaves them out. The key is a
# secret shared by every server: prefer KEEL_SERVING__PII_KEY to writing it here.
pii_mode = "tokenize"
# pii_key = "a random secret of at least 16 characters"
# HTTPS: the server's PEM certificate and private key (both or neither; relative paths are
# taken from this directory), the key's password if it is encrypted (prefer
# KEEL_SERVING__TLS_KEYFILE_PASSWORD), and for mutual TLS the CAs whose client certificates
# are accepted (every client must then present one).
# tls_certfile = "tls/server.pem"
# tls_keyfile = "tls/server-key.pem"
# tls_ca_certs = "tls/clients-ca.pem"

[monitoring]
# Windows of each endpoint's prediction log (`keel monitor run | watch`): tumbling, of a
# duration ("90s", "30m", "1h", "1d") or of window_rows answers, computed once lateness_seconds
# have passed since their end. Smaller windows than min_rows are "not enough data".
window = "1h"
# window_rows = 10000
lateness_seconds = 60.0
min_rows = 1000
correction = "bh"               # bh (Benjamini-Hochberg) | bonferroni | none
alpha = 0.05
# Ground truth: feedback named label_name (or unnamed); performance is judged from min_labels
# labelled rows, and recomputed for label_horizon_days after a window ends as labels arrive.
label_name = "label"
min_labels = 100
label_horizon_days = 7.0
# Built-in alert rules (drift, prediction_drift, performance_below_validation,
# performance_above_validation, concept_drift, slo_page, slo_ticket); a [[monitoring.rules]]
# entry with the same name replaces one, `enabled = false` turns it off.
default_rules = true
# /metrics URLs of the servers SLOs are computed from (`keel monitor slo --scrape`).
scrape_targets = []
# How long an evaluation waits for slow alert sinks (they finish in the background).
notify_deadline_seconds = 20.0
# [[monitoring.rules]]
# name = "psi-high"
# monitor = "drift"
# statistic = "psi"
# comparison = "above"          # above | below | status
# threshold = 0.25
# min_samples = 500             # smaller windows are "not enough data": no firing, no resolving
# for_seconds = 3600            # the condition must hold this long before the alert fires
# cooldown_seconds = 21600      # no new alert for the same problem this soon after it resolved
# severity = "warning"
# action = { command = ["keel", "pipeline", "retrain", "churn"], timeout_seconds = 3600 }
#
# Alert sinks: the log, and webhooks (JSON POST, retried with exponential backoff).
# [[monitoring.sinks]]
# kind = "webhook"
# url = "https://hooks.example.com/keel"
# attempts = 5
#
# Service-level objectives per endpoint, over window_days; burn-rate alerts follow the SRE
# workbook (14.4x over 1h and 5m, 6x over 6h and 30m: page; 3x over 1d and 2h, 1x over 3d and
# 6h: ticket) unless [[monitoring.burn_rates]] says otherwise.
# [[monitoring.slos]]
# endpoint = "churn"
# availability = 0.999          # requests answered without a 5xx
# latency = 0.95                # requests answered within latency_threshold_ms
# latency_threshold_ms = 100
# window_days = 30
"""


def write_config_template(project_dir: Path, *, force: bool = False) -> Path:
    """Write a commented keel.toml into ``project_dir``; refuses to overwrite unless ``force``."""
    path = project_dir / CONFIG_FILE_NAME
    if path.exists() and not force:
        raise ConfigError("already exists; pass --force to overwrite it", source=str(path))
    project_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    return path
