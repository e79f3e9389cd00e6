"""Plain entity dataclasses shared by the store, the server and the client.

Each entity renders to and parses from the JSON shape of MLflow's REST API
(reference §3), so the server's replies and the client's objects are one
definition.  A leaf module: no imports from the rest of labtrack.
"""

from __future__ import annotations

import html
import json
import math
import sys
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _str_text
from typing import Any

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
LOGGED_MODEL_STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
MODEL_VERSION_STAGES = ("None", "Staging", "Production", "Archived")


def encode_double(value: float) -> float | str:
    """JSON has no NaN/Infinity: MLflow sends them as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_double(value: Any) -> float:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("nan", "+nan", "-nan"):
            return math.nan
        if lowered in ("infinity", "+infinity", "inf", "+inf"):
            return math.inf
        if lowered in ("-infinity", "-inf"):
            return -math.inf
    return float(value)


def double_text(value: float) -> str:
    """``encode_double`` as JSON text."""
    if value != value:
        return '"NaN"'
    if value in (math.inf, -math.inf):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return repr(value)


def key_head_text(key: str) -> str:
    """``{"key":K,"value":`` : the start of a param, tag or metric object, as JSON text.

    Raises TypeError when ``key`` is not a string.
    """
    return '{"key":' + _str_text(key) + ',"value":'


def _key_values_text(items: dict[str, str]) -> str:
    """``[{"key", "value"}, ...]`` of a dict of strings, as JSON text."""
    return ",".join([f'{key_head_text(k)}{_str_text(v)}}}' for k, v in items.items()])


_METRIC_REST = ',"timestamp":%d,"step":%d'
# ``FINITE_METRIC_TEXT % (key_head_text(key), value, timestamp, step)`` is a latest
# metric's whole JSON object when ``-FLOAT_MAX <= value <= FLOAT_MAX`` (``%r`` is
# ``double_text`` of a finite float): one C-level format per metric, for pages of runs.
FINITE_METRIC_TEXT = "%s%r" + _METRIC_REST + "}"
FLOAT_MAX = sys.float_info.max


def metric_rest_text(timestamp: int, step: int) -> str:
    """What follows a latest metric's value in a run's JSON (``int()`` of each, as ``to_json`` sends)."""
    return _METRIC_REST % (timestamp, step)


def run_info_text(run_id: str, run_name: str, experiment_id: str, user_id: str, status: str, artifact_uri: str,
                  lifecycle_stage: str, start_time: int | None, end_time: int | None) -> str:
    """``RunInfo.to_json()`` as JSON text; TypeError when a string field is not a string."""
    rid = _str_text(run_id)
    text = (f'{{"run_id":{rid},"run_uuid":{rid},"run_name":{_str_text(run_name)},'
            f'"experiment_id":{_str_text(experiment_id)},"user_id":{_str_text(user_id)},'
            f'"status":{_str_text(status)},"artifact_uri":{_str_text(artifact_uri)},'
            f'"lifecycle_stage":{_str_text(lifecycle_stage)}')
    if start_time is not None:
        text += f',"start_time":{int(start_time)}'
    if end_time is not None:
        text += f',"end_time":{int(end_time)}'
    return text + "}"


def run_text(info: str, metrics: str, params: str, tags: str, inputs: str = "{}", outputs: str = "{}") -> str:
    """``Run.to_json()`` as JSON text, from its parts' text (metrics, params and tags without brackets)."""
    return (f'{{"info":{info},"data":{{"metrics":[{metrics}],"params":[{params}],"tags":[{tags}]}},'
            f'"inputs":{inputs},"outputs":{outputs}}}')


def with_present(out: dict[str, Any], obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """``out`` plus each of ``obj``'s ``names`` that is not None (MLflow leaves unset fields out)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            out[name] = value
    return out


def _tags_to_json(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def _tags_from_json(items: Any) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in items or []}


def _html_table(rows: list[tuple[str, Any]], title: str) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table><caption>{html.escape(title)}</caption>{cells}</table>"


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str = ""
    lifecycle_stage: str = "active"
    creation_time: int | None = None
    last_update_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "artifact_location": self.artifact_location,
            "lifecycle_stage": self.lifecycle_stage,
            "tags": _tags_to_json(self.tags),
        }
        if self.creation_time is not None:
            out["creation_time"] = self.creation_time
        if self.last_update_time is not None:
            out["last_update_time"] = self.last_update_time
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Experiment:
        return cls(
            experiment_id=str(d["experiment_id"]),
            name=d.get("name", ""),
            artifact_location=d.get("artifact_location", ""),
            lifecycle_stage=d.get("lifecycle_stage", "active"),
            creation_time=_opt_int(d.get("creation_time")),
            last_update_time=_opt_int(d.get("last_update_time")),
            tags=_tags_from_json(d.get("tags")),
        )

    def _repr_html_(self) -> str:
        return _html_table(
            [("id", self.experiment_id), ("name", self.name), ("stage", self.lifecycle_stage),
             ("artifacts", self.artifact_location)], "Experiment")


@dataclass
class Metric:
    key: str
    value: float
    timestamp: int
    step: int = 0
    run_id: str | None = None
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "value": encode_double(self.value),
                               "timestamp": self.timestamp, "step": self.step}
        return with_present(out, self, ("run_id", "model_id", "dataset_name", "dataset_digest"))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Metric:
        return cls(key=d["key"], value=decode_double(d.get("value", 0.0)),
                   timestamp=int(d.get("timestamp", 0)), step=int(d.get("step", 0)),
                   run_id=d.get("run_id"), model_id=d.get("model_id"),
                   dataset_name=d.get("dataset_name"), dataset_digest=d.get("dataset_digest"))


@dataclass
class MetricSeries:
    """Points of one metric, column by column: the bulk form of many ``Metric`` objects.

    ``values[i]`` was logged at ``steps[i]`` and ``timestamps[i]`` (ms); NaN and
    ±Inf are floats here.  Three lists cost a fraction of a ``Metric`` per point
    to build, to send as JSON and to store.
    """

    key: str
    steps: list[int]
    timestamps: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.values)

    def has_nan(self) -> bool:
        # sum() runs in C; it is NaN only if a value is NaN (or +Inf meets -Inf).
        total = sum(self.values)
        return total != total and any(v != v for v in self.values)


@dataclass
class Param:
    key: str
    value: str


@dataclass
class RunTag:
    key: str
    value: str


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str = ""
    user_id: str = ""
    status: str = "RUNNING"
    start_time: int | None = None
    end_time: int | None = None
    artifact_uri: str = ""
    lifecycle_stage: str = "active"

    @property
    def run_uuid(self) -> str:
        return self.run_id

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id, "run_uuid": self.run_id, "run_name": self.run_name,
            "experiment_id": self.experiment_id, "user_id": self.user_id,
            "status": self.status, "artifact_uri": self.artifact_uri,
            "lifecycle_stage": self.lifecycle_stage,
        }
        if self.start_time is not None:
            out["start_time"] = self.start_time
        if self.end_time is not None:
            out["end_time"] = self.end_time
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunInfo:
        return cls(
            run_id=d.get("run_id") or d.get("run_uuid", ""),
            experiment_id=str(d.get("experiment_id", "")),
            run_name=d.get("run_name", ""), user_id=d.get("user_id", ""),
            status=d.get("status", "RUNNING"), start_time=_opt_int(d.get("start_time")),
            end_time=_opt_int(d.get("end_time")), artifact_uri=d.get("artifact_uri", ""),
            lifecycle_stage=d.get("lifecycle_stage", "active"),
        )


@dataclass
class DatasetInput:
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema: str | None = None
    profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        ds: dict[str, Any] = {"name": self.name, "digest": self.digest,
                              "source_type": self.source_type, "source": self.source}
        if self.schema is not None:
            ds["schema"] = self.schema
        if self.profile is not None:
            ds["profile"] = self.profile
        return {"tags": _tags_to_json(self.tags), "dataset": ds}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DatasetInput:
        ds = d.get("dataset") or {}
        return cls(name=ds.get("name", ""), digest=ds.get("digest", ""),
                   source_type=ds.get("source_type", ""), source=ds.get("source", ""),
                   schema=ds.get("schema"), profile=ds.get("profile"),
                   tags=_tags_from_json(d.get("tags")))


@dataclass
class RunData:
    """MLflow's ``run.data`` view: latest metric values, params and tags as plain dicts."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    info: RunInfo
    metrics: dict[str, Metric] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    dataset_inputs: list[DatasetInput] = field(default_factory=list)
    model_inputs: list[str] = field(default_factory=list)
    model_outputs: list[tuple[str, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        if self.dataset_inputs:
            inputs["dataset_inputs"] = [d.to_json() for d in self.dataset_inputs]
        if self.model_inputs:
            inputs["model_inputs"] = [{"model_id": m} for m in self.model_inputs]
        outputs: dict[str, Any] = {}
        if self.model_outputs:
            outputs["model_outputs"] = [{"model_id": m, "step": s} for m, s in self.model_outputs]
        return {
            "info": self.info.to_json(),
            "data": {
                "metrics": [m.to_json() for m in self.metrics.values()],
                "params": [{"key": k, "value": v} for k, v in self.params.items()],
                "tags": _tags_to_json(self.tags),
            },
            "inputs": inputs,
            "outputs": outputs,
        }

    def to_json_text(self) -> str:
        """``json.dumps(self.to_json())``, written directly (a page of 1,000 runs
        costs a third as much this way: no dicts per metric, param and tag)."""
        i = self.info
        try:
            info = run_info_text(i.run_id, i.run_name, i.experiment_id, i.user_id, i.status, i.artifact_uri,
                                 i.lifecycle_stage, i.start_time, i.end_time)
            metrics = []
            for m in self.metrics.values():
                item = key_head_text(m.key) + double_text(m.value) + metric_rest_text(m.timestamp, m.step)
                if m.run_id is not None or m.model_id is not None or m.dataset_name is not None \
                        or m.dataset_digest is not None:
                    for name in ("run_id", "model_id", "dataset_name", "dataset_digest"):
                        v = getattr(m, name)
                        if v is not None:
                            item += f',"{name}":{_str_text(v)}'
                metrics.append(item + "}")
            params, tags = _key_values_text(self.params), _key_values_text(self.tags)
        except TypeError:  # a field that is not what its type says: the general path says how
            return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)
        if self.dataset_inputs or self.model_inputs or self.model_outputs:
            full = self.to_json()
            return run_text(info, ",".join(metrics), params, tags,
                            json.dumps(full["inputs"], separators=(",", ":"), allow_nan=False),
                            json.dumps(full["outputs"], separators=(",", ":"), allow_nan=False))
        return run_text(info, ",".join(metrics), params, tags)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Run:
        data = d.get("data") or {}
        inputs = d.get("inputs") or {}
        outputs = d.get("outputs") or {}
        metrics = [Metric.from_json(m) for m in data.get("metrics") or []]
        return cls(
            info=RunInfo.from_json(d.get("info") or {}),
            metrics={m.key: m for m in metrics},
            params={p["key"]: p.get("value", "") for p in data.get("params") or []},
            tags=_tags_from_json(data.get("tags")),
            dataset_inputs=[DatasetInput.from_json(x) for x in inputs.get("dataset_inputs") or []],
            model_inputs=[x["model_id"] for x in inputs.get("model_inputs") or []],
            model_outputs=[(x["model_id"], int(x.get("step", 0)))
                           for x in outputs.get("model_outputs") or []],
        )

    @property
    def data(self) -> RunData:
        """``run.data.metrics["loss"]`` etc., as code written for MLflow expects."""
        return RunData({k: m.value for k, m in self.metrics.items()}, self.params, self.tags)

    def _repr_html_(self) -> str:
        rows: list[tuple[str, Any]] = [
            ("run", self.info.run_name), ("id", self.info.run_id),
            ("status", self.info.status), ("experiment", self.info.experiment_id)]
        rows += [(f"param {k}", v) for k, v in self.params.items()]
        rows += [(f"metric {k}", m.value) for k, m in self.metrics.items()]
        return _html_table(rows, "Run")


class RunList(list):
    """A list of runs that a notebook displays as one compact table (``lt.search_runs`` returns one)."""

    MAX_ROWS = 200  # a notebook cell, not a report: the rest is counted, not drawn

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in
                       ("run", "id", "status", "start (UTC)", "params", "metrics"))
        rows = []
        for run in self[:self.MAX_ROWS]:
            info = run.info
            start = (_utc(info.start_time) if info.start_time else "")
            params = ", ".join(f"{k}={v}" for k, v in run.params.items())
            metrics = ", ".join(f"{k}={m.value:.4g}" for k, m in run.metrics.items())
            cells = (info.run_name, info.run_id[:8], info.status, start, params, metrics)
            rows.append("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>"
                                         for c in cells) + "</tr>")
        more = len(self) - self.MAX_ROWS
        caption = f"{len(self)} runs" + (f" (first {self.MAX_ROWS} shown)" if more > 0 else "")
        return (f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>")


def _utc(ms: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class LoggedModel:
    model_id: str
    experiment_id: str
    name: str
    artifact_uri: str
    creation_timestamp_ms: int
    last_updated_timestamp_ms: int
    status: str = "LOGGED_MODEL_PENDING"
    model_type: str | None = None
    source_run_id: str | None = None
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "model_id": self.model_id, "experiment_id": self.experiment_id, "name": self.name,
            "artifact_uri": self.artifact_uri,
            "creation_timestamp_ms": self.creation_timestamp_ms,
            "last_updated_timestamp_ms": self.last_updated_timestamp_ms,
            "status": self.status, "tags": _tags_to_json(self.tags),
        }
        with_present(info, self, ("model_type", "source_run_id", "status_message"))
        return {"info": info,
                "data": {"params": [{"key": k, "value": v} for k, v in self.params.items()],
                         "metrics": [m.to_json() for m in self.metrics]}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LoggedModel:
        info, data = d.get("info") or {}, d.get("data") or {}
        return cls(
            model_id=info.get("model_id", ""), experiment_id=str(info.get("experiment_id", "")),
            name=info.get("name", ""), artifact_uri=info.get("artifact_uri", ""),
            creation_timestamp_ms=_opt_int(info.get("creation_timestamp_ms")) or 0,
            last_updated_timestamp_ms=_opt_int(info.get("last_updated_timestamp_ms")) or 0,
            status=info.get("status", "LOGGED_MODEL_PENDING"), model_type=info.get("model_type"),
            source_run_id=info.get("source_run_id"), status_message=info.get("status_message"),
            tags=_tags_from_json(info.get("tags")), params=_tags_from_json(data.get("params")),
            metrics=[Metric.from_json(m) for m in data.get("metrics") or []])


@dataclass
class FileInfo:
    path: str
    is_dir: bool
    file_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "is_dir": self.is_dir}
        if not self.is_dir and self.file_size is not None:
            out["file_size"] = self.file_size
        return out


def _opt_int(v: Any) -> int | None:
    return None if v is None or v == "" else int(v)
