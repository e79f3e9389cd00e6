"""``labtrack push``: copy runs to another MLflow-compatible server over its REST API.

"Log offline on the cluster, publish to the lab's central server later"
(mlflow#2910).  Both ends are ``lt.Client``s, so the destination may be a
real MLflow server or another labtrack server, and so may the source.

What is copied, for each selected run: its info (name, user, status, start
and end time), params, tags, every metric's full history (NaN and ±Inf
kept), dataset inputs, artifacts, the MLflow 3 logged models it produced
(with their files) and the registered-model versions made from it (stages,
aliases, tags, descriptions).  Sources of those versions are rewritten to
the destination's runs and logged models.  With the experiments go their
traces and prompts (``push_genai.py``), their evaluation datasets
(``push_eval_datasets.py``) and their registered scorers (``push_scorers.py``).

Idempotent: the destination keeps the mapping in tags (``SOURCE_RUN_TAG`` on
runs, ``SOURCE_MODEL_TAG`` on logged models, ``SOURCE_VERSION_TAG`` on model
versions), so a second push finds what it copied and adds nothing.  A run
copied earlier whose source has changed since (it was still running, or a
push was cut short) is completed: missing params, changed tags, new metric
points, missing artifact files and models are sent, nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from labtrack.client.artifact_repo import file_sizes
from labtrack.client.client import all_pages
from labtrack.client.push_eval_datasets import has_eval_datasets, push_eval_datasets
from labtrack.client.push_scorers import push_scorers, scorer_names
from labtrack.client.push_genai import push_prompts, push_traces
from labtrack.client.traces import trace_infos
from labtrack.entities import Experiment, LoggedModel, Metric, Run
from labtrack.errors import LabtrackError, ResourceDoesNotExist

SOURCE_RUN_TAG = "labtrack.push.source_run_id"
SOURCE_MODEL_TAG = "labtrack.push.source_model_id"
SOURCE_VERSION_TAG = "labtrack.push.source_version"  # "<source model name>/<version>"
PARENT_TAG = "mlflow.parentRunId"
LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"  # a run's prompts: [{"name": ..., "version": ...}]
# Bookkeeping that the destination keeps itself (MLflow sets it when a version is registered).
_OWN_TAGS = frozenset({"mlflow.modelVersions"})
_PAGE = 1000


@dataclass
class PushReport:
    """What one push did, counted on the destination's side."""

    experiments_created: int = 0
    runs_created: int = 0
    runs_completed: int = 0
    runs_unchanged: int = 0
    params: int = 0
    tags: int = 0
    metric_points: int = 0
    dataset_inputs: int = 0
    artifact_files: int = 0
    artifact_bytes: int = 0
    logged_models: int = 0
    registered_models: int = 0
    model_versions: int = 0
    traces: int = 0
    trace_links: int = 0
    assessments: int = 0
    prompts: int = 0
    prompt_versions: int = 0
    eval_datasets: int = 0
    dataset_records: int = 0
    scorer_versions: int = 0
    warnings: list[str] = field(default_factory=list)

    def added(self) -> int:
        """Everything the push wrote; 0 on a push that found nothing new."""
        return sum(getattr(self, f.name) for f in fields(self) if f.name not in ("runs_unchanged", "warnings"))

    def count(self, what: str, n: int) -> None:
        """Add ``n`` to the figure named ``what`` ("prompt versions" -> prompt_versions)."""
        name = what.replace(" ", "_")
        setattr(self, name, getattr(self, name) + n)

    def summary(self, destination: str) -> str:
        runs = self.runs_created + self.runs_completed + self.runs_unchanged
        return (f"pushed {runs} runs to {destination}: {self.runs_created} new, "
                f"{self.runs_completed} completed, {self.runs_unchanged} unchanged; "
                f"{self.params} params, {self.tags} tags, {self.metric_points} metric points, "
                f"{self.dataset_inputs} dataset inputs, "
                f"{self.artifact_files} artifact files ({_size(self.artifact_bytes)}), "
                f"{self.logged_models} logged models, {self.model_versions} model versions, "
                f"{self.traces} traces, {self.trace_links} trace links, {self.assessments} assessments, "
                f"{self.prompt_versions} prompt versions, {self.dataset_records} dataset records, "
                f"{self.scorer_versions} scorer versions; "
                f"created {self.registered_models} registered models, {self.prompts} prompts, "
                f"{self.eval_datasets} evaluation datasets and {self.experiments_created} experiments")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def destination_auth() -> str | None:
    """The destination's ``Authorization``, from the variables the mlflow client reads.

    Basic auth (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``) wins over
    ``MLFLOW_TRACKING_TOKEN``, as in MLflow.  ``LABTRACK_TRACKING_TOKEN`` is left
    to the source, so a push between two token-guarded servers can name both.
    """
    import base64

    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return f"Bearer {token}" if token else None


