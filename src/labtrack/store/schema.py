"""The database schema (SQLAlchemy Core tables).

Alembic migrations in ``store/migrations`` build exactly this schema; a test
compares the two.  Times are epoch milliseconds.  Metric values that are NaN
are stored as 0 with ``is_nan`` set, because SQLite turns NaN into NULL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

KEY = 250  # metric/param/tag key length (reference §5)

experiments = Table(
    "experiments", metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(500), nullable=False, unique=True),
    Column("artifact_location", Text, nullable=False, default=""),
    Column("lifecycle_stage", String(16), nullable=False, default="active"),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)

experiment_tags = Table(
    "experiment_tags", metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("run_uuid", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", String(250), nullable=False, default=""),
    Column("user_id", String(256), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="RUNNING"),
    Column("start_time", BigInteger, nullable=True),
    Column("end_time", BigInteger, nullable=True),
    Column("lifecycle_stage", String(16), nullable=False, default="active"),
    Column("artifact_uri", Text, nullable=False, default=""),
    Column("deleted_time", BigInteger, nullable=True),
    # The last change to this row (created, renamed, ended, deleted, restored).  Not
    # bumped by logging: that would rewrite the runs table's page on every request
    # for a value nothing reads.
    Column("last_update_time", BigInteger, nullable=False, default=0),
)
# A search's default order (newest first, then run id) read straight from the index, so
# a page costs its own rows at any offset; status and end_time make the per-experiment
# counts (experiment_activity) an index-only scan.
Index("ix_runs_experiment_order", runs.c.experiment_id, runs.c.lifecycle_stage, runs.c.start_time.desc(),
      runs.c.run_uuid, runs.c.status, runs.c.end_time)
# An experiment's runs in run id order, for the runs table's group-by (store/run_table.py).
Index("ix_runs_experiment_run", runs.c.experiment_id, runs.c.lifecycle_stage, runs.c.run_uuid)

# A run's params, tags and latest metric values are stored WITHOUT ROWID on SQLite: each row
# sits in its (run id, key) primary key's B-tree, so looking them up run after run in run id
# order (the runs table's group-by) walks one B-tree front to back (migration 0010).
params = Table(
    "params", metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

tags = Table(
    "tags", metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

# One row per (run, metric key): the integer id that keys the metric's points and
# summaries, so the run id and the key are stored once per series, not once per point.
metric_series = Table(
    "metric_series", metadata,
    Column("series_id", Integer, primary_key=True, autoincrement=True),
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), nullable=False),
    Column("key", String(KEY), nullable=False),
    UniqueConstraint("run_uuid", "key"),
)

# Full history.  The primary key is MLflow's de-duplication rule (identical
# key, step, timestamp and value are one point) and clusters a series' history
# by step, so reading one metric's history is one range scan.
metrics = Table(
    "metrics", metadata,
    Column("series_id", Integer, ForeignKey("metric_series.series_id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("step", BigInteger, primary_key=True),
    Column("timestamp", BigInteger, primary_key=True),
    Column("value", Float(precision=53), primary_key=True),
    Column("is_nan", Boolean, primary_key=True, default=False),
    Column("model_id", String(64), nullable=True),
    Column("dataset_name", String(500), nullable=True),
    Column("dataset_digest", String(36), nullable=True),
    sqlite_with_rowid=False,
)

latest_metrics = Table(
    "latest_metrics", metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Float(precision=53), nullable=False),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    # Summary of the whole history, kept as points arrive (NaN ignored): the
    # extremes and the (first) step where each was reached, the "best step".
    Column("min_value", Float(precision=53), nullable=True),
    Column("max_value", Float(precision=53), nullable=True),
    Column("min_step", BigInteger, nullable=True),
    Column("max_step", BigInteger, nullable=True),
    # Metric filters, and searches sorted by a metric walked in its order (store/run_query.py).
    Index("ix_latest_metrics_key_nan_value", "key", "is_nan", "value", "run_uuid"),
    sqlite_with_rowid=False,
)

# Min/max pyramid over metric histories for downsampled charts (store/downsample.py).
metric_summaries = Table(
    "metric_summaries", metadata,
    Column("series_id", Integer, ForeignKey("metric_series.series_id", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("min_value", Float(precision=53), nullable=False),
    Column("min_step", BigInteger, nullable=False),
    Column("min_timestamp", BigInteger, nullable=False),
    Column("max_value", Float(precision=53), nullable=False),
    Column("max_step", BigInteger, nullable=False),
    Column("max_timestamp", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

datasets = Table(
    "datasets", metadata,
    Column("dataset_uuid", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("digest", String(36), nullable=False),
    Column("source_type", String(36), nullable=False, default=""),
    Column("source", Text, nullable=False, default=""),
    Column("schema", Text, nullable=True),
    Column("profile", Text, nullable=True),
    UniqueConstraint("experiment_id", "name", "digest"),
)

run_inputs = Table(
    "run_inputs", metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True),
    Column("dataset_uuid", String(36), ForeignKey("datasets.dataset_uuid"), primary_key=True),
)

input_tags = Table(
    "input_tags", metadata,
    Column("run_uuid", String(32), primary_key=True),
    Column("dataset_uuid", String(36), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(500), nullable=False),
)

run_model_inputs = Table(
    "run_model_inputs", metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True),
    Column("model_id", String(64), primary_key=True),
)

run_model_outputs = Table(
    "run_model_outputs", metadata,
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True),
    Column("model_id", String(64), primary_key=True),
    Column("step", BigInteger, nullable=False, default=0),
)

logged_models = Table(
    "logged_models", metadata,
    Column("model_id", String(64), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("artifact_location", Text, nullable=False),
    Column("creation_timestamp_ms", BigInteger, nullable=False),
    Column("last_updated_timestamp_ms", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("lifecycle_stage", String(16), nullable=False, default="active"),
    Column("model_type", String(500), nullable=True),
    Column("source_run_id", String(32), nullable=True),
    Column("status_message", Text, nullable=True),
    Index("ix_logged_models_experiment_name", "experiment_id", "name"),
)

logged_model_params = Table(
    "logged_model_params", metadata,
    Column("model_id", String(64), ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

logged_model_tags = Table(
    "logged_model_tags", metadata,
    Column("model_id", String(64), ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

logged_model_metrics = Table(
    "logged_model_metrics", metadata,
    Column("model_id", String(64), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("timestamp", BigInteger, primary_key=True),
    Column("run_uuid", String(32), primary_key=True),
    Column("value", Float(precision=53), nullable=False),
    Column("is_nan", Boolean, nullable=False, default=False),
    Column("dataset_name", String(500), nullable=True),
    Column("dataset_digest", String(36), nullable=True),
)

# --- model registry -------------------------------------------------------

registered_models = Table(
    "registered_models", metadata,
    Column("name", String(256), primary_key=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("description", Text, nullable=True),
    Column("user_id", String(256), nullable=True),
)

registered_model_tags = Table(
    "registered_model_tags", metadata,
    Column("name", String(256), ForeignKey("registered_models.name", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

model_versions = Table(
    "model_versions", metadata,
    Column("name", String(256), ForeignKey("registered_models.name", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("description", Text, nullable=True),
    Column("user_id", String(256), nullable=True),
    Column("current_stage", String(20), nullable=False, default="None"),
    Column("source", Text, nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("run_link", Text, nullable=True),
    Column("status", String(32), nullable=False, default="READY"),
    Column("status_message", Text, nullable=True),
    Column("model_id", String(64), nullable=True),
)

model_version_tags = Table(
    "model_version_tags", metadata,
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

registered_model_aliases = Table(
    "registered_model_aliases", metadata,
    Column("name", String(256), ForeignKey("registered_models.name", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
)

# Spool ingestion bookkeeping: which records of which spool file are applied.
spool_progress = Table(
    "spool_progress", metadata,
    Column("spool_id", String(128), primary_key=True),
    Column("applied_offset", BigInteger, nullable=False, default=0),
    Column("applied_seq", BigInteger, nullable=False, default=0),
)

# --- traces (store/traces.py) ---------------------------------------------
# A trace's spans are kept as the OTLP JSON the client reads back (``content``),
# written once and returned as text: inputs and outputs of any length are never
# parsed again by a search, which reads only the trace's own columns.

traces = Table(
    "traces", metadata,
    Column("trace_id", String(64), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("request_time", BigInteger, nullable=False),
    Column("execution_duration", BigInteger, nullable=True),
    Column("state", String(32), nullable=False),
    Column("client_request_id", String(250), nullable=True),
    Column("request_preview", Text, nullable=True),
    Column("response_preview", Text, nullable=True),
    Index("ix_traces_experiment_time", "experiment_id", "request_time"),
)

trace_tags = Table(
    "trace_tags", metadata,
    Column("trace_id", String(64), ForeignKey("traces.trace_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

trace_metadata = Table(
    "trace_metadata", metadata,
    Column("trace_id", String(64), ForeignKey("traces.trace_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

spans = Table(
    "spans", metadata,
    Column("trace_id", String(64), ForeignKey("traces.trace_id", ondelete="CASCADE"), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("parent_span_id", String(16), nullable=True),
    Column("name", Text, nullable=False),
    Column("span_type", String(500), nullable=True),
    Column("status", String(32), nullable=False),
    Column("start_time_ns", BigInteger, nullable=False),
    Column("end_time_ns", BigInteger, nullable=True),
    Column("content", Text, nullable=False),
)

assessments = Table(
    "assessments", metadata,
    Column("assessment_id", String(64), primary_key=True),
    Column("trace_id", String(64), ForeignKey("traces.trace_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(KEY), nullable=False),
    Column("kind", String(16), nullable=False),  # feedback | expectation
    Column("create_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("valid", Boolean, nullable=False, default=True),
    Column("value", Text, nullable=True),  # the feedback or expectation value as JSON, for filters
    Column("content", Text, nullable=False),  # the Assessment's JSON, as the client reads it
    Index("ix_assessments_trace", "trace_id"),
)

trace_runs = Table(
    "trace_runs", metadata,
    Column("trace_id", String(64), ForeignKey("traces.trace_id", ondelete="CASCADE"), primary_key=True),
    Column("run_uuid", String(32), primary_key=True),
)

# Users and permissions of --app-name basic-auth (store/auth.py); passwords only as argon2 hashes.
users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
)

user_permissions = Table(
    "user_permissions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("resource_type", String(32), nullable=False),  # experiment | registered_model
    Column("resource_id", String(500), nullable=False),  # an experiment id or a model name
    Column("permission", String(32), nullable=False),  # READ | EDIT | MANAGE | NO_PERMISSIONS
    UniqueConstraint("user_id", "resource_type", "resource_id"),
)

# --- evaluation datasets (store/eval_datasets.py) -------------------------

eval_datasets = Table(
    "eval_datasets", metadata,
    Column("dataset_id", String(64), primary_key=True),
    Column("name", String(500), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=True),
    Column("last_updated_by", String(256), nullable=True),
    Column("tags", Text, nullable=True),  # a JSON object, as MLflow's client sends it
    Column("schema", Text, nullable=True),
)

eval_dataset_experiments = Table(
    "eval_dataset_experiments", metadata,
    Column("dataset_id", String(64), ForeignKey("eval_datasets.dataset_id", ondelete="CASCADE"), primary_key=True),
    Column("experiment_id", Integer, primary_key=True, autoincrement=False),
)

eval_dataset_records = Table(
    "eval_dataset_records", metadata,
    Column("dataset_record_id", String(64), primary_key=True),
    Column("dataset_id", String(64), ForeignKey("eval_datasets.dataset_id", ondelete="CASCADE"), nullable=False),
    Column("input_hash", String(64), nullable=False),  # records with the same inputs merge
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=True),
    Column("expectations", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("source", Text, nullable=True),
    Column("source_type", String(32), nullable=True),
    Column("created_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=True),
    Column("last_updated_by", String(256), nullable=True),
    UniqueConstraint("dataset_id", "input_hash"),
)

# --- registered scorers (store/scorers.py) ---------------------------------
# MLflow's two tables, by its names: a scorer is a name within an experiment; each register
# adds a version holding the serialized scorer (JSON text, kept as the client sent it).

scorers = Table(
    "scorers", metadata,
    Column("scorer_id", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("scorer_name", String(256), nullable=False),
    UniqueConstraint("experiment_id", "scorer_name"),
)

scorer_versions = Table(
    "scorer_versions", metadata,
    Column("scorer_id", String(36), ForeignKey("scorers.scorer_id", ondelete="CASCADE"), primary_key=True),
    Column("scorer_version", Integer, primary_key=True, autoincrement=False),
    Column("serialized_scorer", Text, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
)

# --- AI gateway objects made over REST (store/gateway.py) ------------------

gateway_objects = Table(
    "gateway_objects", metadata,
    Column("kind", String(32), primary_key=True),  # secret | model_definition | endpoint
    Column("object_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("body", Text, nullable=False),  # JSON; a secret names where its key is, never the key
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_at", BigInteger, nullable=False),
    UniqueConstraint("kind", "name"),
)

# --- saved views of an experiment's runs page (store/views.py) -------------

saved_views = Table(
    "saved_views", metadata,
    Column("view_id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),  # unique within its experiment
    Column("state", Text, nullable=False),  # JSON: the runs page's hash query and the chart panels
    Column("created_by", String(256), nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    UniqueConstraint("experiment_id", "name"),
)
