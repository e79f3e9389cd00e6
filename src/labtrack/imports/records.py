"""What an MLflow source hands the importer: plain records, independent of where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExperimentRecord:
    experiment_id: str
    name: str
    artifact_location: str = ""
    lifecycle_stage: str = "active"
    creation_time: int | None = None
    last_update_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class DatasetRecord:
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema: str | None = None
    profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # the input's tags (e.g. mlflow.data.context)


@dataclass
class RunRecord:
    run_id: str
    experiment_id: str
    name: str = ""
    user_id: str = ""
    status: str = "FINISHED"
    start_time: int | None = None
    end_time: int | None = None
    lifecycle_stage: str = "active"
    artifact_uri: str = ""
    deleted_time: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[DatasetRecord] = field(default_factory=list)
    model_inputs: list[str] = field(default_factory=list)
    model_outputs: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class ModelMetricRecord:
    key: str
    value: float
    timestamp: int
    step: int
    run_id: str = ""
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass
class LoggedModelRecord:
    model_id: str
    experiment_id: str
    name: str
    artifact_location: str = ""
    creation_timestamp_ms: int = 0
    last_updated_timestamp_ms: int = 0
    status: str = "LOGGED_MODEL_READY"
    lifecycle_stage: str = "active"
    model_type: str | None = None
    source_run_id: str | None = None
    status_message: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[ModelMetricRecord] = field(default_factory=list)


@dataclass
class ModelVersionRecord:
    version: int
    source: str
    creation_time: int = 0
    last_updated_time: int = 0
    description: str | None = None
    user_id: str | None = None
    current_stage: str = "None"
    run_id: str | None = None
    run_link: str | None = None
    status: str = "READY"
    status_message: str | None = None
    storage_location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RegisteredModelRecord:
    name: str
    creation_time: int = 0
    last_updated_time: int = 0
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    versions: list[ModelVersionRecord] = field(default_factory=list)


@dataclass
class TraceRecord:
    """An MLflow 3 trace: its TraceInfo JSON (MLflow's wire form, without assessments), its spans as
    OTLP JSON (None: not read, the copy already has them), its assessments (Assessment JSON,
    ids kept) and the runs ``link_traces_to_run`` linked it to."""

    trace_id: str
    experiment_id: str
    info: dict[str, Any]
    spans: list[dict[str, Any]] | None = None
    assessments: list[dict[str, Any]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


@dataclass
class EvalRecordRecord:
    """One record of an evaluation dataset, its fields as the mlflow client sees them (decoded JSON)."""

    record_id: str
    inputs: dict[str, Any]
    outputs: Any = None
    expectations: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    source_type: str | None = None
    created_time: int = 0
    last_update_time: int = 0
    created_by: str | None = None
    last_updated_by: str | None = None


@dataclass
class EvalDatasetRecord:
    """An evaluation dataset (``mlflow.genai.datasets``): ids kept, with its records and experiments."""

    dataset_id: str
    name: str
    digest: str | None = None
    schema: str | None = None
    created_time: int = 0
    last_update_time: int = 0
    created_by: str | None = None
    last_updated_by: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    experiment_ids: list[str] = field(default_factory=list)
    records: list[EvalRecordRecord] = field(default_factory=list)


@dataclass
class ScorerVersionRecord:
    """One version of a registered scorer (``mlflow.genai.scorers``): ids, version and time kept."""

    experiment_id: str
    name: str
    scorer_id: str | None  # None from a server that sends none
    version: int
    serialized_scorer: str
    creation_time: int = 0
