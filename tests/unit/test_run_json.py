"""Run.to_json_text writes, byte for byte, what json.dumps(Run.to_json()) writes."""

from __future__ import annotations

import json
import math

import pytest

from labtrack.entities import DatasetInput, Metric, Run, RunInfo


def _dumps(run: Run) -> str:
    return json.dumps(run.to_json(), separators=(",", ":"), allow_nan=False)


def _run(**kw: object) -> Run:
    info = RunInfo(run_id="a" * 32, experiment_id="3", run_name="r\u00e9sum\u00e9 \"1\"", user_id="u\\x",
                   status="FINISHED", start_time=1_700_000_000_000, end_time=1_700_000_000_500,
                   artifact_uri="mlflow-artifacts:/3/a/artifacts")
    return Run(info=info, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("run", [
    _run(),
    _run(metrics={"loss": Metric("loss", 0.25, 17, 3), "nan": Metric("nan", math.nan, 1, 0),
                  "inf": Metric("inf", math.inf, 1, -2), "-inf": Metric("-inf", -math.inf, 1, 2**62),
                  "big": Metric("big", 1e300, 0, 0), "tiny": Metric("tiny", -5e-324, 0, 0),
                  "linked": Metric("linked", 1.0, 2, 3, model_id="m-1", dataset_name="d\n",
                                   dataset_digest="x")},
         params={"lr": "0.001", "\u6f22": "\u5b57 \U0001f600", "q": 'a"b\\c\t'},
         tags={"mlflow.runName": "r", "empty": ""}),
    _run(dataset_inputs=[DatasetInput(name="ds", digest="1", source_type="local", source="/x",
                                      schema='{"a": 1}', tags={"mlflow.data.context": "train"})],
         model_inputs=["m-1"], model_outputs=[("m-2", 7)]),
    Run(info=RunInfo(run_id="b" * 32, experiment_id="0")),  # no start or end time
], ids=["plain", "values", "inputs", "bare"])
def test_text_is_json_dumps_of_to_json(run: Run) -> None:
    assert run.to_json_text() == _dumps(run)


def test_a_field_of_the_wrong_type_still_renders() -> None:
    run = _run(params={"p": "v"})
    run.info.user_id = None  # type: ignore[assignment]
    assert json.loads(run.to_json_text()) == run.to_json()
