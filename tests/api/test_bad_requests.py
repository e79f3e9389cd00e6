"""A corpus of bad requests and traversal payloads against a real server.

Each case is one raw HTTP request (method, path, query, body bytes, headers).
Before it is sent, the whole state is snapshotted: every row of every table of
the server's database (read directly with SQLAlchemy) and every file, folder
and link in the server's working folder (the artifact root, a ``sentinel``
folder beside it, and anything else a traversal could reach).  The reply must
be the expected 4xx with MLflow's error JSON, and the state must be unchanged:
nothing half-written, nothing written or deleted outside the root.

The world each case runs against (an experiment with a tag, a run with a
param, metric, tag, dataset input and artifact, a deleted run, a deleted
experiment, symlinks out of the artifact root) is built once per server
through the API; every case only reads it, so cases share one server per
backend.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from labtrack.columns import STEP, pack
from tests.api.conftest import workdir_of
from tests.api.snapshots import DatabaseSnapshotter, StateSnapshot, diff_summary, file_snapshot
from tests.servers import ServerProcess

ART = "/api/2.0/mlflow-artifacts/artifacts"
AJAX_ART = "/ajax-api/2.0/mlflow-artifacts/artifacts"
SECRET = b"sentinel bytes that must never be read, replaced or deleted\n"
ARTIFACT = b"artifact bytes\n"

_NO_BODY = object()
_DEFAULT = "default"


@dataclass(frozen=True)
class Case:
    """One bad request and the error it must get.

    ``path`` is under ``/api/2.0/mlflow/`` unless it starts with ``/``.
    ``query`` is a dict (urlencoded) or a raw string sent byte for byte.
    ``body`` is JSON-encoded; ``raw`` is sent as given.  ``ctype`` is the
    Content-Type header (default: application/json when there is a body;
    None: no header).  ``auth``: "bearer" (the right token), None (no
    header), or a literal Authorization header ($TOKEN is replaced).
    Placeholders in strings: $EXP, $DEXP (deleted experiment), $RUN, $DRUN
    (deleted run), $RUNART (the run's artifact folder), $TOKEN.
    """

    id: str
    method: str
    path: str
    status: int
    code: str
    body: Any = _NO_BODY
    raw: bytes | None = None
    query: dict[str, Any] | str | None = None
    ctype: str | None = _DEFAULT
    auth: str | None = "bearer"
    cookie: str | None = None


# -- payload builders ----------------------------------------------------------------

def metric(key: str, value: Any = 1.0, step: Any = 0, timestamp: Any = 1000) -> dict[str, Any]:
    return {"key": key, "value": value, "step": step, "timestamp": timestamp}


def good_metrics(n: int, prefix: str = "new_metric") -> list[dict[str, Any]]:
    return [metric(f"{prefix}_{i}", float(i), i, 1000 + i) for i in range(n)]


def kv(n: int, prefix: str) -> list[dict[str, str]]:
    return [{"key": f"{prefix}_{i}", "value": str(i)} for i in range(n)]


def dataset(name: str = "ds", digest: str = "abc123", tags: list[dict[str, str]] | None = None,
            **extra: str) -> dict[str, Any]:
    ds = {"name": name, "digest": digest, "source_type": "local", "source": "{}", **extra}
    return {"tags": tags or [{"key": "mlflow.data.context", "value": "training"}], "dataset": ds}


def token_for(offset: Any) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


IPV, RDNE, RAE = "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"
BAD, NOT_FOUND, UNAUTH = "BAD_REQUEST", "ENDPOINT_NOT_FOUND", "UNAUTHENTICATED"
UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"
K251 = "k" * 251

# -- the corpus ---------------------------------------------------------------------------

TRANSPORT = [
    Case("malformed-json", "POST", "experiments/create", 400, BAD, raw=b'{"name": "half'),
    Case("malformed-json-trailing-comma", "POST", "runs/log-batch", 400, BAD,
         raw=b'{"run_id": "$RUN", "metrics": [],}'),
    Case("json-array-body", "POST", "runs/log-batch", 400, BAD, raw=b'[{"run_id": "$RUN"}]'),
    Case("json-string-body", "POST", "experiments/create", 400, BAD, raw=b'"name"'),
    Case("json-number-body", "POST", "runs/log-metric", 400, BAD, raw=b"42"),
    Case("json-null-body", "POST", "runs/create", 400, BAD, raw=b"null"),
    Case("invalid-utf8-body", "POST", "experiments/create", 400, BAD, raw=b'{"name": "\xff\xfe"}'),
    Case("nan-literal-body", "POST", "runs/log-metric", 400, BAD,
         raw=b'{"run_id": "$RUN", "key": "nanlit", "value": NaNx, "timestamp": 1}'),
    # CSRF rule: a write must be JSON; a cross-site form cannot send that content type.
    Case("post-text-plain", "POST", "experiments/create", 400, BAD,
         raw=b'{"name": "csrf-text-plain"}', ctype="text/plain"),
    Case("post-no-content-type", "POST", "experiments/create", 400, BAD,
         raw=b'{"name": "csrf-no-ctype"}', ctype=None),
    Case("post-form-encoded", "POST", "experiments/create", 400, BAD,
         raw=b"name=csrf-form", ctype="application/x-www-form-urlencoded"),
    Case("post-multipart", "POST", "runs/set-tag", 400, BAD,
         raw=b'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\nx\r\n--b--\r\n',
         ctype="multipart/form-data; boundary=b"),
    Case("post-json-lookalike-ctype", "POST", "experiments/create", 400, BAD,
         raw=b'{"name": "csrf-jsonp"}', ctype="application/jsonp"),
    Case("patch-form-encoded", "PATCH", "logged-models/m-0123456789abcdef0123456789abcdef", 400, BAD,
         raw=b"status=READY", ctype="application/x-www-form-urlencoded"),
    Case("get-on-post-endpoint", "GET", "experiments/create", 405, BAD, query={"name": "via-get"}),
    Case("get-on-log-metric", "GET", "runs/log-metric", 405, BAD,
         query={"run_id": "$RUN", "key": "viaget", "value": "1", "timestamp": "1"}),
    Case("post-on-get-endpoint", "POST", "runs/get", 405, BAD, body={"run_id": "$RUN"}),
    Case("delete-on-post-endpoint", "DELETE", "runs/delete", 405, BAD, body={"run_id": "$RUN"}),
    Case("put-on-api-endpoint", "PUT", "runs/set-tag", 405, BAD,
         body={"run_id": "$RUN", "key": "t", "value": "put"}),
    Case("patch-on-artifacts", "PATCH", ART + "/$RUNART/f.txt", 405, BAD, body={}),
    Case("options-on-api", "OPTIONS", "runs/create", 405, BAD),
    Case("unknown-endpoint", "POST", "runs/frobnicate", 404, NOT_FOUND, body={"run_id": "$RUN"}),
    Case("unknown-api-version", "POST", "/api/9.0/mlflow/runs/create", 404, NOT_FOUND, body={}),
    Case("unknown-top-level", "GET", "/no/such/page", 404, NOT_FOUND),
    Case("api-root", "GET", "/api/2.0/mlflow/", 404, NOT_FOUND),
    Case("endpoint-trailing-junk", "GET", "runs/get/../../../etc/passwd", 404, NOT_FOUND,
         query={"run_id": "$RUN"}),
]

AUTH = [
    Case("no-token", "POST", "experiments/create", 401, UNAUTH, body={"name": "no-token"}, auth=None),
    Case("wrong-bearer", "POST", "runs/log-parameter", 401, UNAUTH,
         body={"run_id": "$RUN", "key": "auth_p", "value": "1"}, auth="Bearer wrong-token"),
    Case("bearer-prefix-of-token", "GET", "experiments/get", 401, UNAUTH,
         query={"experiment_id": "0"}, auth="Bearer x$TOKEN"),
    Case("basic-wrong-password", "POST", "runs/set-tag", 401, UNAUTH,
         body={"run_id": "$RUN", "key": "t", "value": "basic"},
         auth="Basic " + base64.b64encode(b"user:nope").decode()),
    Case("basic-token-as-user", "GET", "runs/get", 401, UNAUTH, query={"run_id": "$RUN"},
         auth="Basic $B64TOKEN_AS_USER"),
    Case("basic-garbage", "GET", "experiments/search", 401, UNAUTH, auth="Basic !!!not-base64"),
    Case("unknown-scheme", "GET", "experiments/search", 401, UNAUTH, auth="Token $TOKEN"),
    Case("wrong-cookie", "GET", "experiments/search", 401, UNAUTH, auth=None, cookie="labtrack_token=wrong"),
    Case("artifact-put-no-token", "PUT", ART + "/$RUNART/no-token.txt", 401, UNAUTH,
         raw=b"sneaky", ctype="text/plain", auth=None),
    Case("artifact-get-no-token", "GET", ART + "/$RUNART/f.txt", 401, UNAUTH, auth=None),
    Case("artifact-delete-no-token", "DELETE", ART + "/$RUNART/f.txt", 401, UNAUTH, auth=None),
    Case("artifact-list-no-token", "GET", ART, 401, UNAUTH, query={"path": "$RUNART"}, auth=None),
]

LIMITS = [
    Case("metric-key-251", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric(K251)}),
    Case("param-key-251", "POST", "runs/log-parameter", 400, IPV, body={"run_id": "$RUN", "key": K251, "value": "1"}),
    Case("tag-key-251", "POST", "runs/set-tag", 400, IPV, body={"run_id": "$RUN", "key": K251, "value": "1"}),
    Case("metric-key-bad-char", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("loss!")}),
    Case("param-key-semicolon", "POST", "runs/log-parameter", 400, IPV,
         body={"run_id": "$RUN", "key": "a;DROP TABLE params", "value": "1"}),
    Case("tag-key-newline", "POST", "runs/set-tag", 400, IPV, body={"run_id": "$RUN", "key": "a\nb", "value": "1"}),
    Case("metric-key-dotdot", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("..")}),
    Case("param-key-dotdot-slash", "POST", "runs/log-parameter", 400, IPV,
         body={"run_id": "$RUN", "key": "../escape", "value": "1"}),
    Case("tag-key-leading-slash", "POST", "runs/set-tag", 400, IPV,
         body={"run_id": "$RUN", "key": "/etc/passwd", "value": "1"}),
    Case("metric-key-inner-dotdot", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("a/../b")}),
    Case("param-key-dot", "POST", "runs/log-parameter", 400, IPV, body={"run_id": "$RUN", "key": ".", "value": "1"}),
    Case("metric-key-double-slash", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("a//b")}),
    Case("metric-key-empty", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("")}),
    # Param values over 6,000 and run tag values over 8,000 characters are kept cut to the
    # limit, as MLflow 3.17 keeps them (labtrack/limits.py; tests/client/test_mlflow_gaps.py).
    Case("experiment-name-501", "POST", "experiments/create", 400, IPV, body={"name": "e" * 501}),
    Case("rename-experiment-501", "POST", "experiments/update", 400, IPV,
         body={"experiment_id": "$EXP", "new_name": "e" * 501}),
    Case("experiment-tag-key-251", "POST", "experiments/set-experiment-tag", 400, IPV,
         body={"experiment_id": "$EXP", "key": K251, "value": "1"}),
    Case("experiment-tag-value-20001", "POST", "experiments/set-experiment-tag", 400, IPV,
         body={"experiment_id": "$EXP", "key": "big", "value": "v" * 20001}),
    Case("create-experiment-bad-tag-key", "POST", "experiments/create", 400, IPV,
         body={"name": "bad-tag-exp", "tags": [{"key": "../x", "value": "1"}]}),
    Case("batch-1001-metrics", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "metrics": good_metrics(1001)}),
    Case("batch-101-params", "POST", "runs/log-batch", 400, IPV, body={"run_id": "$RUN", "params": kv(101, "bp")}),
    Case("batch-101-tags", "POST", "runs/log-batch", 400, IPV, body={"run_id": "$RUN", "tags": kv(101, "bt")}),
    Case("batch-1001-total", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "metrics": good_metrics(900), "params": kv(100, "bp"), "tags": kv(1, "bt")}),
    Case("dataset-name-501", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(name="n" * 501)]}),
    Case("dataset-digest-37", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(digest="d" * 37)]}),
    Case("dataset-source-65536", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(source="s" * 65536)]}),
    Case("dataset-schema-over", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(schema="s" * 1048576)]}),
    Case("dataset-missing-digest", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(digest="")]}),
    Case("input-tag-key-256", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(tags=[{"key": "k" * 256, "value": "v"}])]}),
    Case("input-tag-value-501", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(tags=[{"key": "mlflow.data.context", "value": "v" * 501}])]}),
    # The first dataset is fine, the second is not: neither may be stored.
    Case("log-inputs-second-bad", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(name="fine"), dataset(name="n" * 501)]}),
    Case("log-inputs-1001-datasets", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [dataset(name=f"d{i}") for i in range(1001)]}),
    Case("logged-model-101-params", "POST", "logged-models", 400, IPV,
         body={"experiment_id": "$EXP", "name": "too-many", "params": kv(101, "mp")}),
    Case("metric-negative-timestamp", "POST", "runs/log-metric", 400, IPV,
         body={"run_id": "$RUN", **metric("neg_ts", timestamp=-1)}),
]

TYPES = [
    Case("step-string", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("s", step="five")}),
    Case("step-float", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("s", step=1.5)}),
    Case("step-over-int64", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("s", step=2**63)}),
    Case("step-bool", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("s", step=True)}),
    Case("key-list", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric(["a"])}),  # type: ignore[arg-type]
    Case("key-missing", "POST", "runs/log-metric", 400, IPV,
         body={"run_id": "$RUN", "value": 1.0, "timestamp": 1, "step": 0}),
    Case("value-bool", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("v", value=True)}),
    Case("value-string", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("v", value="high")}),
    Case("value-null", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("v", value=None)}),
    Case("value-object", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$RUN", **metric("v", value={"x": 1})}),
    Case("timestamp-string", "POST", "runs/log-metric", 400, IPV,
         body={"run_id": "$RUN", **metric("ts", timestamp="yesterday")}),
    Case("run-id-object", "POST", "runs/log-metric", 400, IPV, body={"run_id": {"$ne": ""}, **metric("o")}),
    Case("run-id-list", "POST", "runs/log-parameter", 400, IPV, body={"run_id": ["$RUN"], "key": "lp", "value": "1"}),
    Case("run-id-traversal", "GET", "runs/get", 400, IPV, query={"run_id": "../../etc/passwd"}),
    Case("run-id-missing", "POST", "runs/set-tag", 400, IPV, body={"key": "t", "value": "x"}),
    Case("param-value-number", "POST", "runs/log-parameter", 400, IPV, body={"run_id": "$RUN", "key": "num", "value": 5}),
    Case("tag-value-null", "POST", "runs/set-tag", 400, IPV, body={"run_id": "$RUN", "key": "t", "value": None}),
    Case("batch-metrics-string", "POST", "runs/log-batch", 400, IPV, body={"run_id": "$RUN", "metrics": "m=1"}),
    Case("batch-metrics-numbers", "POST", "runs/log-batch", 400, IPV, body={"run_id": "$RUN", "metrics": [1, 2]}),
    Case("batch-param-key-number", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "params": [{"key": 1, "value": "x"}]}),
    Case("batch-tags-object", "POST", "runs/log-batch", 400, IPV, body={"run_id": "$RUN", "tags": {"t": "v"}}),
    Case("create-run-experiment-list", "POST", "runs/create", 400, IPV, body={"experiment_id": ["$EXP"]}),
    Case("create-run-tags-object", "POST", "runs/create", 400, IPV, body={"experiment_id": "$EXP", "tags": {"a": "b"}}),
    Case("create-run-start-time-string", "POST", "runs/create", 400, IPV,
         body={"experiment_id": "$EXP", "start_time": "now"}),
    Case("create-experiment-name-number", "POST", "experiments/create", 400, IPV, body={"name": 123}),
    Case("create-experiment-name-empty", "POST", "experiments/create", 400, IPV, body={"name": ""}),
    Case("create-experiment-name-missing", "POST", "experiments/create", 400, IPV, body={}),
    Case("update-run-bad-status", "POST", "runs/update", 400, IPV, body={"run_id": "$RUN", "status": "DONE"}),
    Case("update-run-status-number", "POST", "runs/update", 400, IPV, body={"run_id": "$RUN", "status": 9}),
    Case("update-run-end-time-list", "POST", "runs/update", 400, IPV, body={"run_id": "$RUN", "end_time": [1]}),
    Case("experiment-id-word", "GET", "experiments/get", 400, IPV, query={"experiment_id": "abc"}),
    Case("experiment-id-negative", "GET", "experiments/get", 400, IPV, query={"experiment_id": "-1"}),
    Case("log-inputs-dataset-not-object", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [{"dataset": "ds"}]}),
    Case("log-inputs-dataset-name-number", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$RUN", "datasets": [{"dataset": {"name": 1, "digest": "d"}}]}),
    Case("outputs-model-id-number", "POST", "runs/outputs", 400, IPV,
         body={"run_id": "$RUN", "models": [{"model_id": 7, "step": 0}]}),
]

MISSING = [
    Case("get-unknown-run", "GET", "runs/get", 404, RDNE, query={"run_id": UNKNOWN_RUN}),
    Case("log-metric-unknown-run", "POST", "runs/log-metric", 404, RDNE, body={"run_id": UNKNOWN_RUN, **metric("m")}),
    Case("log-batch-unknown-run", "POST", "runs/log-batch", 404, RDNE,
         body={"run_id": UNKNOWN_RUN, "metrics": good_metrics(3), "params": kv(2, "p")}),
    Case("log-param-unknown-run", "POST", "runs/log-parameter", 404, RDNE,
         body={"run_uuid": UNKNOWN_RUN, "key": "p", "value": "1"}),
    Case("update-unknown-run", "POST", "runs/update", 404, RDNE, body={"run_id": UNKNOWN_RUN, "status": "FINISHED"}),
    Case("delete-unknown-run", "POST", "runs/delete", 404, RDNE, body={"run_id": UNKNOWN_RUN}),
    Case("history-unknown-run", "GET", "metrics/get-history", 404, RDNE,
         query={"run_id": UNKNOWN_RUN, "metric_key": "m"}),
    Case("get-unknown-experiment", "GET", "experiments/get", 404, RDNE, query={"experiment_id": "987654"}),
    Case("get-by-name-unknown", "GET", "experiments/get-by-name", 404, RDNE, query={"experiment_name": "nope-nope"}),
    Case("create-run-unknown-experiment", "POST", "runs/create", 404, RDNE, body={"experiment_id": "987654"}),
    Case("delete-unknown-experiment", "POST", "experiments/delete", 404, RDNE, body={"experiment_id": "987654"}),
    Case("rename-unknown-experiment", "POST", "experiments/update", 404, RDNE,
         body={"experiment_id": "987654", "new_name": "renamed"}),
    Case("delete-missing-run-tag", "POST", "runs/delete-tag", 404, RDNE, body={"run_id": "$RUN", "key": "no_such_tag"}),
    Case("delete-missing-experiment-tag", "POST", "experiments/delete-experiment-tag", 404, RDNE,
         body={"experiment_id": "$EXP", "key": "no_such_tag"}),
    Case("outputs-unknown-model", "POST", "runs/outputs", 404, RDNE,
         body={"run_id": "$RUN", "models": [{"model_id": "m-0123456789abcdef0123456789abcdef", "step": 0}]}),
    Case("logged-model-unknown-run", "POST", "logged-models", 404, RDNE,
         body={"experiment_id": "$EXP", "name": "orphan", "source_run_id": UNKNOWN_RUN}),
]

SEMANTICS = [
    Case("changed-param-value", "POST", "runs/log-parameter", 400, IPV, body={"run_id": "$RUN", "key": "p", "value": "2"}),
    Case("batch-changed-param-plus-new-metrics", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "metrics": good_metrics(5), "params": [{"key": "p", "value": "2"}],
               "tags": [{"key": "new_tag", "value": "x"}]}),
    Case("batch-new-param-then-changed-param", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "params": [{"key": "fresh_param", "value": "1"}, {"key": "p", "value": "2"}]}),
    Case("batch-1000th-metric-bad-key", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "metrics": good_metrics(999) + [metric("bad key!")]}),
    Case("batch-1000th-metric-bad-value", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "metrics": good_metrics(999) + [metric("late", value="oops")]}),
    Case("batch-1000th-metric-negative-ts", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "metrics": good_metrics(999) + [metric("late", timestamp=-5)]}),
    Case("batch-good-metrics-bad-tag", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "metrics": good_metrics(10), "params": kv(3, "ok"),
               "tags": [{"key": "fine", "value": "x"}, {"key": "bad key!", "value": "x"}]}),
    Case("batch-duplicate-param-different-values", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$RUN", "params": [{"key": "dup", "value": "1"}, {"key": "dup", "value": "2"}]}),
    Case("deleted-run-log-metric", "POST", "runs/log-metric", 400, IPV, body={"run_id": "$DRUN", **metric("m2")}),
    Case("deleted-run-log-param", "POST", "runs/log-parameter", 400, IPV,
         body={"run_id": "$DRUN", "key": "p2", "value": "1"}),
    Case("deleted-run-set-tag", "POST", "runs/set-tag", 400, IPV, body={"run_id": "$DRUN", "key": "t2", "value": "1"}),
    Case("deleted-run-log-batch", "POST", "runs/log-batch", 400, IPV,
         body={"run_id": "$DRUN", "metrics": good_metrics(3), "params": kv(2, "dp")}),
    Case("deleted-run-update", "POST", "runs/update", 400, IPV, body={"run_id": "$DRUN", "status": "FINISHED"}),
    Case("deleted-run-delete-tag", "POST", "runs/delete-tag", 400, IPV, body={"run_id": "$DRUN", "key": "t"}),
    Case("deleted-run-log-inputs", "POST", "runs/log-inputs", 400, IPV,
         body={"run_id": "$DRUN", "datasets": [dataset(name="late")]}),
    Case("create-experiment-existing-name", "POST", "experiments/create", 400, RAE, body={"name": "corpus-exp"}),
    Case("create-experiment-deleted-name", "POST", "experiments/create", 400, RAE, body={"name": "corpus-deleted"}),
    Case("rename-to-existing-name", "POST", "experiments/update", 400, RAE,
         body={"experiment_id": "0", "new_name": "corpus-exp"}),
    Case("delete-default-experiment", "POST", "experiments/delete", 400, IPV, body={"experiment_id": "0"}),
    Case("restore-active-experiment", "POST", "experiments/restore", 400, IPV, body={"experiment_id": "$EXP"}),
    Case("create-run-in-deleted-experiment", "POST", "runs/create", 400, IPV, body={"experiment_id": "$DEXP"}),
    Case("rename-deleted-experiment", "POST", "experiments/update", 400, IPV,
         body={"experiment_id": "$DEXP", "new_name": "back-again"}),
    Case("tag-deleted-experiment", "POST", "experiments/set-experiment-tag", 400, IPV,
         body={"experiment_id": "$DEXP", "key": "k", "value": "v"}),
    Case("run-name-differs-from-tag", "POST", "runs/create", 400, IPV,
         body={"experiment_id": "$EXP", "run_name": "a", "tags": [{"key": "mlflow.runName", "value": "b"}]}),
]

SEARCH = [
    Case("runs-filter-incomplete", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "metrics.m >"}),
    Case("runs-filter-param-unquoted", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "params.p = 1"}),
    Case("runs-filter-unknown-entity", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "foo.bar = 'x'"}),
    Case("runs-filter-or", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "metrics.m > 0 OR metrics.m < 0"}),
    Case("runs-filter-metric-string", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "metrics.m = 'abc'"}),
    Case("runs-filter-unknown-attribute", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "attributes.nope = 'x'"}),
    Case("runs-filter-unclosed-quote", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "tags.t = 'unterminated"}),
    Case("runs-filter-injection", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "params.p = '1'; DELETE FROM runs; --"}),
    Case("runs-filter-not-string", "POST", "runs/search", 400, IPV, body={"experiment_ids": ["$EXP"], "filter": 5}),
    Case("runs-order-bad-direction", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "order_by": ["metrics.m SIDEWAYS"]}),
    Case("runs-order-unknown-entity", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "order_by": ["nope.x"]}),
    Case("runs-order-unknown-attribute", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "order_by": ["attributes.bogus DESC"]}),
    Case("runs-order-not-list", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "order_by": {"metrics.m": "DESC"}}),
    Case("runs-page-token-not-base64", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "page_token": "!!!not base64"}),
    Case("runs-page-token-negative", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "page_token": token_for(-5)}),
    Case("runs-page-token-huge", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "page_token": token_for(10**30)}),
    Case("runs-page-token-float", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "page_token": token_for(1.5)}),
    Case("runs-page-token-json-list", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "page_token": base64.b64encode(b"[1]").decode()}),
    Case("runs-max-results-0", "POST", "runs/search", 400, IPV, body={"experiment_ids": ["$EXP"], "max_results": 0}),
    Case("runs-max-results-50001", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "max_results": 50001}),
    Case("runs-max-results-word", "GET", "runs/search", 400, IPV, query={"experiment_ids": "$EXP", "max_results": "ten"}),
    Case("runs-max-results-bool", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "max_results": True}),
    Case("runs-view-type-bad", "POST", "runs/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "run_view_type": 7}),
    Case("runs-experiment-ids-string", "POST", "runs/search", 400, IPV, body={"experiment_ids": "$EXP"}),
    Case("runs-experiment-ids-word", "POST", "runs/search", 400, IPV, body={"experiment_ids": ["abc"]}),
    Case("experiments-filter-bad-op", "POST", "experiments/search", 400, IPV, body={"filter": "name ~ 'x'"}),
    Case("experiments-filter-metric", "POST", "experiments/search", 400, IPV, body={"filter": "metrics.m > 1"}),
    Case("experiments-filter-garbage", "GET", "experiments/search", 400, IPV, query={"filter": "name = = 'x'"}),
    Case("experiments-order-metric", "POST", "experiments/search", 400, IPV, body={"order_by": ["metrics.m"]}),
    Case("experiments-order-unknown", "POST", "experiments/search", 400, IPV, body={"order_by": ["colour ASC"]}),
    Case("experiments-page-token-bad", "POST", "experiments/search", 400, IPV, body={"page_token": "%%%"}),
    Case("experiments-page-token-huge", "POST", "experiments/search", 400, IPV, body={"page_token": token_for(2**70)}),
    Case("experiments-max-results-0", "POST", "experiments/search", 400, IPV, body={"max_results": 0}),
    Case("experiments-max-results-50001", "POST", "experiments/search", 400, IPV, body={"max_results": 50001}),
    Case("experiments-view-type-bad", "GET", "experiments/search", 400, IPV, query={"view_type": "SOME"}),
    Case("history-max-results-0", "GET", "metrics/get-history", 400, IPV,
         query={"run_id": "$RUN", "metric_key": "m", "max_results": "0"}),
    Case("history-page-token-bad", "GET", "metrics/get-history", 400, IPV,
         query={"run_id": "$RUN", "metric_key": "m", "page_token": "bad"}),
    Case("history-missing-key", "GET", "metrics/get-history", 400, IPV, query={"run_id": "$RUN"}),
    Case("logged-models-search-bad-filter", "POST", "logged-models/search", 400, IPV,
         body={"experiment_ids": ["$EXP"], "filter": "name = "}),
]

# labtrack's bulk metrics endpoint: one bad point refuses the whole request.
LOG_SERIES = "/api/2.0/labtrack/runs/log-series"


def series(key: str = "s", n: int = 3, **columns: Any) -> dict[str, Any]:
    return {"key": key, "steps": list(range(n)), "timestamps": [1000 + i for i in range(n)],
            "values": [float(i) for i in range(n)], **columns}


SERIES = [
    Case("series-lengths-differ", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(steps=[0, 1])]}),
    Case("series-steps-not-list", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(steps=5)]}),
    Case("series-step-float", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(steps=[0, 1.5, 2])]}),
    Case("series-step-bool", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(steps=[0, True, 2])]}),
    Case("series-step-over-int64", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(steps=[0, 2**63, 2])]}),
    Case("series-negative-timestamp", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(timestamps=[1000, -1, 1002])]}),
    Case("series-negative-timestamp-packed", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(timestamps=pack(STEP, [1000, -1, 1002]))]}),
    Case("series-value-word", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(values=[1.0, "high", 3.0])]}),
    Case("series-value-null", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(values=[1.0, None, 3.0])]}),
    Case("series-values-bad-base64", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(values="not base64!")]}),
    Case("series-values-base64-partial-double", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series(n=1, values=base64.b64encode(b"12345").decode())]}),
    Case("series-bad-key", "POST", LOG_SERIES, 400, IPV, body={"run_id": "$RUN", "series": [series(key="../up")]}),
    Case("series-key-missing", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [{"steps": [0], "timestamps": [1], "values": [1.0]}]}),
    Case("series-not-objects", "POST", LOG_SERIES, 400, IPV, body={"run_id": "$RUN", "series": [[0, 1, 2]]}),
    Case("series-100001-points", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series("a", 50_000), series("b", 50_001)]}),
    Case("series-good-points-changed-param", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series()], "params": [{"key": "p", "value": "changed"}]}),
    Case("series-good-points-bad-tag", "POST", LOG_SERIES, 400, IPV,
         body={"run_id": "$RUN", "series": [series()], "tags": [{"key": "bad key!", "value": "v"}]}),
    Case("series-unknown-run", "POST", LOG_SERIES, 404, RDNE, body={"run_id": UNKNOWN_RUN, "series": [series()]}),
    Case("series-deleted-run", "POST", LOG_SERIES, 400, IPV, body={"run_id": "$DRUN", "series": [series()]}),
    Case("series-form-post", "POST", LOG_SERIES, 400, BAD, raw=b"run_id=x", ctype="application/x-www-form-urlencoded"),
    Case("series-get", "GET", LOG_SERIES, 405, BAD, query={"run_id": "$RUN"}),
]

SC = "/api/3.0/mlflow/scorers/"  # (setting online scoring is a deliberate 501: tests/compat/test_mlflow_scorers.py)


def scorer(serialized: str = "{}", name: Any = "s", experiment_id: Any = "$EXP") -> dict[str, Any]:
    return {"experiment_id": experiment_id, "name": name, "serialized_scorer": serialized}


SCORERS = [
    Case("scorer-not-json", "POST", SC + "register", 400, IPV, body=scorer("{half")),
    Case("scorer-list-payload", "POST", SC + "register", 400, IPV, body=scorer("[1]")),
    Case("scorer-with-code", "POST", SC + "register", 400, IPV, body=scorer('{"call_source": "return 1"}')),
    Case("scorer-third-party-api-base", "POST", SC + "register", 400, IPV,
         body=scorer('{"third_party_scorer_data": {"kwargs": {"api_base": "http://evil"}}}')),
    Case("scorer-blank-name", "POST", SC + "register", 400, IPV, body=scorer(name=" ")),
    Case("scorer-name-257", "POST", SC + "register", 400, IPV, body=scorer(name="n" * 257)),
    Case("scorer-name-number", "POST", SC + "register", 400, IPV, body=scorer(name=5)),
    Case("scorer-no-payload", "POST", SC + "register", 400, IPV, body={"experiment_id": "$EXP", "name": "s"}),
    Case("scorer-unknown-experiment", "POST", SC + "register", 404, RDNE, body=scorer(experiment_id="424242")),
    Case("scorer-deleted-experiment", "POST", SC + "register", 400, IPV, body=scorer(experiment_id="$DEXP")),
    Case("scorer-form-post", "POST", SC + "register", 400, BAD, raw=b"name=s",
         ctype="application/x-www-form-urlencoded"),
    Case("scorer-register-get", "GET", SC + "register", 405, BAD, query={"experiment_id": "$EXP"}),
    Case("scorer-get-missing", "GET", SC + "get", 404, RDNE, query={"experiment_id": "$EXP", "name": "nope"}),
    Case("scorer-get-bad-version", "GET", SC + "get", 400, IPV,
         query={"experiment_id": "$EXP", "name": "nope", "version": "x"}),
    Case("scorer-get-no-name", "GET", SC + "get", 400, IPV, query={"experiment_id": "$EXP"}),
    Case("scorer-versions-missing", "GET", SC + "versions", 404, RDNE, query={"experiment_id": "$EXP", "name": "n"}),
    Case("scorer-delete-missing", "DELETE", SC + "delete", 404, RDNE, body={"experiment_id": "$EXP", "name": "n"}),
    Case("scorer-list-both", "GET", SC + "list", 400, IPV, query={"experiment_id": "$EXP", "experiment_ids": "$EXP"}),
    Case("scorer-list-bad-id", "GET", SC + "list", 400, IPV, query={"experiment_ids": "abc"}),
    Case("scorer-list-deleted-experiment", "GET", SC + "list", 400, IPV, query={"experiment_id": "$DEXP"}),
    Case("scorer-online-configs-no-ids", "GET", SC + "online-configs", 400, IPV),
]

# Traversal over HTTP.  Paths are sent byte for byte (no client-side dot-segment
# removal); tornado percent-decodes the path once, the server must refuse
# every further layer too.  "link_out" is a symlink inside the artifact root
# that points at the sentinel folder outside it; "file_link" points at the
# sentinel file itself.
TRAVERSAL_PUT = [
    "../evil.txt", "$RUNART/../../../../evil.txt", "%2e%2e/evil.txt", "%2E%2E%2Fevil.txt",
    "%252e%252e/evil.txt", "%25252e%25252e%25252fevil.txt", "..%2fsentinel%2fsecret.txt",
    "..%5cevil.txt", "a%5c..%5c..%5cevil.txt", "%2fetc%2fevil.txt", "/tmp-evil.txt",
    "$RUNART/x%00.txt", "~/evil.txt", "C:/evil.txt",
    "%EF%BC%8E%EF%BC%8E/evil.txt",  # fullwidth dots fold to '..' under NFKC
    "link_out/secret.txt", "link_out/new.txt", "file_link", "$RUNART/link_out/evil.txt",
]
TRAVERSAL_GET = [
    "../sentinel/secret.txt", "%2e%2e/sentinel/secret.txt", "%2e%2e%2fsentinel%2fsecret.txt",
    "%252e%252e%252fsentinel%252fsecret.txt", "..%5csentinel%5csecret.txt", "%2f..%2fsentinel",
    "link_out/secret.txt", "file_link", "$RUNART/link_out/secret.txt", "$RUNART/f.txt%00.png",
]
TRAVERSAL_DELETE = [
    "..", "%2e%2e", "..%2fsentinel", "%252e%252e%252fsentinel", "link_out", "link_out/secret.txt",
    "$RUNART/link_out", "file_link", "%5c..%5csentinel", "$RUNART/..%2f..%2f..%2f..%2fsentinel",
]
TRAVERSAL_LIST = [
    "..", "../sentinel", "%2e%2e", "%252e%252e", "%25252e%25252e", "/etc", "link_out", "$RUNART/link_out",
    "a%5cb", "%00", "$RUNART%00", "$RUNART/../../../../sentinel",
]


def _traversal_cases() -> list[Case]:
    out = []
    for i, p in enumerate(TRAVERSAL_PUT):
        out.append(Case(f"artifact-put-{i}", "PUT", f"{ART}/{p}", 400, IPV, raw=b"evil bytes",
                        ctype="application/octet-stream"))
    for i, p in enumerate(TRAVERSAL_GET):
        out.append(Case(f"artifact-get-{i}", "GET", f"{ART}/{p}", 400, IPV))
    for i, p in enumerate(TRAVERSAL_DELETE):
        out.append(Case(f"artifact-delete-{i}", "DELETE", f"{ART}/{p}", 400, IPV))
    for i, p in enumerate(TRAVERSAL_LIST):
        out.append(Case(f"artifact-list-{i}", "GET", ART, 400, IPV, query="path=" + p))
    out += [
        Case("ajax-artifact-get-traversal", "GET", f"{AJAX_ART}/..%2fsentinel%2fsecret.txt", 400, IPV),
        Case("ajax-artifact-put-traversal", "PUT", f"{AJAX_ART}/%2e%2e/evil.txt", 400, IPV, raw=b"x",
             ctype="application/octet-stream"),
        Case("run-artifacts-list-traversal", "GET", "artifacts/list", 400, IPV,
             query={"run_id": "$RUN", "path": "../../../../sentinel"}),
        Case("get-artifact-traversal", "GET", "/get-artifact", 400, IPV,
             query={"run_uuid": "$RUN", "path": "../../../../sentinel/secret.txt"}),
        Case("get-artifact-link-out", "GET", "/get-artifact", 400, IPV,
             query={"run_uuid": "$RUN", "path": "link_out/secret.txt"}),
        # Overlong UTF-8 for '.': tornado refuses the undecodable path before any handler runs.
        Case("artifact-put-overlong-utf8", "PUT", f"{ART}/%c0%ae%c0%ae/evil.txt", 400, BAD, raw=b"x",
             ctype="application/octet-stream"),
        Case("artifact-list-invalid-utf8", "GET", ART, 400, BAD, query="path=%c0%ae%c0%ae"),
        Case("get-artifact-nul", "GET", "/get-artifact", 400, IPV, query="run_uuid=$RUN&path=f.txt%00"),
        Case("artifact-put-root", "PUT", ART + "/", 400, IPV, raw=b"x", ctype="application/octet-stream"),
        Case("artifact-put-onto-folder", "PUT", ART + "/$RUNART", 400, IPV, raw=b"x",
             ctype="application/octet-stream"),
        Case("artifact-put-under-file", "PUT", ART + "/$RUNART/f.txt/child.txt", 400, IPV, raw=b"x",
             ctype="application/octet-stream"),
        Case("artifact-put-name-too-long", "PUT", ART + "/$RUNART/" + "n" * 300, 400, IPV, raw=b"x",
             ctype="application/octet-stream"),
        Case("artifact-delete-root", "DELETE", ART, 400, IPV),
        Case("artifact-get-missing", "GET", ART + "/$RUNART/missing.txt", 404, RDNE),
        Case("artifact-get-folder", "GET", ART + "/$RUNART", 404, RDNE),
        Case("artifact-delete-missing", "DELETE", ART + "/$RUNART/missing.txt", 404, RDNE),
    ]
    return out


CASES = (TRANSPORT + AUTH + LIMITS + TYPES + MISSING + SEMANTICS + SEARCH + SERIES + SCORERS
         + _traversal_cases())


def test_corpus_is_large_and_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 80


# -- the world the cases run against -------------------------------------------------


@dataclass
class World:
    server: ServerProcess
    values: dict[str, str]
    db: DatabaseSnapshotter
    workdir: Path

    def snapshot(self) -> StateSnapshot:
        return StateSnapshot(self.db.snapshot(), file_snapshot(self.workdir))


def _ok(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
    return resp.json()


@pytest.fixture(scope="module")
def world(module_server: ServerProcess) -> Iterator[World]:
    srv = module_server
    exp = _ok(srv.api("POST", "experiments/create",
                      {"name": "corpus-exp", "tags": [{"key": "team", "value": "a"}]}))["experiment_id"]
    dexp = _ok(srv.api("POST", "experiments/create", {"name": "corpus-deleted"}))["experiment_id"]
    run = _ok(srv.api("POST", "runs/create", {"experiment_id": exp, "run_name": "corpus-run"}))["run"]["info"]
    run_id = run["run_id"]
    _ok(srv.api("POST", "runs/log-batch", {
        "run_id": run_id, "metrics": [metric("m", 0.5, 0, 1000), metric("m", 0.25, 1, 2000)],
        "params": [{"key": "p", "value": "1"}], "tags": [{"key": "t", "value": "v"}]}))
    _ok(srv.api("POST", "runs/log-inputs", {"run_id": run_id, "datasets": [dataset()]}))
    drun = _ok(srv.api("POST", "runs/create", {"experiment_id": exp}))["run"]["info"]["run_id"]
    _ok(srv.api("POST", "runs/set-tag", {"run_id": drun, "key": "t", "value": "v"}))
    _ok(srv.api("POST", "runs/delete", {"run_id": drun}))
    _ok(srv.api("POST", "experiments/delete", {"experiment_id": dexp}))
    runart = f"{exp}/{run_id}/artifacts"
    _ok(srv.session.put(f"{srv.url}{ART}/{runart}/f.txt", data=ARTIFACT, timeout=30))
    _ok(srv.session.put(f"{srv.url}{ART}/{runart}/sub/g.txt", data=ARTIFACT, timeout=30))

    workdir = workdir_of(srv)
    sentinel = workdir / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret.txt").write_bytes(SECRET)
    root = srv.artifacts
    os.symlink(sentinel, root / "link_out")
    os.symlink(sentinel / "secret.txt", root / "file_link")
    os.symlink(sentinel, root / runart / "link_out")
    # The setup itself must have worked, or the cases test nothing.
    assert (root / runart / "f.txt").read_bytes() == ARTIFACT
    got = _ok(srv.api("GET", "runs/get", {"run_id": run_id}))["run"]
    assert {p["key"]: p["value"] for p in got["data"]["params"]} == {"p": "1"}
    assert got["inputs"]["dataset_inputs"], got

    b64_token_as_user = base64.b64encode(f"{srv.token}:".encode()).decode()
    values = {"$EXP": exp, "$DEXP": dexp, "$RUNART": runart, "$RUN": run_id, "$DRUN": drun,
              "$TOKEN": srv.token or "", "$B64TOKEN_AS_USER": b64_token_as_user}
    db = DatabaseSnapshotter(srv.backend_uri)
    try:
        yield World(srv, values, db, workdir)
    finally:
        db.close()


def _subst(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for k in sorted(values, key=len, reverse=True):  # $RUNART before $RUN
            value = value.replace(k, values[k])
        return value
    if isinstance(value, bytes):
        return _subst(value.decode("latin-1"), values).encode("latin-1")
    if isinstance(value, list):
        return [_subst(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _subst(v, values) for k, v in value.items()}
    return value


def send(world: World, case: Case) -> requests.Response:
    """Send ``case`` exactly as written: no dot-segment removal, no re-encoding of the path."""
    v = world.values
    srv = world.server
    path = _subst(case.path, v)
    url = srv.url + (path if path.startswith("/") else "/api/2.0/mlflow/" + path)
    if case.query is not None:
        query = _subst(case.query, v)
        url += "?" + (query if isinstance(query, str) else urlencode(query, doseq=True))
    data: bytes | None = None
    if case.raw is not None:
        data = _subst(case.raw, v)
    elif case.body is not _NO_BODY:
        data = json.dumps(_subst(case.body, v)).encode()
    headers: dict[str, str] = {}
    ctype = "application/json" if case.ctype == _DEFAULT else case.ctype
    if data is not None and ctype is not None:
        headers["Content-Type"] = ctype
    if case.auth == "bearer":
        headers["Authorization"] = f"Bearer {srv.token}"
    elif case.auth is not None:
        headers["Authorization"] = _subst(case.auth, v)
    if case.cookie is not None:
        headers["Cookie"] = case.cookie
    with requests.Session() as session:
        prepared = session.prepare_request(requests.Request(case.method, url, data=data, headers=headers))
        prepared.url = url  # undo requests' dot-segment removal: the payload goes out as written
        return session.send(prepared, timeout=60, allow_redirects=False)


def test_good_requests_through_the_same_sender_succeed(world: World) -> None:
    """Controls: well-formed twins of the corpus requests work, so a refusal above means something."""
    got = send(world, Case("ok-get", "GET", ART + "/$RUNART/f.txt", 200, ""))
    assert got.status_code == 200 and got.content == ARTIFACT
    listing = send(world, Case("ok-list", "GET", ART, 200, "", query="path=$RUNART")).json()
    # The link out of the root is hidden from listings; the run's files are there.
    assert sorted(f["path"] for f in listing["files"]) == ["f.txt", "sub"]
    got = send(world, Case("ok-run", "GET", "runs/get", 200, "", query={"run_id": "$RUN"}))
    assert got.status_code == 200 and got.json()["run"]["info"]["run_id"] == world.values["$RUN"]
    basic = "Basic " + base64.b64encode(f"someone:{world.server.token}".encode()).decode()
    got = send(world, Case("ok-basic", "GET", "experiments/get", 200, "", query={"experiment_id": "$EXP"},
                           auth=basic))
    assert got.status_code == 200 and got.json()["experiment"]["name"] == "corpus-exp"
    got = send(world, Case("ok-search", "POST", "runs/search", 200, "",
                           body={"experiment_ids": ["$EXP"], "filter": "params.p = '1'", "max_results": 50000}))
    assert got.status_code == 200 and len(got.json()["runs"]) == 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_refused_and_changes_nothing(world: World, case: Case) -> None:
    before = world.snapshot()
    resp = send(world, case)
    after = world.snapshot()

    assert resp.status_code < 500, f"server error {resp.status_code}: {resp.text[:500]}"
    assert resp.status_code == case.status, f"expected {case.status}, got {resp.status_code}: {resp.text[:500]}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict), body
    assert body.get("error_code") == case.code, body
    assert isinstance(body.get("message"), str) and body["message"].strip(), body
    assert SECRET.decode() not in resp.text
    assert before == after, "state changed:\n" + diff_summary(before, after)


def test_snapshots_see_one_accepted_write(world: World) -> None:
    """The state comparison is sharp enough to see a single row or a single file."""
    before = world.snapshot()
    resp = send(world, Case("ok-metric", "POST", "runs/log-metric", 200, "",
                            body={"run_id": "$RUN", **metric("control", 1.0, 99, 99)}))
    assert resp.status_code == 200, resp.text
    # The write may be answered before it is committed (server/early_answer.py): the server
    # commits it before it reads another request, so an answer to one means it is in the file.
    assert world.server.api("GET", "runs/get", {"run_id": world.values["$RUN"]}).status_code == 200
    middle = world.snapshot()
    assert "table metrics" in diff_summary(before, middle) and before.files == middle.files
    rel = "$RUNART/control.txt"
    assert send(world, Case("ok-put", "PUT", f"{ART}/{rel}", 200, "", raw=b"c",
                            ctype="text/plain")).status_code == 200
    after = world.snapshot()
    assert after.db == middle.db and "control.txt" in diff_summary(middle, after)
    assert send(world, Case("ok-delete", "DELETE", f"{ART}/{rel}", 200, "")).status_code == 200
    assert world.snapshot().files == before.files


def test_sentinel_and_links_survive_the_corpus(world: World) -> None:
    """After the corpus, the links out still exist and the sentinel still holds its bytes.

    Guards the corpus itself: if a setup step were lost (a link never made), the
    traversal cases above would pass for the wrong reason.
    """
    root = world.server.artifacts
    runart = world.values["$RUNART"]
    assert (world.workdir / "sentinel" / "secret.txt").read_bytes() == SECRET
    assert (root / "link_out").is_symlink() and (root / "file_link").is_symlink()
    assert (root / runart / "link_out").is_symlink()
    assert (root / runart / "f.txt").read_bytes() == ARTIFACT
    assert sorted(p.name for p in world.workdir.iterdir() if p.name.endswith(".txt")) == []
