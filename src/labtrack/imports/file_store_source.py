"""An MLflow file store (``./mlruns`` with ``meta.yaml`` files) as an import source, read only.

The layout is MLflow's ``FileStore``: ``<experiment>/meta.yaml`` and
``tags/``; ``<experiment>/<run>/meta.yaml`` with ``params/``, ``tags/``,
``metrics/`` (one ``timestamp value [step]`` line per point; a key with
``/`` is a nested path), ``inputs/`` and ``outputs/``; datasets in
``<experiment>/datasets/``, logged models in ``<experiment>/models/``,
deleted experiments in ``.trash/``, the registry in ``models/<name>/``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from labtrack.entities import MetricSeries, decode_double
from labtrack.imports.records import (
    DatasetRecord,
    ExperimentRecord,
    LoggedModelRecord,
    ModelMetricRecord,
    ModelVersionRecord,
    RegisteredModelRecord,
    RunRecord,
    TraceRecord,
)
from labtrack.imports.sql_source import local_artifact_folder

# MLflow's RunStatus numbers, as the file store writes them.
_RUN_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_LOGGED_MODEL_STATUS = {1: "LOGGED_MODEL_PENDING", 2: "LOGGED_MODEL_READY", 3: "LOGGED_MODEL_UPLOAD_FAILED"}
_RESERVED = {".trash", "models", "datasets"}


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _key_files(folder: Path) -> Iterable[tuple[str, Path]]:
    """(key, file) for every file under ``folder``; nested folders are keys with ``/``."""
    if not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            yield path.relative_to(folder).as_posix(), path


def _values(folder: Path) -> dict[str, str]:
    out = {}
    for key, path in _key_files(folder):
        try:
            out[key] = path.read_text(encoding="utf-8")
        except OSError:
            continue
    return out


def _int(v: Any, default: int | None = None) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


class FileStoreSource:
    """Reads the MLflow file store at ``root``."""

    kind = "file_store"
    revision = None

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.path = self.root  # the target goes beside it (labtrack.db in the parent folder)
        self.label = str(self.root)
        self._runs: dict[str, tuple[Path, str]] | None = None

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"MLflow file store {self.root}"

    # -- experiments and runs ---------------------------------------------------------------
    def _experiment_folders(self) -> list[Path]:
        out = []
        for base in (self.root, self.root / ".trash"):
            if not base.is_dir():
                continue
            for name in sorted(os.listdir(base)):
                if name not in _RESERVED and (base / name / "meta.yaml").is_file():
                    out.append(base / name)
        return out

    def experiments(self) -> list[ExperimentRecord]:
        out = []
        for folder in self._experiment_folders():
            meta = _yaml(folder / "meta.yaml")
            if "name" not in meta:
                continue
            out.append(ExperimentRecord(
                str(meta.get("experiment_id", folder.name)), str(meta["name"]),
                str(meta.get("artifact_location") or ""), str(meta.get("lifecycle_stage") or "active"),
                _int(meta.get("creation_time")), _int(meta.get("last_update_time")),
                _values(folder / "tags")))
        return out

    def _run_folders(self) -> dict[str, tuple[Path, str]]:
        if self._runs is None:
            self._runs = {}
            for exp in self._experiment_folders():
                exp_id = str(_yaml(exp / "meta.yaml").get("experiment_id", exp.name))
                for name in sorted(os.listdir(exp)):
                    if name not in _RESERVED and name != "tags" and (exp / name / "meta.yaml").is_file():
                        self._runs[name] = (exp / name, exp_id)
        return self._runs

    def run_ids(self) -> list[str]:
        return list(self._run_folders())

    def runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        out = []
        folders = self._run_folders()
        for run_id in run_ids:
            folder, exp_id = folders[run_id]
            meta = _yaml(folder / "meta.yaml")
            status = meta.get("status")
            tags = _values(folder / "tags")
            rec = RunRecord(
                run_id, exp_id, str(meta.get("run_name") or tags.get("mlflow.runName") or ""),
                str(meta.get("user_id") or ""),
                _RUN_STATUS.get(status, str(status)) if isinstance(status, int) else str(status or "FINISHED"),
                _int(meta.get("start_time")), _int(meta.get("end_time")),
                str(meta.get("lifecycle_stage") or "active"), str(meta.get("artifact_uri") or ""),
                _int(meta.get("deleted_time")), _values(folder / "params"), tags)
            self._attach_inputs(rec, folder)
            out.append(rec)
        return out

    def _attach_inputs(self, rec: RunRecord, folder: Path) -> None:
        exp_folder = folder.parent
        for meta_path in sorted((folder / "inputs").glob("*/meta.yaml")):
            meta = _yaml(meta_path)
            if meta.get("source_type") == "DATASET":
                ds = _yaml(exp_folder / "datasets" / str(meta.get("source_id")) / "meta.yaml")
                if ds.get("name") is not None:
                    tags = {str(k): str(v) for k, v in (meta.get("tags") or {}).items()}
                    rec.datasets.append(DatasetRecord(str(ds["name"]), str(ds.get("digest") or ""),
                                                      str(ds.get("source_type") or ""), str(ds.get("source") or ""),
                                                      ds.get("schema"), ds.get("profile"), tags))
            elif meta.get("source_type") == "RUN_INPUT":
                rec.model_inputs.append(str(meta.get("destination_id")))
        for meta_path in sorted((folder / "outputs").glob("*/meta.yaml")):
            meta = _yaml(meta_path)
            rec.model_outputs.append((str(meta.get("destination_id") or meta_path.parent.name),
                                      _int(meta.get("step"), 0) or 0))

    # -- metrics --------------------------------------------------------------------------
    def metric_counts(self) -> dict[tuple[str, str], int]:
        out = {}
        for run_id, (folder, _) in self._run_folders().items():
            for key, path in _key_files(folder / "metrics"):
                with open(path, "rb") as f:
                    out[(run_id, key)] = sum(1 for line in f if line.strip())
        return out

    def metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricSeries]:
        folder, _ = self._run_folders()[run_id]
        wanted = set(keys) if keys is not None else None
        out = []
        for key, path in _key_files(folder / "metrics"):
            if wanted is not None and key not in wanted:
                continue
            s = MetricSeries(key, [], [], [])
            with open(path, encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 2:
                        continue
                    s.timestamps.append(int(parts[0]))
                    s.values.append(_double(parts[1]))
                    s.steps.append(int(parts[2]) if len(parts) >= 3 else 0)
            out.append(s)
        return out

    # -- logged models and the registry --------------------------------------------------------
    def logged_models(self) -> list[LoggedModelRecord]:
        out = []
        for exp in self._experiment_folders():
            for meta_path in sorted((exp / "models").glob("*/meta.yaml")):
                meta = _yaml(meta_path)
                folder = meta_path.parent
                if not meta.get("model_id"):
                    continue
                status = meta.get("status")
                rec = LoggedModelRecord(
                    str(meta["model_id"]), str(meta.get("experiment_id", exp.name)), str(meta.get("name") or ""),
                    str(meta.get("artifact_location") or ""), _int(meta.get("creation_timestamp"), 0) or 0,
                    _int(meta.get("last_updated_timestamp"), 0) or 0,
                    _LOGGED_MODEL_STATUS.get(status, "LOGGED_MODEL_READY") if isinstance(status, int)
                    else str(status or "LOGGED_MODEL_READY"),
                    str(meta.get("lifecycle_stage") or "active"), meta.get("model_type"),
                    meta.get("source_run_id"), meta.get("status_message"),
                    _values(folder / "params"), _values(folder / "tags"))
                for key, path in _key_files(folder / "metrics"):
                    for line in path.read_text(encoding="utf-8").splitlines():
                        p = line.split()
                        if len(p) >= 3:
                            rec.metrics.append(ModelMetricRecord(
                                key, _double(p[1]), int(p[0]), int(p[2]), p[3] if len(p) > 3 else "",
                                p[4] if len(p) > 5 else None, p[5] if len(p) > 5 else None))
                out.append(rec)
        return out

    def registered_models(self) -> list[RegisteredModelRecord]:
        out = []
        base = self.root / "models"
        for meta_path in sorted(base.glob("*/meta.yaml")):
            meta = _yaml(meta_path)
            folder = meta_path.parent
            rec = RegisteredModelRecord(str(meta.get("name") or folder.name),
                                        _int(meta.get("creation_timestamp"), 0) or 0,
                                        _int(meta.get("last_updated_timestamp"), 0) or 0,
                                        meta.get("description"), _values(folder / "tags"))
            aliases = meta.get("aliases") or {}
            for alias, path in _key_files(folder / "aliases"):
                aliases.setdefault(alias, path.read_text().strip())
            rec.aliases = {str(a): int(v) for a, v in aliases.items() if _int(v) is not None}
            for vmeta_path in sorted(folder.glob("version-*/meta.yaml"), key=lambda p: _int(
                    p.parent.name.split("-", 1)[1], 0) or 0):
                v = _yaml(vmeta_path)
                if _int(v.get("version")) is None:
                    continue
                rec.versions.append(ModelVersionRecord(
                    int(v["version"]), str(v.get("source") or ""), _int(v.get("creation_timestamp"), 0) or 0,
                    _int(v.get("last_updated_timestamp"), 0) or 0, v.get("description"), v.get("user_id"),
                    str(v.get("current_stage") or "None"), v.get("run_id") or None, v.get("run_link"),
                    str(v.get("status") or "READY"), v.get("status_message"), v.get("storage_location"),
                    _values(vmeta_path.parent / "tags")))
            out.append(rec)
        return out

    def artifact_folder(self, uri: str) -> Path | None:
        return local_artifact_folder(uri, None)

    # -- MLflow 3 traces: <experiment>/traces/<trace id>/ ------------------------------------------
    def traces(self, experiment_ids: Sequence[str], known: set[str],
               skip: Callable[[str], None]) -> Iterator[list[TraceRecord]]:
        """Each experiment's traces: ``trace_info.yaml``, ``tags/``, ``request_metadata/``,
        ``assessments/*.yaml`` (Assessment JSON as YAML) and ``artifacts/traces.json``.  The file
        store cannot link traces to runs (MLflow refuses it there)."""
        from labtrack.imports import mlflow_traces as mt

        wanted = set(experiment_ids)
        for exp in self._experiment_folders():
            exp_id = str(_yaml(exp / "meta.yaml").get("experiment_id", exp.name))
            base = exp / "traces"
            if exp_id not in wanted or not base.is_dir():
                continue
            batch: list[TraceRecord] = []
            for name in sorted(os.listdir(base)):
                folder = base / name
                meta = _yaml(folder / "trace_info.yaml")
                trace_id = str(meta.get("trace_id") or meta.get("request_id") or "")
                if not trace_id:
                    continue
                tags = _values(folder / "tags")
                info = mt.trace_info(trace_id, exp_id, _request_ms(meta), _int(meta.get("execution_duration_ms")),
                                     meta.get("state") or meta.get("status"), tags,
                                     _values(folder / "request_metadata"), meta.get("client_request_id"),
                                     meta.get("request_preview"), meta.get("response_preview"))
                assessments = [_yaml(p) for p in sorted((folder / "assessments").glob("*.yaml"))]
                spans = None
                if trace_id not in known:
                    where = self.artifact_folder(tags.get("mlflow.artifactLocation", "")) or folder / "artifacts"
                    spans = mt.spans_file(where / "traces.json", trace_id, skip)
                batch.append(TraceRecord(trace_id, exp_id, info, spans, [a for a in assessments if a]))
                if len(batch) >= 200:
                    yield batch
                    batch = []
            if batch:
                yield batch


def _request_ms(meta: dict[str, Any]) -> int | None:
    """MLflow 3 writes ``request_time`` as a Timestamp's JSON, MLflow 2 ``timestamp_ms``."""
    from labtrack.store.traces import parse_time_ms

    if meta.get("request_time") is not None:
        return parse_time_ms(meta["request_time"], "request_time")
    return _int(meta.get("timestamp_ms"))


def _double(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return decode_double(text) if text else math.nan
