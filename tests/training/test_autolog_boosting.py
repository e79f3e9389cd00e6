"""XGBoost and LightGBM autolog: ``lt.<lib>.autolog()`` records the params, per-iteration metrics
(same step counts) and model flavor that ``mlflow.<lib>.autolog()`` does, for real tiny trainings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import json_dump, recorded, train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

XGBOOST = """
{lib}.xgboost.autolog()
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
X, y = load_breast_cancer(return_X_y=True)
train, valid = xgb.DMatrix(X[:300], label=y[:300]), xgb.DMatrix(X[300:], label=y[300:])
xgb.train({{"objective": "binary:logistic", "max_depth": 2, "eval_metric": ["logloss", "auc"]}},
          train, num_boost_round=8, evals=[(train, "train"), (valid, "valid")],
          early_stopping_rounds=3, verbose_eval=False)
"""

LIGHTGBM = """
{lib}.lightgbm.autolog()
import lightgbm as lgb
from sklearn.datasets import load_breast_cancer
X, y = load_breast_cancer(return_X_y=True)
train = lgb.Dataset(X[:300], label=y[:300])
valid = lgb.Dataset(X[300:], label=y[300:], reference=train)
lgb.train({{"objective": "binary", "num_leaves": 4, "verbose": -1, "metric": ["binary_logloss", "auc"]}},
          train, num_boost_round=8, valid_sets=[train, valid], valid_names=["train", "valid"],
          callbacks=[lgb.early_stopping(3, verbose=False)])
"""


def _compare(lt_server, mlflow_server, tmp_path: Path, body: str) -> dict:
    ours = recorded(lt_server, train(lt_server, "lt", body.format(lib="lt"), tmp_path))
    theirs = recorded(mlflow_server, train(mlflow_server, "mlflow", body.format(lib="mlflow"), tmp_path))
    why = "labtrack:\n" + json_dump(ours) + "\nmlflow:\n" + json_dump(theirs)
    for key in ("params", "metrics", "steps", "flavors"):
        assert ours[key] == theirs[key], f"{key} differ\n{why}"
    assert len(ours["inputs"]) == len(theirs["inputs"]), why
    return ours


def test_xgboost_records_what_mlflow_records(lt_server, mlflow_server, tmp_path: Path) -> None:
    pytest.importorskip("xgboost", reason="xgboost is not installed")
    ours = _compare(lt_server, mlflow_server, tmp_path, XGBOOST)
    assert "xgboost" in ours["flavors"]["model"] and ours["steps"]["valid-auc"] >= 2


def test_lightgbm_records_what_mlflow_records(lt_server, mlflow_server, tmp_path: Path) -> None:
    pytest.importorskip("lightgbm", reason="lightgbm is not installed")
    ours = _compare(lt_server, mlflow_server, tmp_path, LIGHTGBM)
    assert "lightgbm" in ours["flavors"]["model"] and ours["steps"]["valid-auc"] >= 2
