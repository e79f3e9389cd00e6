"""``labtrack push``'s evaluation datasets (``mlflow.genai.datasets``), with their records.

A dataset goes with the pushed experiments it belongs to, and is linked on the
destination to their copies.  It is found there by its name, as
``mlflow.genai.datasets.get_dataset(name=...)`` finds it (a name is one dataset):
a destination without it gets it, with its tags; one that has it gets the tags
and experiment links it lacks.  Records are matched by their inputs, as both
servers' upsert matches them: a record the destination lacks, or holds with
other outputs, fewer expectations or fewer tags, is upserted (the destination
merges expectations and tags into its own); the others are not sent again, so a
second push writes nothing.  Each record keeps its source (the trace or human
that made it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from labtrack.client.push_genai import pages
from labtrack.client.traces import V3_API
from labtrack.errors import LabtrackError

_UPSERT = 500  # records a request
_CARRIED = ("outputs", "expectations", "tags", "source")  # what an upsert takes besides the inputs


def push_eval_datasets(source: Any, dest: Any, exp_map: dict[str, str],
                       count: Callable[[str, int], None], warn: Callable[[str], None]) -> None:
    """Copy the datasets of the pushed experiments (``exp_map``: source id -> destination id)."""
    if not exp_map:
        return
    try:
        datasets = _search(source, {"experiment_ids": list(exp_map)})
    except LabtrackError as exc:
        if exc.error_code == "ENDPOINT_NOT_FOUND":
            return  # a source without evaluation datasets
        raise
    for ds in datasets:
        linked = source._read("GET", f"datasets/{ds['dataset_id']}/experiment-ids", api=V3_API)
        exps = [exp_map[e] for e in linked.get("experiment_ids") or [] if e in exp_map]
        try:
            copy = _dest_dataset(dest, ds, exps, count, warn)
        except LabtrackError as exc:
            if exc.error_code != "ENDPOINT_NOT_FOUND":
                raise
            warn(f"the destination keeps no evaluation datasets (MLflow before 3.4?): {len(datasets)} left out")
            return
        if copy is not None:
            _push_records(source, dest, ds["dataset_id"], copy, count)


def has_eval_datasets(client: Any, experiment_id: str) -> bool:
    """Whether the experiment has an evaluation dataset (raises ENDPOINT_NOT_FOUND where none can be)."""
    reply = client._read("POST", "datasets/search", {"experiment_ids": [experiment_id], "max_results": 1},
                         api=V3_API)
    return bool(reply.get("datasets"))


def _search(client: Any, message: dict[str, Any]) -> list[dict[str, Any]]:
    return pages(client, "datasets/search", "datasets", message, method="POST", api=V3_API)


def _name_filter(name: str) -> str:
    """``name = ...`` quoted as mlflow.genai.datasets quotes it."""
    if '"' not in name:
        return f'name = "{name}"'
    return "name = '" + name.replace("'", "''") + "'"


def _tags(ds: dict[str, Any]) -> dict[str, Any]:
    tags = ds.get("tags")
    if isinstance(tags, str):
        tags = json.loads(tags) if tags else {}
    return tags if isinstance(tags, dict) else {}


def _dest_dataset(dest: Any, ds: dict[str, Any], exps: list[str], count: Callable[[str, int], None],
                  warn: Callable[[str], None]) -> str | None:
    """The destination's dataset of ``ds``'s name, made or brought up to date; None if ambiguous."""
    name, tags = ds["name"], _tags(ds)
    found = _search(dest, {"filter_string": _name_filter(name)})
    if len(found) > 1:
        warn(f"evaluation dataset {name!r}: {len(found)} datasets have that name on the destination: left out")
        return None
    if not found:
        message: dict[str, Any] = {"name": name, "experiment_ids": exps}
        if tags:
            message["tags"] = json.dumps(tags)
        made = dest._call("POST", "datasets/create", message, api=V3_API)["dataset"]
        count("eval datasets", 1)
        return str(made["dataset_id"])
    there = found[0]
    dataset_id = str(there["dataset_id"])
    there_tags = _tags(there)
    changed = {k: v for k, v in tags.items() if there_tags.get(k) != v}
    if changed:
        dest._call("PATCH", f"datasets/{dataset_id}/tags", {"tags": json.dumps(changed)}, api=V3_API)
        count("tags", len(changed))
    have = dest._read("GET", f"datasets/{dataset_id}/experiment-ids", api=V3_API).get("experiment_ids") or []
    missing = [e for e in exps if e not in have]
    if missing:
        dest._call("POST", f"datasets/{dataset_id}/add-experiments", {"experiment_ids": missing}, api=V3_API)
    return dataset_id


def _records(client: Any, dataset_id: str) -> list[dict[str, Any]]:
    return pages(client, f"datasets/{dataset_id}/records", "records", {}, api=V3_API)


def _key(inputs: Any) -> str:
    return json.dumps(inputs, sort_keys=True)


def _holds(there: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether the destination's record already holds all of ``record`` (an upsert would change nothing)."""
    if (record.get("outputs") or None) != (there.get("outputs") or None):
        return False
    for part in ("expectations", "tags"):
        mine, theirs = record.get(part) or {}, there.get(part) or {}
        if any(k not in theirs or theirs[k] != v for k, v in mine.items()):
            return False
    return True


def _push_records(source: Any, dest: Any, source_id: str, dest_id: str, count: Callable[[str, int], None]) -> None:
    there = {_key(r.get("inputs")): r for r in _records(dest, dest_id)}
    batch: list[dict[str, Any]] = []
    for r in _records(source, source_id):
        record = {"inputs": r.get("inputs") or {}, **{k: r[k] for k in _CARRIED if r.get(k) is not None}}
        copy = there.get(_key(record["inputs"]))
        if copy is not None and _holds(copy, record):
            continue
        batch.append(record)
        if len(batch) == _UPSERT:
            _upsert(dest, dest_id, batch, count)
            batch = []
    if batch:
        _upsert(dest, dest_id, batch, count)


def _upsert(dest: Any, dataset_id: str, records: list[dict[str, Any]], count: Callable[[str, int], None]) -> None:
    dest._call("POST", f"datasets/{dataset_id}/records", {"records": json.dumps(records)}, api=V3_API)
    count("dataset records", len(records))


__all__ = ["has_eval_datasets", "push_eval_datasets"]
