"""Evaluation dataset endpoints (``/api/3.0/mlflow/datasets/...``), as ``mlflow.genai.datasets`` calls them.

Records travel as JSON text inside the JSON message (MLflow's protocol): an
upsert's ``records`` and a page's ``records`` are strings holding a list.
"""

from __future__ import annotations

import json
from typing import Any

from labtrack.server.args import Args
from labtrack.server.base import ServerContext
from labtrack.store.eval_datasets import EvalDatasetStore


def dataset_store(ctx: ServerContext) -> EvalDatasetStore:
    return ctx.one("eval_datasets", lambda: EvalDatasetStore(ctx.store))


def create(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"dataset": dataset_store(ctx).create(a.data.get("name"), a.data.get("tags"), a.str_list("experiment_ids"))}


def get(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    return {"dataset": dataset_store(ctx).get(dataset_id)}


def delete(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    dataset_store(ctx).delete(dataset_id)
    return {}


def search(ctx: ServerContext, a: Args) -> dict[str, Any]:
    found, token = dataset_store(ctx).search(a.str_list("experiment_ids"), a.str("filter_string"),
                                             a.int("max_results"), a.str_list("order_by"), a.str("page_token"))
    out: dict[str, Any] = {"datasets": found}
    if token:
        out["next_page_token"] = token
    return out


def set_tags(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    dataset_store(ctx).set_tags(dataset_id, a.data.get("tags"))
    return {}


def delete_tag(ctx: ServerContext, a: Args, dataset_id: str, key: str) -> dict[str, Any]:
    dataset_store(ctx).delete_tag(dataset_id, key)
    return {}


def upsert_records(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    inserted, updated = dataset_store(ctx).upsert_records(dataset_id, a.data.get("records"))
    return {"inserted_count": inserted, "updated_count": updated}


def get_records(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    records, token = dataset_store(ctx).records(dataset_id, a.int("max_results"), a.str("page_token"))
    out: dict[str, Any] = {"records": json.dumps(records, ensure_ascii=False)}
    if token:
        out["next_page_token"] = token
    return out


def delete_records(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    return {"deleted_count": dataset_store(ctx).delete_records(dataset_id, a.str_list("dataset_record_ids"))}


def experiment_ids(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    return {"experiment_ids": dataset_store(ctx).experiment_ids(dataset_id)}


def add_experiments(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    return {"dataset": dataset_store(ctx).link_experiments(dataset_id, a.str_list("experiment_ids"), add=True)}


def remove_experiments(ctx: ServerContext, a: Args, dataset_id: str) -> dict[str, Any]:
    return {"dataset": dataset_store(ctx).link_experiments(dataset_id, a.str_list("experiment_ids"), add=False)}


_ID = r"(d-[0-9a-f]+|[^/]+)"

ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("datasets/create", {"POST": create}),
    ("datasets/search", {"POST": search}),
    (f"datasets/{_ID}/records", {"POST": upsert_records, "GET": get_records, "DELETE": delete_records}),
    (f"datasets/{_ID}/tags", {"PATCH": set_tags}),
    (f"datasets/{_ID}/tags/([^/]+)", {"DELETE": delete_tag}),
    (f"datasets/{_ID}/experiment-ids", {"GET": experiment_ids}),
    (f"datasets/{_ID}/add-experiments", {"POST": add_experiments}),
    (f"datasets/{_ID}/remove-experiments", {"POST": remove_experiments}),
    (f"datasets/{_ID}", {"GET": get, "DELETE": delete}),
]
