"""The runs table's group statistics (issue 21) on a real server, SQLite and PostgreSQL, against
numpy's truth: ``POST /api/2.0/labtrack/runs/table`` with ``stats`` gives, per value of a param,
a tag or an attribute, the run count and the n, mean, sample std, min and max of each metric
column's latest values, NaN and missing values left out, "" for runs without the param.

More metric columns than one statement joins (store/run_table.py), a metric far from zero (the
sums are shifted), a group of one run (std 0), a deleted run, a run of another experiment and
a filter, so the statistics cover exactly the table's runs.  On SQLite a second server on a copy
of the database splits every group-by across its cores (LABTRACK_GROUP_SPLIT_MIN_RUNS=1, as
100,000 runs do): the same answers as the first server's one connection and numpy's.
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.api.conftest import mlflow_error
from labtrack.store.engine import sqlite_file
from tests.servers import ServerProcess, start_server

T = "/api/2.0/labtrack/runs/table"
OPTS = ("adam", "sgd", "rmsprop", None)  # None: the run has no "opt" param
KEYS = [f"k{i:02d}" for i in range(30)] + ["loss", "big"]


@pytest.fixture(scope="module")
def logged(module_server: ServerProcess) -> dict[str, Any]:
    """40 runs with random params, tags and metrics (some missing, some NaN); their truth."""
    srv = module_server
    exps = [srv.api("POST", "experiments/create", {"name": f"groups-{uuid.uuid4().hex[:8]}-{i}"}).json()["experiment_id"]
            for i in range(2)]
    rng = np.random.default_rng(21)
    runs: list[dict[str, Any]] = []
    for i in range(40):
        exp = exps[1] if i >= 36 else exps[0]  # the last four belong to another experiment
        run_id = srv.api("POST", "runs/create", {"experiment_id": exp, "run_name": f"g{i}"}).json()["run"]["info"]["run_id"]
        opt = "solo" if i == 7 else OPTS[int(rng.integers(0, len(OPTS)))]
        values: dict[str, float | None] = {}
        for key in KEYS:
            if rng.random() < 0.15:
                values[key] = None  # never logged
                continue
            v = float(np.round(rng.normal(1e9 if key == "big" else 1.0, 0.5), 3))
            values[key] = math.nan if rng.random() < 0.1 else v
        metrics = [{"key": k, "value": "NaN" if math.isnan(v) else v, "timestamp": 1_700_000_000_000, "step": 0}
                   for k, v in values.items() if v is not None]
        params = [{"key": "opt", "value": opt}] if opt is not None else []
        tags = [{"key": "team", "value": "red" if i % 3 else "blue"}]
        reply = srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": metrics, "params": params, "tags": tags})
        assert reply.status_code == 200, reply.text
        runs.append({"id": run_id, "exp": exp, "opt": opt or "", "team": tags[0]["value"], "values": values,
                     "deleted": i == 11})
    srv.api("POST", "runs/delete", {"run_id": runs[11]["id"]})
    return {"exp": exps[0], "exps": exps, "all": [r for r in runs if not r["deleted"]],
            "runs": [r for r in runs if r["exp"] == exps[0] and not r["deleted"]]}


def _stats(srv: ServerProcess, exp: str | list[str], group: str, keys: list[str],
           filter_string: str = "") -> dict[str, Any]:
    body = {"experiment_ids": exp if isinstance(exp, list) else [exp], "group": group, "stats": True,
            "filter": filter_string, "columns": ["attr.name"] + [f"metrics.{k}" for k in keys]}
    reply = srv.api("POST", T, body)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert out["truncated"] is False
    return {g["value"]: g for g in out["groups"]}


def _check(got: dict[str, Any], runs: list[dict[str, Any]], field: str, keys: list[str]) -> None:
    values = sorted({r[field] for r in runs})
    assert list(got) == values
    for value in values:
        members = [r for r in runs if r[field] == value]
        assert got[value]["count"] == len(members)
        for key in keys:
            v = np.array([r["values"][key] for r in members if r["values"][key] is not None])
            v = v[~np.isnan(v)]
            if not len(v):
                assert key not in got[value]["metrics"]
                continue
            s = got[value]["metrics"][key]
            assert s["n"] == len(v)
            assert s["min"] == v.min() and s["max"] == v.max()
            assert s["mean"] == pytest.approx(v.mean(), rel=1e-12)
            # Each value is known to half an ulp of its size, so a std of values near 1e9 (ulp
            # 1.2e-7) is known only to some of those ulps, more as more values are summed:
            # PostgreSQL's running var_samp and numpy's two passes differ there (CI once saw 1.3
            # ulp at std 0.08).  A wrong formula is off by far more.
            ulps = 2 * len(v) * float(np.spacing(np.abs(v).max()))
            assert s["std"] == pytest.approx(v.std(ddof=1) if len(v) > 1 else 0.0, rel=1e-6, abs=max(ulps, 1e-12))


def test_group_by_a_param_over_more_metric_columns_than_one_statement_joins(module_server: ServerProcess,
                                                                            logged: dict[str, Any]) -> None:
    got = _stats(module_server, logged["exp"], "params.opt", KEYS)
    assert "" in got and got["solo"]["count"] == 1  # runs without the param; a group of one run
    _check(got, logged["runs"], "opt", KEYS)


def test_group_by_a_tag_an_attribute_and_under_a_filter(module_server: ServerProcess, logged: dict[str, Any]) -> None:
    runs = logged["runs"]
    _check(_stats(module_server, logged["exp"], "tags.team", ["loss", "big"]), runs, "team", ["loss", "big"])
    by_status = _stats(module_server, logged["exp"], "attr.status", ["loss"])
    assert list(by_status) == ["RUNNING"] and by_status["RUNNING"]["count"] == len(runs)
    kept = [r for r in runs if r["team"] == "red"]
    _check(_stats(module_server, logged["exp"], "params.opt", ["loss"], "tags.team = 'red'"), kept, "opt", ["loss"])
    # no metric columns: the counts alone
    counts = _stats(module_server, logged["exp"], "params.opt", [])
    assert {v: g["count"] for v, g in counts.items()} == {v: sum(r["opt"] == v for r in runs)
                                                          for v in {r["opt"] for r in runs}}


def test_group_by_experiment_over_two_experiments(module_server: ServerProcess, logged: dict[str, Any]) -> None:
    """Each experiment's runs apart (an attribute's value read as text), every metric column in one
    request as the table sends them; the deleted run is left out."""
    got = _stats(module_server, logged["exps"], "attr.experiment", KEYS)
    assert list(got) == sorted(logged["exps"]) and got[logged["exps"][1]]["count"] == 4
    _check(got, logged["all"], "exp", KEYS)
    for group in got.values():  # the metrics in the columns' order
        assert list(group["metrics"]) == [k for k in KEYS if k in group["metrics"]]


def test_a_metric_summary_column_is_not_a_group(module_server: ServerProcess, logged: dict[str, Any]) -> None:
    for group in ("summary.min.loss", "metrics.loss", "attr.name"):
        reply = module_server.api("POST", T, {"experiment_ids": [logged["exp"]], "group": group, "stats": True})
        assert "group" in mlflow_error(reply, 400, "INVALID_PARAMETER_VALUE")


@pytest.fixture
def split_server(module_server: ServerProcess, logged: dict[str, Any], tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """A server on a copy of the SQLite server's database that splits every group-by."""
    db = sqlite_file(module_server.backend_uri)
    if db is None:
        pytest.skip("PostgreSQL groups in one statement (_hashed_groups)")
    copy = tmp_path / "split.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    monkeypatch.setenv("LABTRACK_GROUP_SPLIT_MIN_RUNS", "1")
    srv = start_server(f"sqlite:///{copy}", tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


def test_a_group_by_split_across_cores_gives_the_one_connection_answer(module_server: ServerProcess,
                                                                       split_server: ServerProcess,
                                                                       logged: dict[str, Any]) -> None:
    """Counts, n, min and max equal; mean and std to the last bits (the parts' sums add up in
    another order than one connection's)."""
    for exps, group, field, keys, runs in ((logged["exp"], "params.opt", "opt", KEYS, logged["runs"]),
                                           (logged["exp"], "tags.team", "team", ["loss", "big"], logged["runs"]),
                                           (logged["exps"], "attr.experiment", "exp", KEYS, logged["all"])):
        split = _stats(split_server, exps, group, keys)
        _check(split, runs, field, keys)
        one = _stats(module_server, exps, group, keys)
        assert [(g["value"], g["count"], list(g["metrics"])) for g in split.values()] == \
            [(g["value"], g["count"], list(g["metrics"])) for g in one.values()]
        for value, g in split.items():
            for k, m in g["metrics"].items():
                o = one[value]["metrics"][k]
                assert (m["n"], m["min"], m["max"]) == (o["n"], o["min"], o["max"])
                assert m["mean"] == pytest.approx(o["mean"], rel=1e-12)
                assert m["std"] == pytest.approx(o["std"], rel=1e-9, abs=1e-12)
