"""``labtrack push``'s evaluation datasets against a destination that has none (MLflow before 3.4):
the push goes on without them and says so in one line.  The copy itself is tested against real
servers in tests/commands/test_push.py."""

from __future__ import annotations

import json
from typing import Any

from labtrack.client.push_eval_datasets import push_eval_datasets
from labtrack.errors import LabtrackError


class _Source:
    def _read(self, method: str, endpoint: str, message: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        if endpoint == "datasets/search":
            return {"datasets": [{"dataset_id": "d-1", "name": "qa", "tags": json.dumps({"k": "v"})}]}
        if endpoint == "datasets/d-1/experiment-ids":
            return {"experiment_ids": ["1"]}
        raise AssertionError(endpoint)


class _OldServer:
    """A server without the datasets endpoints, as the transport reports a 404 route."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _read(self, method: str, endpoint: str, message: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        self.calls.append(endpoint)
        raise LabtrackError(f"no endpoint {endpoint}", "ENDPOINT_NOT_FOUND")

    _call = _read


def test_a_destination_without_evaluation_datasets_is_told_in_one_warning() -> None:
    dest, warnings, counts = _OldServer(), [], []
    push_eval_datasets(_Source(), dest, {"1": "7"}, lambda what, n: counts.append((what, n)), warnings.append)
    assert dest.calls == ["datasets/search"] and counts == []
    assert warnings == ["the destination keeps no evaluation datasets (MLflow before 3.4?): 1 left out"]


def test_a_source_without_evaluation_datasets_pushes_none() -> None:
    dest, warnings = _OldServer(), []
    push_eval_datasets(_OldServer(), dest, {"1": "7"}, lambda what, n: None, warnings.append)
    assert dest.calls == [] and warnings == []
