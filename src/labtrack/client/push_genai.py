"""``labtrack push``'s GenAI side: traces (with their assessments) and prompts.

Traces keep their ids: a trace id is 128 random bits, so the destination's copy
is the same trace, found by that id on the next push (nothing is pushed twice).
Each one is sent as the mlflow client sends a finished trace (``traces.deliver``:
labtrack's ``traces/log``, or OTLP spans and ``StartTraceV3`` on an MLflow
server); its ``mlflow.sourceRun`` points at the destination's copy of the run,
and its assessments (feedback, expectations, with their sources, rationales
and overrides) follow it.  A trace whose run was not pushed stays behind, unless
it was linked to a pushed run (``link_traces_to_run``): then it goes, and so do its
links to the pushed runs, so ``search_traces(run_id=...)`` finds the same traces
on both servers.

Prompts keep their names and version numbers, so ``prompts:/qa/2`` in code
means the same text on both servers.  A prompt goes with the experiments it
belongs to (MLflow's ``_mlflow_experiment_ids`` tag), or with any push of every
experiment; a destination prompt whose versions differ from the source's is left
as it is and reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from labtrack.client.prompts import IS_PROMPT_TAG, TEXT_TAG
from labtrack.client.traces import V3_API, deliver, span_records, trace_infos, trace_spans
from labtrack.client.transport import iter_pages
from labtrack.errors import LabtrackError, ResourceDoesNotExist

SOURCE_RUN_KEY = "mlflow.sourceRun"
EXPERIMENTS_TAG = "_mlflow_experiment_ids"  # ",1,4," on a prompt: the experiments it belongs to
# Where the source server keeps a trace: the destination decides its own.
_LOCATION_TAGS = frozenset({"mlflow.artifactLocation", "mlflow.trace.spansLocation"})
_BATCH = 100
_LINKS_PER_REQUEST = 100


def push_traces(source: Any, dest: Any, source_exp: str, dest_exp: str, runs: Iterable[str],
                run_map: dict[str, str], with_runless: bool, count: Callable[[str, int], None],
                warn: Callable[[str], None]) -> None:
    """Copy the experiment's traces that the destination lacks: those of pushed runs
    (``run_map``: source run id -> destination run id), those linked to one of ``runs`` (the
    experiment's pushed runs) by ``link_traces_to_run``, with their links, and those of no run if
    ``with_runless``."""
    try:
        every = list(trace_infos([source_exp], client=source))
    except LabtrackError as exc:
        if exc.error_code == "ENDPOINT_NOT_FOUND":
            return  # a source without traces
        raise
    links = _links(source, source_exp, runs, every) if every else {}
    linked = {t for ids in links.values() for t in ids}
    infos = [i for i in every if i["trace_id"] in linked or _wanted(i, run_map, with_runless)]
    if not infos:
        return
    try:
        there = {i["trace_id"]: i for i in trace_infos([dest_exp], client=dest)}
    except LabtrackError as exc:
        if exc.error_code != "ENDPOINT_NOT_FOUND":
            raise
        warn(f"the destination keeps no traces (MLflow 3's trace API): {len(infos)} traces left out")
        return
    new = [i for i in infos if i["trace_id"] not in there]
    for k in range(0, len(new), _BATCH):
        batch = new[k:k + _BATCH]
        spans = trace_spans([i["trace_id"] for i in batch], client=source)
        for info in batch:
            deliver(dest.transport, {
                "experiment_id": dest_exp, "trace_id": info["trace_id"],
                "spans": [r.to_dict() for r in span_records(spans.get(info["trace_id"], []))],
                "tags": {k: v for k, v in (info.get("tags") or {}).items() if k not in _LOCATION_TAGS},
                "trace_metadata": _metadata(info.get("trace_metadata") or {}, run_map)})
            count("traces", 1)
    for info in infos:
        _push_assessments(dest, info, there.get(info["trace_id"]), run_map, count)
    for run, ids in links.items():
        _link(dest, dest_exp, run_map[run], ids, count)


def _links(source: Any, exp: str, runs: Iterable[str], infos: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per run of ``runs``, the experiment's traces linked to it (MLflow's ``link_traces_to_run``)
    other than those it logged: a search by run finds both, and a trace's metadata names the
    run that logged it."""
    source_run = {i["trace_id"]: (i.get("trace_metadata") or {}).get(SOURCE_RUN_KEY) for i in infos}
    out: dict[str, list[str]] = {}
    for run in runs:
        ids = [i["trace_id"] for i in trace_infos([exp], f"attribute.run_id = '{run}'", client=source)
               if source_run.get(i["trace_id"]) != run]
        if ids:
            out[run] = ids
    return out


def _link(dest: Any, exp: str, run: str, trace_ids: list[str], count: Callable[[str, int], None]) -> None:
    """Link the traces to the destination's run, those not linked yet, at most 100 a request
    (MLflow's limit; MLflow serves this one under 2.0)."""
    have = {i["trace_id"] for i in trace_infos([exp], f"attribute.run_id = '{run}'", client=dest)}
    todo = [t for t in trace_ids if t not in have]
    for k in range(0, len(todo), _LINKS_PER_REQUEST):
        dest._call("POST", "traces/link-to-run", {"trace_ids": todo[k:k + _LINKS_PER_REQUEST], "run_id": run})
    count("trace links", len(todo))


def _wanted(info: dict[str, Any], run_map: dict[str, str], with_runless: bool) -> bool:
    run = (info.get("trace_metadata") or {}).get(SOURCE_RUN_KEY)
    return run in run_map if run else with_runless


def _metadata(metadata: dict[str, str], run_map: dict[str, str]) -> dict[str, str]:
    out = dict(metadata)
    if out.get(SOURCE_RUN_KEY) in run_map:
        out[SOURCE_RUN_KEY] = run_map[out[SOURCE_RUN_KEY]]
    return out


def _push_assessments(dest: Any, info: dict[str, Any], copy: dict[str, Any] | None,
                      run_map: dict[str, str], count: Callable[[str, int], None]) -> None:
    """The trace's assessments that its copy lacks (the same name, source and creation time),
    overridden ones first, so that an override points at the destination's copy."""
    have = {_identity(a): a.get("assessment_id") for a in (copy or {}).get("assessments") or []}
    ids: dict[str, str] = {}  # source assessment id -> destination's
    for a in sorted(info.get("assessments") or [], key=lambda a: (str(a.get("create_time", "")),
                                                                   bool(a.get("overrides")))):
        known = have.get(_identity(a))
        if known:
            ids[a.get("assessment_id", "")] = known
            continue
        body = {k: v for k, v in a.items() if k not in ("assessment_id", "overrides", "valid")}
        if a.get("overrides") in ids:
            body["overrides"] = ids[a["overrides"]]
        if body.get("run_id"):
            body["run_id"] = run_map.get(body["run_id"], body["run_id"])
        reply = dest._call("POST", f"traces/{info['trace_id']}/assessments", {"assessment": body}, api=V3_API)
        ids[a.get("assessment_id", "")] = (reply.get("assessment") or {}).get("assessment_id", "")
        count("assessments", 1)


def _identity(a: dict[str, Any]) -> tuple[str, str, str]:
    source = a.get("source") or {}
    return (str(a.get("assessment_name", "")), f"{source.get('source_type', '')}:{source.get('source_id', '')}",
            str(a.get("create_time", "")))


def push_prompts(source: Any, dest: Any, exp_map: dict[str, str], every: bool, linked: Iterable[tuple[str, str]],
                 count: Callable[[str, int], None], warn: Callable[[str], None]) -> None:
    """Copy the prompts of the pushed experiments (``exp_map``: source id -> destination id), the
    ones the pushed runs used (``linked``: (name, version)), or all of them if ``every``."""
    linked_names = {name for name, _ in linked}
    try:
        prompts = _search_prompts(source)
    except LabtrackError as exc:
        if exc.error_code == "ENDPOINT_NOT_FOUND":
            return
        raise
    for model in prompts:
        tags = {t["key"]: t.get("value", "") for t in model.get("tags") or []}
        exps = [e for e in tags.get(EXPERIMENTS_TAG, "").split(",") if e]
        if not (every or model["name"] in linked_names or any(e in exp_map for e in exps)):
            continue
        if EXPERIMENTS_TAG in tags:
            tags[EXPERIMENTS_TAG] = "," + ",".join(exp_map.get(e, e) for e in exps) + ","
        _push_prompt(source, dest, model, tags, count, warn)


def pages(client: Any, endpoint: str, items: str, message: dict[str, Any], *, method: str = "GET",
          api: str | None = None) -> list[dict[str, Any]]:
    """Every item of a paged list or search (``items``: the reply's list, or its JSON text, as
    evaluation dataset records come)."""
    def page(token: str | None) -> tuple[list[Any], str | None]:
        query = {**message, "max_results": 1000, **({"page_token": token} if token else {})}
        reply = client._read(method, endpoint, query, **({"api": api} if api else {}))
        found = reply.get(items) or []
        return (json.loads(found) if isinstance(found, str) else found), reply.get("next_page_token")

    return list(iter_pages(page))


def _search_prompts(client: Any) -> list[dict[str, Any]]:
    return pages(client, "registered-models/search", "registered_models",
                  {"filter": f"tags.`{IS_PROMPT_TAG}` = 'true'"})


def _versions(client: Any, name: str) -> dict[int, dict[str, Any]]:
    quoted = name.replace("'", "''")
    return {int(v["version"]): v for v in pages(client, "model-versions/search", "model_versions", {
        "filter": f"name = '{quoted}' AND tags.`{IS_PROMPT_TAG}` = 'true'"})}


def _push_prompt(source: Any, dest: Any, model: dict[str, Any], tags: dict[str, str],
                 count: Callable[[str, int], None], warn: Callable[[str], None]) -> None:
    name = model["name"]
    try:
        there = dest._read("GET", "registered-models/get", {"name": name})["registered_model"]
    except ResourceDoesNotExist:
        message: dict[str, Any] = {"name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        if model.get("description"):
            message["description"] = model["description"]
        there = dest._call("POST", "registered-models/create", message)["registered_model"]
        count("prompts", 1)
    dest_tags = {t["key"]: t.get("value", "") for t in there.get("tags") or []}
    if dest_tags.get(IS_PROMPT_TAG) != "true":
        warn(f"{name!r} is a registered model on the destination, not a prompt: left out")
        return
    versions, copies = _versions(source, name), _versions(dest, name)
    for number in sorted(versions):
        v, copy = versions[number], copies.get(number)
        v_tags = {t["key"]: t.get("value", "") for t in v.get("tags") or []}
        if copy is not None:
            if {t["key"]: t.get("value", "") for t in copy.get("tags") or []}.get(TEXT_TAG) != v_tags.get(TEXT_TAG):
                warn(f"prompt {name!r} version {number} differs on the destination: left as it is")
                return
            continue
        if max(copies, default=0) != number - 1:
            warn(f"prompt {name!r}: the destination's versions do not line up with version {number}: left out")
            return
        message = {"name": name, "source": v.get("source") or "prompt-template",
                   "tags": [{"key": k, "value": val} for k, val in v_tags.items()]}
        if v.get("description"):
            message["description"] = v["description"]
        copies[number] = dest._call("POST", "model-versions/create", message)["model_version"]
        count("prompt versions", 1)
    aliases = {a["alias"]: a["version"] for a in there.get("aliases") or []}
    for a in model.get("aliases") or []:
        if aliases.get(a["alias"]) != a["version"] and int(a["version"]) in copies:
            dest._call("POST", "registered-models/alias", {"name": name, "alias": a["alias"], "version": a["version"]})


__all__ = ["push_prompts", "push_traces"]