def destination_client(uri: str) -> Any:
    """An ``lt.Client`` for the destination URI, authenticated by ``destination_auth``."""
    from labtrack.client.client import Client
    from labtrack.client.transport import Transport

    if not uri.startswith(("http://", "https://", "http+unix://")):
        raise LabtrackError(f"push needs the destination server's URL (http://host:port), not {uri!r}",
                            "INVALID_PARAMETER_VALUE")
    client = Client(uri)
    client._transport = Transport.from_uri(uri, auth=destination_auth() or "")
    return client


def select_experiments(client: Any, names_or_ids: Sequence[str]) -> list[Experiment]:
    """The experiments named (by name, or by id), or every active one when none is named."""
    if not names_or_ids:
        return list(all_pages(lambda t: client.search_experiments(max_results=_PAGE, page_token=t)))
    out = []
    for ref in names_or_ids:
        exp = client.get_experiment_by_name(ref)
        if exp is None and str(ref).isdigit():
            try:
                exp = client.get_experiment(ref)
            except ResourceDoesNotExist:
                exp = None
        if exp is None:
            raise ResourceDoesNotExist(f"no experiment named {ref!r} (or with that id)")
        out.append(exp)
    return out


def _version_key(name: str, version: Any) -> str:
    return f"{name}/{version}"


