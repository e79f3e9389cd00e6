"""The model format's pure parts: signatures as MLflow infers them, enforcement, MLmodel
round trips, and that ``import labtrack`` stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from labtrack.errors import BadRequest
from labtrack.models.mlmodel import ModelMeta
from labtrack.models.signature import enforce, infer_signature, input_specs

FRAME = pd.DataFrame({"f64": [1.0, 2.0], "i64": [1, 2], "s": ["x", "y"], "b": [True, False],
                      "f32": np.array([1, 2], dtype=np.float32),
                      "i32": np.array([1, 2], dtype=np.int32)})
CASES: list[tuple[Any, Any]] = [
    (FRAME, np.array([1.0, 2.0])),
    (FRAME, pd.DataFrame({"p": [1.0, 2.0]})),
    (FRAME, np.array(["a", "b"])),
    (np.zeros((2, 3)), np.zeros(2)),
    (np.zeros((2, 3), dtype=np.float32), np.zeros((2, 1), dtype=np.float32)),
    ({"a": np.zeros(3), "b": np.ones(3)}, None),
    ([{"a": 1.0, "b": "x"}], [1, 2]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_signatures_match_mlflows(case: int) -> None:
    from mlflow.models.signature import infer_signature as mlflow_infer

    inputs, outputs = CASES[case]
    ours = infer_signature(inputs, outputs)
    theirs = mlflow_infer(inputs, outputs).to_dict()
    # The 1-D-prediction-as-column rule lives in MLflow's log_model path, not infer_signature.
    assert json.loads(ours["inputs"]) == json.loads(theirs["inputs"])
    if isinstance(outputs, np.ndarray) and outputs.ndim == 1 and isinstance(inputs, pd.DataFrame):
        assert json.loads(ours["outputs"]) == [{"type": "string" if outputs.dtype.kind == "U"
                                                else "double", "required": True}]
    elif outputs is not None:
        assert json.loads(ours["outputs"]) == json.loads(theirs["outputs"])


def test_enforce_columns_orders_casts_and_refuses() -> None:
    specs = input_specs(infer_signature(pd.DataFrame({"a": [1.0], "b": [2]})))
    out = enforce(pd.DataFrame({"b": [3], "a": [1], "extra": ["z"]}), specs)
    assert list(out.columns) == ["a", "b"] and out["a"].dtype == np.float64
    assert enforce([[1, 2]], specs).to_dict("list") == {"a": [1.0], "b": [2]}
    for bad, needle in [(pd.DataFrame({"a": [1.0]}), "missing input columns ['b']"),
                        (pd.DataFrame({"a": ["x"], "b": [1]}), "must hold numbers"),
                        (pd.DataFrame({"a": [1.0], "b": [1.5]}), "must hold integers"),
                        ([[1, 2, 3]], "expected 2 columns")]:
        with pytest.raises(BadRequest, match=needle.replace("[", r"\[").replace("]", r"\]")):
            enforce(bad, specs)


def test_enforce_tensors_checks_dtype_and_shape() -> None:
    specs = input_specs(infer_signature(np.zeros((2, 3), dtype=np.float32)))
    assert enforce([[1, 2, 3]], specs).dtype == np.float32
    with pytest.raises(BadRequest, match=r"shape \(-1, 3\)"):
        enforce([[1, 2]], specs)
    with pytest.raises(BadRequest, match="must hold numbers"):
        enforce([["a", "b", "c"]], specs)


def test_mlmodel_round_trip_keeps_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: x.y\n  custom: {a: 1}\n"
        "mlflow_version: 3.17.2\nmodel_uuid: abc\nprompts: null\n")
    meta = ModelMeta.load(tmp_path)
    assert meta.pyfunc["loader_module"] == "x.y" and meta.model_uuid == "abc"
    meta.run_id = "r1"
    meta.save(tmp_path)
    again = ModelMeta.load(tmp_path)
    assert again.extra["mlflow_version"] == "3.17.2" and again.flavors["custom"] == {"a": 1}
    assert again.run_id == "r1"


def test_import_labtrack_stays_light() -> None:
    code = ("import sys, labtrack as lt; heavy = [m for m in ('numpy', 'pandas', 'yaml', 'sklearn', "
            "'torch', 'tornado', 'sqlalchemy') if m in sys.modules]; print(heavy); "
            "lt.sklearn; lt.pyfunc; lt.pytorch; print(sorted(m for m in ('sklearn', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "[]"]
