"""A running MLflow server as an import source, read over its REST API with ``lt.Client``.

``lt.Client`` speaks MLflow's REST API, so this reads every MLflow server (and
labtrack servers too) with the client's own entities: the mapping from MLflow's
JSON to runs, models and versions is the client's, shared with ``labtrack push``.
A server tells no point counts, so every import reads whole histories;
the store still inserts only the points it lacks.  Artifacts come through the
server's artifact API (``ArtifactRepo``), file by file, skipping files already
copied at the same size.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from labtrack.client.artifact_repo import file_sizes
from labtrack.client.client import all_pages
from labtrack.client.traces import V3_API
from labtrack.entities import MetricSeries
from labtrack.errors import LabtrackError
from labtrack.imports.records import (
    DatasetRecord,
    EvalDatasetRecord,
    ExperimentRecord,
    LoggedModelRecord,
    ModelVersionRecord,
    RegisteredModelRecord,
    RunRecord,
    ScorerVersionRecord,
    TraceRecord,
)

PROMPT_FILTER = "tags.`mlflow.prompt.is_prompt` = 'true'"
_TRACES_PER_READ = 100  # traces/batchGet's most
_UNKNOWN = 1 << 62  # "more points than the copy has": a server does not say how many it holds


class RestSource:
    """Reads an MLflow tracking server at ``url`` (a token from MLFLOW_TRACKING_TOKEN, as mlflow does)."""

    kind = "rest"
    revision = None
    path = None

    def __init__(self, url: str) -> None:
        from labtrack.client.client import Client

        self.url = url.rstrip("/")
        self.label = self.url
        self.client = Client(tracking_uri=self.url)
        self._runs: dict[str, Any] = {}
        self._artifact_uris: dict[str, str] = {}

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"MLflow server {self.url}"

    def experiments(self) -> list[ExperimentRecord]:
        exps = list(all_pages(lambda t: self.client.search_experiments(view_type="ALL", max_results=1000,
                                                                   page_token=t)))
        self._experiment_ids = [e.experiment_id for e in exps]
        return [ExperimentRecord(e.experiment_id, e.name, e.artifact_location or "", e.lifecycle_stage or "active",
                                 e.creation_time, e.last_update_time, dict(e.tags)) for e in exps]

    def run_ids(self) -> list[str]:
        ids = getattr(self, "_experiment_ids", None) or [r.experiment_id for r in self.experiments()]
        for i in range(0, len(ids), 100):
            chunk = ids[i:i + 100]
            for run in all_pages(lambda t, c=chunk: self.client.search_runs(c, run_view_type="ALL", max_results=1000,
                                                                       page_token=t)):
                self._runs[run.info.run_id] = run
        return sorted(self._runs, key=lambda r: (self._runs[r].info.start_time or 0, r))

    def runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        out = []
        for run_id in run_ids:
            run = self._runs[run_id]
            i = run.info
            datasets = [DatasetRecord(d.name, d.digest, d.source_type, d.source, d.schema, d.profile, dict(d.tags))
                        for d in run.dataset_inputs]
            rec = RunRecord(i.run_id, i.experiment_id, i.run_name or "", i.user_id or "", i.status, i.start_time,
                            i.end_time, i.lifecycle_stage or "active", i.artifact_uri or "", None,
                            dict(run.params), dict(run.tags), datasets, list(run.model_inputs),
                            [(m, int(s)) for m, s in run.model_outputs])
            out.append(rec)
        return out

    def metric_counts(self) -> dict[tuple[str, str], int]:
        if not self._runs:
            self.run_ids()
        return {(run_id, key): _UNKNOWN for run_id, run in self._runs.items() for key in run.metrics}

    def metrics(self, run_id: str, keys: Iterable[str] | None = None) -> list[MetricSeries]:
        out = []
        for key in keys if keys is not None else self._runs[run_id].metrics:
            s = MetricSeries(key, [], [], [])
            for m in self.client.get_metric_history(run_id, key):
                s.steps.append(int(m.step))
                s.timestamps.append(int(m.timestamp))
                s.values.append(float(m.value) if m.value is not None else math.nan)
            out.append(s)
        return out

    def logged_models(self) -> list[LoggedModelRecord]:
        out = []
        ids = getattr(self, "_experiment_ids", [])
        for i in range(0, len(ids), 100):
            chunk = ids[i:i + 100]
            try:
                models = list(all_pages(lambda t, c=chunk: self.client.search_logged_models(c, max_results=100,
                                                                                       page_token=t)))
            except LabtrackError as e:
                if e.error_code in ("ENDPOINT_NOT_FOUND", "NOT_FOUND"):
                    return []  # a server older than MLflow 3
                raise
            for m in models:
                out.append(LoggedModelRecord(m.model_id, m.experiment_id, m.name, m.artifact_uri or "",
                                             m.creation_timestamp_ms or 0, m.last_updated_timestamp_ms or 0, m.status,
                                             "active", m.model_type, m.source_run_id, m.status_message,
                                             dict(m.params), dict(m.tags)))
        return out

    def registered_models(self) -> list[RegisteredModelRecord]:
        from labtrack.registry_entities import ModelVersion, RegisteredModel

        out = []
        # MLflow's server leaves prompts out of a search unless the filter asks for them.
        models = {m.name: m for where in (None, PROMPT_FILTER) for m in all_pages(
            lambda t, w=where: self._search("registered-models/search", "registered_models", RegisteredModel, w, t))}
        for m in models.values():
            rec = RegisteredModelRecord(m.name, m.creation_timestamp or 0, m.last_updated_timestamp or 0,
                                        m.description, dict(m.tags),
                                        {a: int(v) for a, v in (m.aliases or {}).items()})
            escaped = m.name.replace("\\", "\\\\").replace("'", "\\'")
            where = f"name = '{escaped}'" + (f" AND {PROMPT_FILTER}" if _is_prompt(m) else "")
            for v in all_pages(lambda t, w=where: self._search("model-versions/search", "model_versions", ModelVersion,
                                                            w, t)):
                rec.versions.append(ModelVersionRecord(
                    int(v.version), v.source or "", v.creation_timestamp or 0, v.last_updated_timestamp or 0,
                    v.description, v.user_id, v.current_stage or "None", v.run_id or None, v.run_link,
                    v.status or "READY", v.status_message, None, dict(v.tags)))
            out.append(rec)
        return out

    def _search(self, endpoint: str, key: str, entity: Any, where: str | None, token: str | None) -> Any:
        """A page of ``registered-models/search`` or ``model-versions/search``."""
        from labtrack.client.client import PagedList

        message: dict[str, Any] = {"max_results": 1000}
        if where:
            message["filter"] = where
        if token:
            message["page_token"] = token
        reply = self.client._read("GET", endpoint, message)
        return PagedList((entity.from_json(m) for m in reply.get(key) or []), reply.get("next_page_token"))

    # -- evaluation datasets, and what is not imported -----------------------------------------
    def eval_datasets(self) -> list[EvalDatasetRecord]:
        """Every dataset (``datasets/search``), its records and experiment ids; none from a server
        that does not serve datasets (MLflow before 3.3)."""
        from labtrack.imports.eval_dataset_rows import record

        def page(endpoint: str, message: dict[str, Any], token: str | None, method: str = "GET") -> dict[str, Any]:
            if token:
                message = {**message, "page_token": token}
            return self.client.transport.call(method, endpoint, message, api=V3_API)

        out = []
        try:  # POST: the search both MLflow and labtrack serve
            found = list(_pages(lambda t: page("datasets/search", {"max_results": 1000}, t, "POST"), "datasets"))
        except LabtrackError as e:
            if e.error_code in ("ENDPOINT_NOT_FOUND", "NOT_FOUND"):
                return []
            raise
        for d in found:
            tags = d.get("tags") or {}
            rec = EvalDatasetRecord(
                d["dataset_id"], d.get("name", ""), d.get("digest"), d.get("schema"), int(d.get("created_time") or 0),
                int(d.get("last_update_time") or 0), d.get("created_by"), d.get("last_updated_by"),
                {k: str(v) for k, v in (json.loads(tags) if isinstance(tags, str) else tags).items()})
            rec.experiment_ids = [str(e) for e in page(f"datasets/{d['dataset_id']}/experiment-ids", {}, None)
                                  .get("experiment_ids") or []]
            for item in _pages(lambda t, i=d["dataset_id"]: page(f"datasets/{i}/records",
                                                                         {"max_results": 1000}, t), "records"):
                rec.records.append(record(item, stored=False))
            out.append(rec)
        return out

    def scorers(self, experiment_ids: Sequence[str]) -> list[ScorerVersionRecord]:
        """Every version of each experiment's registered scorers (``scorers/list``, then
        ``scorers/versions`` per name, as ``labtrack push`` reads them); none from a server that does
        not serve them (before MLflow 3.2), nor of a deleted experiment (an mlflow server lists
        scorers of active experiments only)."""
        from labtrack.client.push_scorers import scorer_names, scorer_versions

        out = []
        for exp in experiment_ids:
            try:
                names = scorer_names(self.client, exp)
            except LabtrackError as e:
                if e.error_code in ("ENDPOINT_NOT_FOUND", "NOT_FOUND"):
                    return []
                if e.error_code == "INVALID_PARAMETER_VALUE":
                    continue  # a deleted experiment
                raise
            out += [ScorerVersionRecord(str(v.get("experiment_id", exp)), v["scorer_name"], v.get("scorer_id") or None,
                                        int(v["scorer_version"]), v.get("serialized_scorer") or "",
                                        int(v.get("creation_time") or 0))
                    for name in names for v in scorer_versions(self.client, exp, name)]
        return out

    def not_imported(self) -> list[str]:
        """A line per kind this server lists that the import does not copy (``imports.unread``)."""
        from labtrack.imports.unread import rest_lines

        def call(api: str, endpoint: str, query: dict[str, Any]) -> dict[str, Any]:
            return self.client.transport.call("GET", endpoint, query, api=api, retries=False)
        return rest_lines(call)

    # -- MLflow 3 traces: the readers ``labtrack push`` uses ----------------------------------
    def traces(self, experiment_ids: Sequence[str], known: set[str],
               skip: Callable[[str], None]) -> Iterator[list[TraceRecord]]:
        """Each experiment's traces (search traces v3, assessments included), their spans
        (``traces/batchGet``; not for ``known`` ones) and the runs they are linked to."""
        from labtrack.client.push_genai import _links
        from labtrack.client.traces import trace_infos, trace_spans

        for exp in experiment_ids:
            try:
                infos = list(trace_infos([exp], client=self.client))
            except LabtrackError as e:
                if e.error_code in ("ENDPOINT_NOT_FOUND", "NOT_FOUND"):
                    return  # a server older than MLflow 3
                raise
            if not infos:
                continue
            runs = [r for r, run in self._runs.items() if run.info.experiment_id == exp]
            linked: dict[str, list[str]] = {}
            for run, ids in _links(self.client, exp, runs, infos).items():
                for trace_id in ids:
                    linked.setdefault(trace_id, []).append(run)
            for i in range(0, len(infos), _TRACES_PER_READ):
                batch = infos[i:i + _TRACES_PER_READ]
                spans = trace_spans([x["trace_id"] for x in batch if x["trace_id"] not in known], client=self.client)
                out = []
                for info in batch:
                    tid = info["trace_id"]
                    if tid not in known and not spans.get(tid):
                        skip(f"spans of trace {tid} (the server sent none)")
                    out.append(TraceRecord(tid, exp, {k: v for k, v in info.items() if k != "assessments"},
                                           None if tid in known else spans.get(tid, []),
                                           list(info.get("assessments") or []), linked.get(tid, [])))
                yield out

    # -- artifacts: downloaded, not read from a folder ----------------------------------------
    def artifact_folder(self, uri: str) -> Path | None:
        """A local path the server handed out that exists here (a server on this machine
        whose runs log straight to a folder, as the mlflow client then reads them), else None:
        such artifacts are not served over the API; ``mlflow-artifacts:`` ones are downloaded."""
        from labtrack.imports.sql_source import local_artifact_folder

        if uri.startswith("mlflow-artifacts:"):
            return None
        local = local_artifact_folder(uri, None)
        return local if local is not None and local.is_absolute() and local.is_dir() else None

    def copy_artifacts(self, uri: str, target: Path, on_file: Callable[[Path, int], None]) -> None:
        """Download the files under artifact ``uri`` that ``target`` lacks (or holds at another size)."""
        from labtrack.client.artifact_repo import ArtifactRepo

        if not uri:
            return
        repo = ArtifactRepo(self.client.transport, uri)
        try:
            files = file_sizes(repo)
        except LabtrackError:
            return  # no artifact access (a server that does not serve artifacts)
        with tempfile.TemporaryDirectory(prefix="labtrack-import-") as tmp:
            for rel, size in sorted(files.items()):
                dst = target / rel
                if dst.exists() and dst.stat().st_size == size:
                    continue
                local = Path(repo.download(rel, tmp))
                dst.parent.mkdir(parents=True, exist_ok=True)
                local.replace(dst)
                on_file(dst, size)


def _pages(page: Callable[[str | None], dict[str, Any]], key: str) -> Iterator[Any]:
    """The items under ``key`` of every page (``page(token)``; a list, or JSON text of one: MLflow's
    records travel as text)."""
    token = None
    while True:
        reply = page(token)
        items = reply.get(key) or []
        yield from json.loads(items) if isinstance(items, str) else items
        token = reply.get("next_page_token")
        if not token:
            return


def _is_prompt(model: Any) -> bool:
    return str(model.tags.get("mlflow.prompt.is_prompt", "")).lower() == "true"