class Pusher:
    """Copies runs from ``source`` to ``dest`` (two ``lt.Client``s)."""

    def __init__(self, source: Any, dest: Any, *, filter_string: str = "", every: bool = True) -> None:
        self.source = source
        self.dest = dest
        self.filter_string = filter_string  # traces of no run go only with every run
        self.every = every  # every experiment: every prompt goes too
        self.report = PushReport()
        self.run_map: dict[str, str] = {}  # source run id -> destination run id
        self.model_map: dict[str, str] = {}  # source logged model id -> destination id
        # artifact URI prefixes: a source run's or model's root -> the destination's
        self.uri_map: dict[str, str] = {}
        self._dest_exps: dict[str, str] = {}
        self._source_models: dict[str, dict[str, list[LoggedModel]]] = {}  # exp -> run -> models
        self._dest_models: dict[str, dict[str, LoggedModel]] = {}

    # -- selection --------------------------------------------------------------------
    def experiments(self, names_or_ids: Sequence[str]) -> list[Experiment]:
        """The source experiments named (by name or id), or every active one."""
        return select_experiments(self.source, names_or_ids)

    def runs(self, experiment: Experiment, filter_string: str) -> list[Run]:
        """The experiment's active runs that match the filter, parents before children."""
        found = list(all_pages(lambda t: self.source.search_runs(
            [experiment.experiment_id], filter_string, max_results=_PAGE, page_token=t)))
        return _parents_first(found)

    # -- the push ---------------------------------------------------------------------
    def push(self, plan: Sequence[tuple[Experiment, list[Run]]],
             on_run: Callable[[int], Any] | None = None) -> PushReport:
        """Copy every run of ``plan`` (as ``experiments``/``runs`` chose them)."""
        exp_map: dict[str, str] = {}
        for experiment, runs in plan:
            if not runs and (self.filter_string or not self._has_genai(experiment)):
                continue  # no empty experiments on the destination for a filter that matched nothing
            dest_exp = exp_map[experiment.experiment_id] = self._dest_experiment(experiment)
            existing = self._pushed_runs(dest_exp)
            for run in runs:
                self._push_run(run, dest_exp, existing)
                if on_run is not None:
                    on_run(1)
            push_traces(self.source, self.dest, experiment.experiment_id, dest_exp,
                        [run.info.run_id for run in runs], self.run_map, not self.filter_string,
                        self.report.count, self.report.warnings.append)
        pushed = [run for _, runs in plan for run in runs]
        self._push_registry(pushed)
        push_prompts(self.source, self.dest, exp_map, self.every and not self.filter_string,
                     _linked_prompts(pushed), self.report.count, self.report.warnings.append)
        push_eval_datasets(self.source, self.dest, exp_map, self.report.count, self.report.warnings.append)
        push_scorers(self.source, self.dest, exp_map, self.report.count, self.report.warnings.append)
        return self.report

    def _has_genai(self, experiment: Experiment) -> bool:
        """Whether the experiment holds traces, evaluation datasets or scorers (pushed without runs)."""
        exp = experiment.experiment_id
        probes = (lambda: next(trace_infos([exp], max_results=1, client=self.source), None) is not None,
                  lambda: has_eval_datasets(self.source, exp), lambda: bool(scorer_names(self.source, exp)))
        for probe in probes:
            try:
                if probe():
                    return True
            except LabtrackError as exc:
                if exc.error_code != "ENDPOINT_NOT_FOUND":
                    raise
        return False

    def _dest_experiment(self, exp: Experiment) -> str:
        dest = self.dest.get_experiment_by_name(exp.name)
        if dest is None:
            tags = {k: v for k, v in exp.tags.items()}
            exp_id = self.dest.create_experiment(exp.name, tags=tags)
            self.report.experiments_created += 1
            self.report.tags += len(tags)
            return exp_id
        if dest.lifecycle_stage == "deleted":
            raise LabtrackError(f"experiment {exp.name!r} is deleted on the destination; "
                                "restore or rename it there first", "INVALID_STATE")
        for key, value in exp.tags.items():
            if dest.tags.get(key) != value:
                self.dest.set_experiment_tag(dest.experiment_id, key, value)
                self.report.tags += 1
        return dest.experiment_id

    def _pushed_runs(self, dest_exp: str) -> dict[str, Run]:
        """The destination's runs that a push made, by source run id (deleted ones too)."""
        out: dict[str, Run] = {}
        for run in all_pages(lambda t: self.dest.search_runs(
                [dest_exp], "", run_view_type="ALL", max_results=_PAGE, page_token=t)):
            source_id = run.tags.get(SOURCE_RUN_TAG)
            if source_id:
                out[source_id] = run
                self.run_map[source_id] = run.info.run_id
        return out

    def _push_run(self, run: Run, dest_exp: str, existing: dict[str, Run]) -> None:
        src_id = run.info.run_id
        copy = existing.get(src_id)
        if copy is None:
            tags = self._run_tags(run)
            tags[SOURCE_RUN_TAG] = src_id
            created = self._create_run(run, dest_exp, tags)
            self.report.runs_created += 1
            self.report.tags += len(tags)
            self.run_map[src_id] = created.info.run_id
            self._copy(run, created, dest_exp, fresh=True)
            return
        self.uri_map[run.info.artifact_uri] = copy.info.artifact_uri
        if _same(run, copy, self._run_tags(run)):
            self.report.runs_unchanged += 1
            self._map_models(run, dest_exp)
            return
        self.report.runs_completed += 1
        self._copy(run, copy, dest_exp, fresh=False)

    def _create_run(self, run: Run, dest_exp: str, tags: dict[str, str]) -> Run:
        # runs/create itself, not Client.create_run: the copy keeps the source's user id.
        message: dict[str, Any] = {
            "experiment_id": dest_exp, "user_id": run.info.user_id,
            "start_time": run.info.start_time, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        if run.info.run_name:
            message["run_name"] = run.info.run_name
        return Run.from_json(self.dest._call("POST", "runs/create", message)["run"])

    def _run_tags(self, run: Run) -> dict[str, str]:
        """The run's tags as the destination should have them (parent id mapped)."""
        tags = dict(run.tags)
        parent = tags.get(PARENT_TAG)
        if parent:
            if parent in self.run_map:
                tags[PARENT_TAG] = self.run_map[parent]
            else:
                del tags[PARENT_TAG]  # the parent was not pushed: the run stands alone there
        return tags

    def _copy(self, run: Run, copy: Run, dest_exp: str, *, fresh: bool) -> None:
        """Send what ``copy`` (the destination's run) lacks of ``run``."""
        dest_id = copy.info.run_id
        self.uri_map[run.info.artifact_uri] = copy.info.artifact_uri
        params = {k: v for k, v in run.params.items() if k not in copy.params}
        tags = {k: v for k, v in self._run_tags(run).items() if copy.tags.get(k) != v}
        if fresh:
            tags = {}  # sent with create_run
        points: list[Metric] = []
        for key, latest in run.metrics.items():
            theirs = copy.metrics.get(key)
            if theirs is not None and _same_point(latest, theirs):
                continue
            history = self.source.get_metric_history(run.info.run_id, key)
            have = set() if fresh or theirs is None else {
                _point_key(m) for m in self.dest.get_metric_history(dest_id, key)}
            points += [m for m in history if _point_key(m) not in have]
        if params or tags or points:
            self.dest.log_batch(dest_id, metrics=points, params=params, tags=tags,
                                synchronous=True)
        self.report.params += len(params)
        self.report.tags += len(tags)
        self.report.metric_points += len(points)
        self._copy_inputs(run, copy)
        self._copy_artifacts(run, copy)
        self._copy_models(run, dest_id, dest_exp)
        if run.info.status != copy.info.status or run.info.end_time != copy.info.end_time:
            if run.info.status != "RUNNING" or copy.info.status != "RUNNING":
                self.dest.update_run(dest_id, status=run.info.status,
                                     end_time=run.info.end_time or None)

    def _copy_inputs(self, run: Run, copy: Run) -> None:
        have = {(d.name, d.digest) for d in copy.dataset_inputs}
        missing = [d for d in run.dataset_inputs if (d.name, d.digest) not in have]
        if missing:
            self.dest._call("POST", "runs/log-inputs", {
                "run_id": copy.info.run_id, "datasets": [d.to_json() for d in missing]})
            self.report.dataset_inputs += len(missing)

    def _copy_artifacts(self, run: Run, copy: Run) -> None:
        from labtrack.client.artifact_repo import ArtifactRepo

        self._copy_tree(ArtifactRepo(self.source.transport, run.info.artifact_uri),
                        ArtifactRepo(self.dest.transport, copy.info.artifact_uri))

    def _copy_tree(self, source: Any, dest: Any) -> None:
        """Upload the files of ``source`` that ``dest`` lacks (or holds at another size)."""
        theirs = file_sizes(dest)
        missing = {path: size for path, size in file_sizes(source).items() if theirs.get(path) != size}
        if not missing:
            return
        with tempfile.TemporaryDirectory(prefix="labtrack-push-") as tmp:
            for path in sorted(missing):
                local = Path(source.download(path, tmp))
                folder = path.rpartition("/")[0]
                dest.log_file(local, folder or None)
                self.report.artifact_files += 1
                self.report.artifact_bytes += local.stat().st_size
                local.unlink()

    # -- logged models ----------------------------------------------------------------
    def _models_of(self, run: Run) -> list[LoggedModel]:
        exp = run.info.experiment_id
        if exp not in self._source_models:
            by_run: dict[str, list[LoggedModel]] = {}
            try:
                for model in all_pages(lambda t: self.source.search_logged_models(
                        [exp], max_results=100, page_token=t)):
                    by_run.setdefault(model.source_run_id or "", []).append(model)
            except LabtrackError as exc:
                if exc.error_code != "ENDPOINT_NOT_FOUND":
                    raise  # a source older than MLflow 3 has no logged models
            self._source_models[exp] = by_run
        return self._source_models[exp].get(run.info.run_id, [])

    def _dest_models_of(self, dest_exp: str) -> dict[str, LoggedModel]:
        if dest_exp not in self._dest_models:
            self._dest_models[dest_exp] = {
                m.tags[SOURCE_MODEL_TAG]: m for m in all_pages(lambda t: self.dest.search_logged_models(
                    [dest_exp], max_results=100, page_token=t)) if SOURCE_MODEL_TAG in m.tags}
        return self._dest_models[dest_exp]

    def _map_models(self, run: Run, dest_exp: str) -> None:
        models = self._models_of(run)
        if not models:
            return
        theirs = self._dest_models_of(dest_exp)
        for model in models:
            if model.model_id in theirs:
                self.model_map[model.model_id] = theirs[model.model_id].model_id
                self.uri_map[model.artifact_uri] = theirs[model.model_id].artifact_uri

    def _copy_models(self, run: Run, dest_run: str, dest_exp: str) -> None:
        from labtrack.client.artifact_repo import ArtifactRepo

        models = self._models_of(run)
        if not models:
            return
        theirs = self._dest_models_of(dest_exp)
        outputs = dict(run.model_outputs)
        linked: list[tuple[str, int]] = []
        for model in models:
            copy = theirs.get(model.model_id)
            if copy is None:
                tags = {k: v for k, v in model.tags.items() if k not in _OWN_TAGS}
                tags[SOURCE_MODEL_TAG] = model.model_id
                copy = self.dest.create_logged_model(
                    dest_exp, name=model.name, source_run_id=dest_run, tags=tags,
                    params=model.params, model_type=model.model_type)
                theirs[model.model_id] = copy
                self.report.logged_models += 1
                if model.model_id in outputs:
                    linked.append((copy.model_id, outputs[model.model_id]))
            self.model_map[model.model_id] = copy.model_id
            self.uri_map[model.artifact_uri] = copy.artifact_uri
            self._copy_tree(ArtifactRepo(self.source.transport, model.artifact_uri),
                            ArtifactRepo(self.dest.transport, copy.artifact_uri))
            if copy.status != model.status and model.status.startswith("LOGGED_MODEL_"):
                if model.status != "LOGGED_MODEL_PENDING":
                    self.dest.finalize_logged_model(copy.model_id, model.status)
        for model_id, step in linked:
            self.dest.log_outputs(dest_run, [model_id], step=step)

    # -- model registry ---------------------------------------------------------------
    def _push_registry(self, runs: Iterable[Run]) -> None:
        """Register on the destination the versions made from the pushed runs."""
        run_ids = {r.info.run_id for r in runs}
        models = set(self.model_map)

        def ours(v: Any) -> bool:
            return v.run_id in run_ids or (v.model_id or _model_id_of(v.source)) in models

        try:
            versions = [v for v in all_pages(lambda t: self.source.search_model_versions(
                max_results=1000, page_token=t)) if ours(v)]
        except LabtrackError as exc:
            if exc.error_code == "ENDPOINT_NOT_FOUND":
                return  # a source without a registry
            raise
        by_name: dict[str, list[Any]] = {}
        for v in versions:
            by_name.setdefault(v.name, []).append(v)
        for name, group in sorted(by_name.items()):
            self._push_versions(name, sorted(group, key=lambda v: int(v.version)))

    def _push_versions(self, name: str, versions: list[Any]) -> None:
        source_model = self.source.get_registered_model(name)
        try:
            dest_model = self.dest.get_registered_model(name)
        except ResourceDoesNotExist:
            dest_model = self.dest.create_registered_model(
                name, tags={k: v for k, v in source_model.tags.items()},
                description=source_model.description or None)
            self.report.registered_models += 1
        else:
            for key, value in source_model.tags.items():
                if dest_model.tags.get(key) != value:
                    self.dest.set_registered_model_tag(name, key, value)
                    self.report.tags += 1
        existing = {v.tags.get(SOURCE_VERSION_TAG): v for v in all_pages(
            lambda t: self.dest.search_model_versions(f"name = '{_quote(name)}'", max_results=1000,
                                                      page_token=t))}
        for version in versions:
            key = _version_key(name, version.version)
            copy = existing.get(key)
            if copy is None:
                tags = {k: v for k, v in version.tags.items()}
                tags[SOURCE_VERSION_TAG] = key
                # MLflow 3 registers ``models:/<model_id>``; some servers leave model_id empty.
                src_model = version.model_id or _model_id_of(version.source)
                model_id = self.model_map.get(src_model or "")
                copy = self.dest.create_model_version(
                    name, self._source_uri(version.source), run_id=self.run_map.get(version.run_id or ""),
                    tags=tags, description=version.description or None, model_id=model_id)
                self.report.model_versions += 1
            if version.current_stage not in ("None", copy.current_stage):
                self.dest.transition_model_version_stage(name, copy.version, version.current_stage)
            for alias in version.aliases:
                if alias not in copy.aliases:
                    self.dest.set_registered_model_alias(name, alias, copy.version)

    def _source_uri(self, source: str) -> str:
        """A version's source, pointing at the destination's copy of the run or model."""
        if source.startswith("models:/"):
            model_id = source[len("models:/"):].strip("/")
            if model_id in self.model_map:
                return f"models:/{self.model_map[model_id]}"
        if source.startswith("runs:/"):
            run_id, _, rest = source[len("runs:/"):].partition("/")
            if run_id in self.run_map:
                return f"runs:/{self.run_map[run_id]}/{rest}"
        for prefix in sorted(self.uri_map, key=len, reverse=True):
            if prefix and (source == prefix or source.startswith(prefix.rstrip("/") + "/")):
                return self.uri_map[prefix] + source[len(prefix):]
        return source


def _linked_prompts(runs: Iterable[Run]) -> list[tuple[str, str]]:
    """The (name, version) of the prompts the runs used (MLflow's ``mlflow.linkedPrompts`` tag)."""
    out = []
    for run in runs:
        try:
            linked = json.loads(run.tags.get(LINKED_PROMPTS_TAG) or "[]")
        except ValueError:
            continue
        out += [(str(p.get("name")), str(p.get("version"))) for p in linked if isinstance(p, dict)]
    return out


def _model_id_of(source: str) -> str | None:
    """The logged model a ``models:/m-...`` source names."""
    if source.startswith("models:/m-") and "/" not in source[len("models:/"):].strip("/"):
        return source[len("models:/"):].strip("/")
    return None


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _value(m: Metric) -> float:
    # MLflow's SQL store keeps ±Inf as ±max float: the same point, once it is there.
    v = float(m.value)
    return math.copysign(sys.float_info.max, v) if math.isinf(v) else v


def _point_key(m: Metric) -> tuple[int, int, str]:
    # repr keeps NaN equal to NaN (NaN != NaN would make every NaN point "new").
    return (int(m.step or 0), int(m.timestamp), repr(_value(m)))


def _same_point(a: Metric, b: Metric) -> bool:
    va, vb = _value(a), _value(b)
    same_value = va == vb or (math.isnan(va) and math.isnan(vb))
    return same_value and int(a.step or 0) == int(b.step or 0) and int(a.timestamp) == int(b.timestamp)


def _same(run: Run, copy: Run, tags: dict[str, str]) -> bool:
    """Whether the destination's copy already holds everything the run has."""
    if run.info.status != copy.info.status or run.info.end_time != copy.info.end_time:
        return False
    if any(k not in copy.params for k in run.params):
        return False
    if any(copy.tags.get(k) != v for k, v in tags.items()):
        return False
    if len(run.dataset_inputs) > len(copy.dataset_inputs):
        return False
    return all(key in copy.metrics and _same_point(m, copy.metrics[key])
               for key, m in run.metrics.items())


def _parents_first(runs: list[Run]) -> list[Run]:
    """Runs ordered so that a parent comes before its children (then by start time)."""
    by_id = {r.info.run_id: r for r in runs}
    ordered: list[Run] = []
    seen: set[str] = set()

    def visit(run: Run, depth: int = 0) -> None:
        if run.info.run_id in seen:
            return
        parent = by_id.get(run.tags.get(PARENT_TAG, ""))
        if parent is not None and depth < 100:
            visit(parent, depth + 1)
        seen.add(run.info.run_id)
        ordered.append(run)

    for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
        visit(run)
    return ordered


@contextlib.contextmanager
def _no_bar() -> Iterator[None]:
    yield None


def push(source: Any, dest: Any, experiments: Sequence[str] = (), filter_string: str = "",
         progress: Callable[[int], Any] | None = None) -> PushReport:
    """Copy the selected runs of ``source`` to ``dest`` (both ``lt.Client``s).

    ``experiments``: names or ids (default: every active experiment);
    ``filter_string``: an MLflow search filter on the runs.  ``progress(total)``
    may return a progress bar (a context manager with ``update(n)``), as
    ``click.progressbar`` does.
    """
    pusher = Pusher(source, dest, filter_string=filter_string, every=not experiments)
    plan = [(exp, pusher.runs(exp, filter_string)) for exp in pusher.experiments(experiments)]
    total = sum(len(runs) for _, runs in plan)
    with (progress(total) if progress else _no_bar()) as bar:
        return pusher.push(plan, on_run=bar.update if bar is not None else None)
