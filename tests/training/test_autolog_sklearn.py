"""scikit-learn autolog: ``lt.sklearn.autolog()`` records what ``mlflow.sklearn.autolog()`` does.

Each side trains the same tiny model for real in a fresh process against its own
real server; the runs are read back with the mlflow client and compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import json_dump, recorded, train

pytest.importorskip("sklearn", reason="scikit-learn is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

PIPELINE = """
{lib}.sklearn.autolog()
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
X, y = load_iris(return_X_y=True)
Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=300))]).fit(X, y)
"""

SEARCH = """
{lib}.sklearn.autolog()
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.model_selection import GridSearchCV
from sklearn.linear_model import Ridge
X, y = load_diabetes(return_X_y=True, as_frame=True)
GridSearchCV(Ridge(), {{"alpha": [0.1, 1.0, 10.0]}}, cv=2).fit(X.head(120), y.head(120))
"""


def _compare(lt_server, mlflow_server, tmp_path: Path, body: str) -> tuple[dict, dict]:
    ours = recorded(lt_server, train(lt_server, "lt", body.format(lib="lt"), tmp_path))
    theirs = recorded(mlflow_server, train(mlflow_server, "mlflow", body.format(lib="mlflow"), tmp_path))
    why = "labtrack:\n" + json_dump(ours) + "\nmlflow:\n" + json_dump(theirs)
    for key in ("params", "metrics", "steps", "flavors", "children", "child_params", "child_metrics"):
        assert ours[key] == theirs[key], f"{key} differ\n{why}"
    for tag in ("estimator_name", "estimator_class", "mlflow.autologging"):
        assert ours["tags"].get(tag) == theirs["tags"].get(tag), why
    assert ours["inputs"] and len(ours["inputs"]) == len(theirs["inputs"]), why
    return ours, theirs


def test_pipeline_records_what_mlflow_records(lt_server, mlflow_server, tmp_path: Path) -> None:
    ours, _ = _compare(lt_server, mlflow_server, tmp_path, PIPELINE)
    assert "training_accuracy_score" in ours["metrics"] and ours["flavors"]["model"]
    assert "sklearn" in ours["flavors"]["model"]
    assert ours["tags"]["estimator_name"] == "Pipeline"


def test_grid_search_makes_child_runs_as_mlflow(lt_server, mlflow_server, tmp_path: Path) -> None:
    ours, _ = _compare(lt_server, mlflow_server, tmp_path, SEARCH)
    assert ours["children"] == 3 and "best_alpha" in ours["params"]
    assert set(ours["flavors"]) == {"model", "best_estimator"}
