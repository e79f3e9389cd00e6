"""What an MLflow source holds that the import does not copy, counted for the summary's
"not imported" lines: nothing is left behind without a word.

For an SQL source, every table that is neither read by the import (``READ``) nor derived
from what it reads (``DERIVED``) has its rows counted.  For a server, the list endpoints
MLflow serves for such kinds are asked once each (a 404 or any refusal: nothing said).
Only counts are taken: no value of any row is read (the gateway's ``secrets`` above all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

# The MLflow tables the import reads (sql_source.py, eval_dataset_rows.py).
READ = frozenset({
    "experiments", "experiment_tags", "runs", "params", "tags", "metrics", "datasets", "inputs", "input_tags",
    "logged_models", "logged_model_params", "logged_model_tags", "logged_model_metrics",
    "registered_models", "registered_model_tags", "model_versions", "model_version_tags", "registered_model_aliases",
    "trace_info", "trace_tags", "trace_request_metadata", "assessments", "spans",
    "evaluation_datasets", "evaluation_dataset_tags", "evaluation_dataset_records",
    "scorers", "scorer_versions",
    "entity_associations",  # only the kinds in READ_LINKS; the others are counted
})
# Tables that hold nothing a user made, so leaving them is no loss:
DERIVED = frozenset({
    "alembic_version",  # the schema's migration revision (bookkeeping)
    "latest_metrics",  # each run's last metric values: recomputed from ``metrics``
    "trace_metrics", "span_metrics",  # token and cost figures MLflow computes from the spans it stores
    "sql_assessment_daily_rollups", "sql_span_cost_daily_rollups", "sql_trace_metric_daily_rollups",
    "sql_trace_rollup_rebuild_queue",  # dashboard aggregates of traces, and their rebuild queue
    "scheduler_leases", "job_locks",  # which worker holds a scheduled job or lock right now
})
# entity_associations (source type, destination type) pairs the import copies: trace -> run
# links and dataset -> experiment links.
READ_LINKS = frozenset({("TRACE", "RUN"), ("EVALUATION_DATASET", "EXPERIMENT")})
DEFAULT_WORKSPACE = "default"  # every MLflow 3.17 database has it: not data of the user's

# What a table holds, in the user's words (a table not named here is named by itself).
KINDS = {
    "scorers": "scorers", "scorer_versions": "scorer versions", "online_scoring_configs": "online scoring configs",
    "webhooks": "webhooks", "webhook_events": "webhook event subscriptions", "issues": "issues",
    "label_schemas": "label schemas", "review_queues": "review queues", "review_queue_items": "review queue items",
    "review_queue_label_schemas": "review queue label schemas", "review_queue_users": "review queue users",
    "endpoints": "AI gateway endpoints", "endpoint_bindings": "AI gateway endpoint bindings",
    "endpoint_model_mappings": "AI gateway endpoint model mappings", "endpoint_tags": "AI gateway endpoint tags",
    "model_definitions": "AI gateway model definitions", "secrets": "AI gateway secrets (values not read)",
    "guardrails": "AI gateway guardrails", "guardrail_configs": "AI gateway guardrail configs",
    "budget_policies": "AI gateway budget policies", "mcp_servers": "MCP servers",
    "mcp_server_versions": "MCP server versions", "mcp_server_aliases": "MCP server aliases",
    "mcp_server_tags": "MCP server tags", "mcp_server_version_tags": "MCP server version tags",
    "mcp_access_endpoints": "MCP access endpoints", "jobs": "jobs", "workspaces": "workspaces",
}


def line(kind: str, n: int, where: str, more: bool = False) -> str:
    """One "not imported" line: ``12 scorers (MLflow's scorers table)``."""
    return f"{n:,}{'+' if more else ''} {kind} ({where})"


def sql_tables(tables: Iterable[str], count: Callable[[str, str | None], int],
               links: Sequence[tuple[str, str, int]]) -> list[str]:
    """The lines for an SQL source: ``tables`` it has, ``count(table, where)`` its rows (``where``: an
    SQL condition or None), ``links`` its entity_associations per (source type, destination type)."""
    out = []
    for table in sorted(set(tables) - READ - DERIVED):
        n = count(table, f"name <> '{DEFAULT_WORKSPACE}'" if table == "workspaces" else None)
        if n:
            out.append(line(KINDS.get(table, table.replace("_", " ")), n, f"MLflow's {table} table"))
    for src, dst, n in links:
        if (src.upper(), dst.upper()) not in READ_LINKS and n:
            out.append(line(f"{src.lower()} -> {dst.lower()} links", n, "MLflow's entity_associations table"))
    return out


# A server's list endpoints for kinds the import does not copy: (kind, API root, endpoint).
V2, V3 = "/api/2.0/mlflow/", "/api/3.0/mlflow/"
ENDPOINTS: tuple[tuple[str, str, str], ...] = (
    ("webhooks", V2, "webhooks"),
    ("AI gateway endpoints", V3, "gateway/endpoints/list"),
    ("AI gateway model definitions", V3, "gateway/model-definitions/list"),
    ("AI gateway secrets (values not read)", V3, "gateway/secrets/list"),
    ("AI gateway guardrails", V3, "gateway/guardrails/list"),
    ("AI gateway budget policies", V3, "gateway/budgets/list"),
    ("label schemas", V3, "label-schemas/list"),
    ("review queues", V3, "review-queues/list"),
)


def rest_lines(call: Callable[[str, str, dict[str, Any]], dict[str, Any]]) -> list[str]:
    """The lines for a server: ``call(api, endpoint, query)`` GETs one page (raising on any error)."""
    from labtrack.errors import LabtrackError

    out = []
    for kind, api, endpoint in ENDPOINTS:
        try:
            reply = call(api, endpoint, {})
        except LabtrackError:
            continue  # not served there (404), or not allowed: nothing to say
        n = len(next((v for v in reply.values() if isinstance(v, list)), []))
        if n:
            out.append(line(kind, n, f"{api}{endpoint}", bool(reply.get("next_page_token"))))
    return out


__all__ = ["DERIVED", "ENDPOINTS", "KINDS", "READ", "READ_LINKS", "line", "rest_lines", "sql_tables"]
