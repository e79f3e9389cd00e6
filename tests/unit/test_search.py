"""The search grammar, run against real databases: SQLite always, PostgreSQL when
LABTRACK_TEST_POSTGRES_URL names a server (each run gets a fresh schema)."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
from sqlalchemy import create_engine, insert, select, text

from labtrack.errors import InvalidParameterValue
from labtrack.store import schema as s
from labtrack.store import run_query
from labtrack.store.search import (
    Page, decode_page_token, encode_page_token, experiment_conditions, experiment_order_by,
    logged_model_conditions, logged_model_order_by, model_version_conditions,
    model_version_order_by, registered_model_conditions, registered_model_order_by,
    run_conditions, run_order_by,
)

NAN = float("nan")
INF = float("inf")
ALL_RUNS = {"r1", "r2", "r3", "r4", "r5", "r6"}

# --- fixtures: the same rows on every backend ------------------------------------


def _rows() -> list[tuple]:
    run = dict(experiment_id=1, lifecycle_stage="active", artifact_uri="", last_update_time=0)
    runs = [
        dict(run, run_uuid="r1", name="alpha", status="FINISHED", user_id="alice",
             start_time=1000, end_time=2000, artifact_uri="file:///a/r1"),
        dict(run, run_uuid="r2", name="beta", status="RUNNING", user_id="bob",
             start_time=2000, end_time=None),
        dict(run, run_uuid="r3", name="gamma run", status="FAILED", user_id="alice",
             start_time=3000, end_time=3500),
        dict(run, run_uuid="r4", name="delta", status="FINISHED", user_id="carol",
             start_time=None, end_time=None),
        dict(run, run_uuid="r5", name="eps_1", status="KILLED", user_id="eve",
             start_time=5000, end_time=5500, lifecycle_stage="deleted", experiment_id=2),
        dict(run, run_uuid="r6", name="zeta", status="FINISHED", user_id="dave",
             start_time=1000, end_time=1500),
    ]
    params = [("r1", "lr", "0.1"), ("r1", "model", "CNN"), ("r2", "lr", "0.01"),
              ("r2", "model", "cnn"), ("r3", "lr", "0.1"), ("r5", "a b", "1")]
    tags = [("r1", "mlflow.user", "alice"), ("r1", "a b", "x y"), ("r1", "team", "Vision"),
            ("r2", "team", "vision"), ("r3", "team", "nlp"), ("r3", "pct", "100%"),
            ("r3", "glob", "a*[b]?"), ("r4", "it", "it's"), ("r4", "q", 'say "hi"'),
            ("r1", "prio", "b"), ("r2", "prio", "a"), ("r3", "prio", "c")]
    metrics = [("r1", "loss", 0.5), ("r1", "acc", 0.9), ("r1", "train/loss", 1.0),
               ("r2", "loss", NAN), ("r2", "acc", 0.8), ("r3", "loss", 0.2),
               ("r3", "acc", INF), ("r4", "loss", -1.5), ("r5", "acc", 0.0)]
    latest = [dict(run_uuid=r, key=k, value=0.0 if v != v else v, is_nan=v != v,
                   timestamp=1, step=0) for r, k, v in metrics]
    kv = lambda id_col, rows: [{id_col: a, "key": k, "value": v} for a, k, v in rows]  # noqa: E731
    datasets = [dict(dataset_uuid="d1", experiment_id=1, name="mnist", digest="abc123"),
                dict(dataset_uuid="d2", experiment_id=1, name="cifar", digest="def456")]
    inputs = [("r1", "d1"), ("r2", "d1"), ("r2", "d2"), ("r3", "d2")]
    contexts = [("r1", "d1", "training"), ("r2", "d1", "eval"), ("r2", "d2", "training")]

    experiments = [dict(experiment_id=1, name="Default", creation_time=100, last_update_time=100),
                   dict(experiment_id=2, name="exp-a", creation_time=200, last_update_time=900),
                   dict(experiment_id=3, name="exp-b", creation_time=200, last_update_time=300),
                   dict(experiment_id=4, name="Other", creation_time=50, last_update_time=60)]
    exp_tags = [(2, "team", "vision"), (3, "team", "nlp"), (3, "x y", "1")]

    models = [dict(name="alpha-model", creation_time=10, last_updated_time=40),
              dict(name="beta", creation_time=20, last_updated_time=30),
              dict(name="gamma", creation_time=30, last_updated_time=20)]
    model_tags = [("alpha-model", "team", "a"), ("beta", "mlflow.prompt.is_prompt", "true")]
    mv = dict(current_stage="None", status="READY")
    versions = [dict(mv, name="alpha-model", version=1, creation_time=100, last_updated_time=500,
                     run_id="r1", source="file:///x/1"),
                dict(mv, name="alpha-model", version=2, creation_time=200, last_updated_time=500,
                     run_id="r2", source="models:/m-1"),
                dict(mv, name="beta", version=1, creation_time=300, last_updated_time=400,
                     run_id=None, source="s3://b"),
                dict(mv, name="gamma", version=10, creation_time=50, last_updated_time=600,
                     run_id="r1", source="file:///g")]
    version_tags = [dict(name="alpha-model", version=2, key="note", value="ok"),
                    dict(name="beta", version=1, key="mlflow.prompt.is_prompt", value="true")]

    lm = dict(experiment_id=1, artifact_location="", lifecycle_stage="active")
    logged = [dict(lm, model_id="m-1", name="model", creation_timestamp_ms=100,
                   last_updated_timestamp_ms=150, status="READY", model_type="sklearn",
                   source_run_id="r1"),
              dict(lm, model_id="m-2", name="model", creation_timestamp_ms=200,
                   last_updated_timestamp_ms=250, status="PENDING", model_type=None,
                   source_run_id="r2"),
              dict(lm, model_id="m-3", name="other", creation_timestamp_ms=300,
                   last_updated_timestamp_ms=300, status="READY", model_type="torch",
                   source_run_id=None)]
    lm_metrics = [("m-1", "acc", 0, 10, 0.7, "val", "d1"), ("m-1", "acc", 1, 20, 0.9, "val", "d1"),
                  ("m-1", "acc", 0, 5, 0.1, "test", "d9"), ("m-2", "acc", 0, 30, 0.8, None, None),
                  ("m-3", "acc", 0, 1, NAN, None, None), ("m-3", "loss", 0, 1, 0.3, None, None)]
    lm_metric_rows = [dict(model_id=m, key=k, step=st, timestamp=ts, run_uuid="r1",
                           value=0.0 if v != v else v, is_nan=v != v, dataset_name=dn,
                           dataset_digest=dd) for m, k, st, ts, v, dn, dd in lm_metrics]
    return [
        (s.experiments, experiments),
        (s.experiment_tags, kv("experiment_id", exp_tags)),
        (s.runs, runs),
        (s.params, kv("run_uuid", params)),
        (s.tags, kv("run_uuid", tags)),
        (s.latest_metrics, latest),
        (s.datasets, datasets),
        (s.run_inputs, [dict(run_uuid=r, dataset_uuid=d) for r, d in inputs]),
        (s.input_tags, [dict(run_uuid=r, dataset_uuid=d, key="mlflow.data.context", value=c)
                        for r, d, c in contexts]),
        (s.registered_models, models),
        (s.registered_model_tags, kv("name", model_tags)),
        (s.model_versions, versions),
        (s.model_version_tags, version_tags),
        (s.logged_models, logged),
        (s.logged_model_params, kv("model_id", [("m-1", "alpha", "0.5"), ("m-2", "alpha", "1")])),
        (s.logged_model_tags, kv("model_id", [("m-1", "env", "prod"), ("m-3", "env", "dev")])),
        (s.logged_model_metrics, lm_metric_rows),
    ]


def _load(engine) -> None:
    s.metadata.create_all(engine)
    with engine.begin() as conn:
        for table, rows in _rows():
            conn.execute(insert(table), rows)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request, tmp_path_factory):
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path_factory.mktemp('search') / 'mlruns.db'}")
        _load(eng)
        yield eng
        eng.dispose()
        return
    url = os.environ.get("LABTRACK_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set")
    schema = f"search_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        _load(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _ids(engine, id_col, conditions, order=()) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(id_col).where(*conditions).order_by(*order)).scalars())


def runs(engine, filter_string=None, order_by=None) -> list[str]:
    """Run ids in order, as the store's search finds them: ``run_query`` compiles the
    query once and keeps it, so each search runs twice (the second from the kept query)
    and both must match the statement built afresh."""
    fresh = _ids(engine, s.runs.c.run_uuid, run_conditions(filter_string), run_order_by(order_by))
    with engine.connect() as conn:
        kept = [[row[0] for row in run_query.page_rows(conn, [1, 2], filter_string, order_by or [], "ALL", 0, 100)]
                for _ in range(2)]
    assert kept[0] == kept[1] == fresh
    return fresh


# --- runs: filters -------------------------------------------------------------------

RUN_FILTERS = [
    (None, ALL_RUNS), ("", ALL_RUNS), ("   ", ALL_RUNS),
    # metrics: numbers of every shape; NaN (stored as 0) never equals 0
    ("metrics.loss < 0.5", {"r3", "r4"}),
    ("metrics.loss <= 0.5", {"r1", "r3", "r4"}),
    ("metrics.loss = 0.5", {"r1"}),
    ("metrics.loss > -2", {"r1", "r3", "r4"}),
    ("metrics.loss >= 0.2", {"r1", "r3"}),
    ("metrics.loss != 0.5", {"r2", "r3", "r4"}),
    ("metrics.loss = 0", set()),
    ("metrics.acc = 0", {"r5"}),
    ("metrics.acc > 1e-3", {"r1", "r2", "r3"}),
    ("metrics.acc > 1E3", {"r3"}),
    ("metric.acc >= 0.85", {"r1", "r3"}),
    ("metrics.loss > .1", {"r1", "r3"}),
    ("metrics.loss > +0.1", {"r1", "r3"}),
    ("metrics.loss < -1", {"r4"}),
    ("metrics.acc < -1", set()),
    ("metrics.`loss` < 0.3", {"r3", "r4"}),
    ('metrics."loss" < 0.3', {"r3", "r4"}),
    ("metrics.missing > 0", set()),
    ("metrics.train/loss = 1", {"r1"}),
    ("metrics.`train/loss` = 1.0", {"r1"}),
    # params
    ("params.lr = '0.1'", {"r1", "r3"}),
    ('params.lr = "0.1"', {"r1", "r3"}),
    ("param.lr != '0.1'", {"r2"}),
    ("parameters.model LIKE 'C%'", {"r1"}),
    ("parameter.model ILIKE 'c%'", {"r1", "r2"}),
    ("params.model like 'c_n'", {"r2"}),
    ("params.model Like 'C%'", {"r1"}),
    ("params.lr IS NULL", {"r4", "r5", "r6"}),
    ("params.lr is not null", {"r1", "r2", "r3"}),
    ("params.lr Is Not Null", {"r1", "r2", "r3"}),
    ("params.`a b` = '1'", {"r5"}),
    # tags: quoting forms, escapes, case, GLOB metacharacters taken literally
    ("tags.`mlflow.user` = 'alice'", {"r1"}),
    ("tags.mlflow.user = 'alice'", {"r1"}),
    ("tags.\"a b\" = 'x y'", {"r1"}),
    ("tags.team = 'vision'", {"r2"}),
    ("tags.team LIKE '%ision'", {"r1", "r2"}),
    ("tags.team LIKE 'V%'", {"r1"}),
    ("tags.team ILIKE 'V%'", {"r1", "r2"}),
    ("tags.team ilike 'VISION'", {"r1", "r2"}),
    ("tag.team != 'nlp'", {"r1", "r2"}),
    ("tags.team IS NULL", {"r4", "r5", "r6"}),
    ("tags.pct LIKE '100\\%'", {"r3"}),
    ("tags.pct LIKE '10\\%'", set()),
    ("tags.pct ILIKE '100\\%'", {"r3"}),
    ("tags.pct ILIKE '1\\_0%'", set()),
    ("tags.glob LIKE 'a*[b]?'", {"r3"}),
    ("tags.glob LIKE 'a*%'", {"r3"}),
    ("tags.glob LIKE 'a%'", {"r3"}),
    ("tags.glob LIKE '*'", set()),
    ("tags.glob LIKE 'a_[b]_'", {"r3"}),
    ("tags.it = 'it''s'", {"r4"}),
    ("tags.q = \"say \"\"hi\"\"\"", {"r4"}),
    ("tags.q LIKE '%\"hi\"'", {"r4"}),
    ("tags.team = 'a AND b'", set()),
    # attributes
    ("attributes.status = 'FINISHED'", {"r1", "r4", "r6"}),
    ("status = 'FINISHED'", {"r1", "r4", "r6"}),
    ("attr.status != 'FINISHED'", {"r2", "r3", "r5"}),
    ("run.status LIKE 'F%'", {"r1", "r3", "r4", "r6"}),
    ("attributes.status LIKE 'f%'", set()),
    ("attributes.status ILIKE 'f%'", {"r1", "r3", "r4", "r6"}),
    ("attributes.run_id = 'r1'", {"r1"}),
    ("attributes.run_id IN ('r1', 'r3')", {"r1", "r3"}),
    ("run_id in (\"r2\")", {"r2"}),
    ("run_id IN ('r1',)", {"r1"}),
    ("run_id NOT IN ('r1','r3')", {"r2", "r4", "r5", "r6"}),
    ("run_id not in ('r1')", {"r2", "r3", "r4", "r5", "r6"}),
    ("attributes.run_name = 'alpha'", {"r1"}),
    ("\"run name\" = 'alpha'", {"r1"}),
    ("`Run name` LIKE '%run'", {"r3"}),
    ("attributes.`run name` ILIKE 'GAMMA%'", {"r3"}),
    ("run_name LIKE 'eps\\_%'", {"r5"}),
    ("run_name LIKE 'ep__1'", {"r5"}),
    ("run_name LIKE 'e%\\_1'", {"r5"}),
    ("user_id = 'alice'", {"r1", "r3"}),
    ("artifact_uri LIKE '%/r1'", {"r1"}),
    ("lifecycle_stage = 'deleted'", {"r5"}),
    ("start_time > 1000", {"r2", "r3", "r5"}),
    ("attributes.start_time >= 1000", {"r1", "r2", "r3", "r5", "r6"}),
    ("created < 2500", {"r1", "r2", "r6"}),
    ("Created < 2500", {"r1", "r2", "r6"}),
    ("end_time != 2000", {"r3", "r5", "r6"}),
    ("start_time = 3000", {"r3"}),
    ("start_time <= -1", set()),
    # datasets: any input of the run matches
    ("datasets.name = 'mnist'", {"r1", "r2"}),
    ("dataset.digest = 'def456'", {"r2", "r3"}),
    ("datasets.name IN ('cifar')", {"r2", "r3"}),
    ("datasets.name NOT IN ('mnist')", {"r2", "r3"}),
    ("datasets.name != 'mnist'", {"r2", "r3"}),
    ("datasets.name ILIKE 'MN%'", {"r1", "r2"}),
    ("datasets.name LIKE 'MN%'", set()),
    ("datasets.context = 'eval'", {"r2"}),
    ("datasets.context LIKE 'train%'", {"r1", "r2"}),
    # conjunctions
    ("metrics.loss < 1 AND params.lr = '0.1'", {"r1", "r3"}),
    ("params.lr = '0.1' and tags.team = 'nlp'", {"r3"}),
    ("params.lr = '0.1' And tags.team = 'nlp' AND metrics.loss < 0.3", {"r3"}),
    ("  metrics.loss<0.3  AND  params.lr='0.1' ", {"r3"}),
    ("tags.`mlflow.user` = 'alice' AND tags.`a b` = 'x y'", {"r1"}),
    ("params.lr IS NULL AND status = 'FINISHED'", {"r4", "r6"}),
    ("datasets.name = 'mnist' AND datasets.context = 'eval'", {"r2"}),
]


@pytest.mark.parametrize(("filter_string", "expected"), RUN_FILTERS)
def test_run_filter(engine, filter_string, expected):
    assert set(runs(engine, filter_string)) == expected


# --- runs: order_by --------------------------------------------------------------------

RUN_ORDERS = [
    (None, ["r5", "r3", "r2", "r1", "r6", "r4"]),  # start_time DESC (NULL last), run_id ASC
    ([], ["r5", "r3", "r2", "r1", "r6", "r4"]),
    (["metrics.loss"], ["r4", "r3", "r1", "r2", "r5", "r6"]),  # NaN, then missing, last
    (["metrics.loss DESC"], ["r1", "r3", "r4", "r2", "r5", "r6"]),
    (["metrics.`loss` asc"], ["r4", "r3", "r1", "r2", "r5", "r6"]),
    (["metrics.acc DESC"], ["r3", "r1", "r2", "r5", "r6", "r4"]),  # +inf first
    (["params.lr ASC"], ["r2", "r3", "r1", "r5", "r6", "r4"]),
    (["params.lr desc"], ["r3", "r1", "r2", "r5", "r6", "r4"]),
    (["tags.prio DESC"], ["r3", "r1", "r2", "r5", "r6", "r4"]),
    (["tags.prio"], ["r2", "r1", "r3", "r5", "r6", "r4"]),
    (["attributes.start_time ASC"], ["r1", "r6", "r2", "r3", "r5", "r4"]),
    (["start_time DESC"], ["r5", "r3", "r2", "r1", "r6", "r4"]),
    (["created DESC"], ["r5", "r3", "r2", "r1", "r6", "r4"]),
    (["end_time"], ["r6", "r1", "r3", "r5", "r2", "r4"]),
    (["end_time DESC"], ["r5", "r3", "r1", "r6", "r2", "r4"]),
    (["user_id DESC"], ["r5", "r6", "r4", "r2", "r3", "r1"]),
    (["status", "run_id DESC"], ["r3", "r6", "r4", "r1", "r5", "r2"]),
    (["run_id"], ["r1", "r2", "r3", "r4", "r5", "r6"]),
    (["attribute.run_id DESC"], ["r6", "r5", "r4", "r3", "r2", "r1"]),
    (["`run name`"], ["r1", "r2", "r4", "r5", "r3", "r6"]),
    (["attributes.run_name DESC"], ["r6", "r3", "r5", "r4", "r2", "r1"]),
    (["params.lr", "metrics.acc DESC"], ["r2", "r3", "r1", "r5", "r6", "r4"]),
]


@pytest.mark.parametrize(("order_by", "expected"), RUN_ORDERS)
def test_run_order_by(engine, order_by, expected):
    assert runs(engine, None, order_by) == expected


def test_run_filter_and_order_together(engine):
    assert runs(engine, "metrics.loss > -5", ["metrics.loss DESC"]) == ["r1", "r3", "r4"]


# --- malformed input ------------------------------------------------------------------

BAD_RUN_FILTERS = [
    ("params.lr = 'unclosed", "unclosed"),
    ('params.lr = "unclosed', "unclosed"),
    ("tags.`unclosed = 'x'", "unclosed"),
    ("foo.bar = 'x'", "unknown entity 'foo'"),
    ("metrics.x = 'str'", "number"),
    ("params.x > 1", ">"),
    ("params.x = 1", "quoted string"),
    ("metrics.a > 1 OR metrics.b > 2", "OR"),
    ("metrics.a > 1 or metrics.b > 2", "OR"),
    ("metrics.a > 1 AND", "after AND"),
    ("metrics.a > 1 AND   ", "after AND"),
    ("AND metrics.a > 1", "operator"),
    ("unknown_attr = 'x'", "unknown attribute 'unknown_attr'"),
    ("attributes.status > 'A'", ">"),
    ("start_time = 'abc'", "integer"),
    ("start_time > 1.5", "integer"),
    ("start_time > 99999999999999999999", "integer"),
    ("start_time LIKE '1%'", "LIKE"),
    ("metrics.a LIKE '1'", "LIKE"),
    ("metrics.a IN (1, 2)", "IN"),
    ("status IN ('A')", "IN"),
    ("run_id IN 'r1'", "list"),
    ("run_id IN ()", "list"),
    ("run_id IN ('a', 1)", "list"),
    ("run_id IN ('a', ('b'))", "list"),
    ("run_id IN ('a' 'b')", "','"),
    ("run_id = ('a')", "quoted string"),
    ("params.a IN ('x')", "IN"),
    ("metrics.a IS NULL", "IS NULL"),
    ("params.a IS NOTNULL", "NULL"),
    ("params.a IS 'x'", "NULL"),
    ("params.a NOT LIKE 'x'", "IN after NOT"),
    ("metrics.a >", "value"),
    ("metrics.a 1", "operator"),
    ("metrics.a > 1 metrics.b > 2", "AND"),
    ("= 1", "identifier"),
    ("params. = 'x'", "empty key"),
    ("params.`` = 'x'", "empty key"),
    ("datasets.foo = 'x'", "dataset field"),
    ("datasets.name > 'x'", ">"),
    ("params.a LIKE 'x\\'", "backslash"),
    ("metrics.a > 1abc", "value"),
    ("params.a = 'x' AND AND params.b = 'y'", "operator"),
    ("(params.a = 'x')", "identifier"),
    ("metrics.a = NaN", "value"),
    ("params.a == 'x'", "value"),
    ("metrics.a <> 1", "value"),
    ("params.a = 'x';", "AND"),
]


@pytest.mark.parametrize(("filter_string", "fragment"), BAD_RUN_FILTERS)
def test_bad_run_filter(filter_string, fragment):
    with pytest.raises(InvalidParameterValue) as info:
        run_conditions(filter_string)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert fragment in info.value.message
    assert info.value.http_status == 400


BAD_RUN_ORDERS = [
    (["metrics.loss UP"], "ASC or DESC"),
    (["metrics.loss ASC DESC"], "unexpected"),
    (["foo.bar"], "unknown entity"),
    (["unknown_attr"], "unknown attribute"),
    ([""], "identifier"),
    (["metrics.`x"], "unclosed"),
    (["datasets.name"], "datasets"),
    (["start_time", "start_time DESC"], "twice"),
    (["created", "start_time"], "twice"),
    ([5], "string"),
    (["metrics.a, metrics.b"], "ASC or DESC"),
]


@pytest.mark.parametrize(("order_by", "fragment"), BAD_RUN_ORDERS)
def test_bad_run_order_by(order_by, fragment):
    with pytest.raises(InvalidParameterValue) as info:
        run_order_by(order_by)
    assert fragment in info.value.message


# --- experiments -----------------------------------------------------------------------

EXPERIMENT_FILTERS = [
    (None, {1, 2, 3, 4}),
    ("name = 'exp-a'", {2}),
    ("name LIKE 'exp-%'", {2, 3}),
    ("attribute.name ILIKE 'EXP%'", {2, 3}),
    ("name != 'Default'", {2, 3, 4}),
    ("experiment_id = '2'", {2}),
    ("experiment_id = 2", {2}),
    ("experiment_id IN ('1', '3')", {1, 3}),
    ("experiment_id NOT IN ('1')", {2, 3, 4}),
    ("experiment_id IN ('abc', '2')", {2}),
    ("experiment_id = 'abc'", set()),
    ("experiment_id != 'abc'", {1, 2, 3, 4}),
    ("experiment_id != '1'", {2, 3, 4}),
    ("experiment_id LIKE '1%'", {1}),
    ("creation_time > 100", {2, 3}),
    ("last_update_time <= 300", {1, 3, 4}),
    ("tags.team = 'vision'", {2}),
    ("tags.team != 'vision'", {3}),
    ("tags.team IS NULL", {1, 4}),
    ("tags.team IS NOT NULL", {2, 3}),
    ("tags.`x y` = '1'", {3}),
    ("tags.team LIKE 'v%' AND creation_time = 200", {2}),
]


@pytest.mark.parametrize(("filter_string", "expected"), EXPERIMENT_FILTERS)
def test_experiment_filter(engine, filter_string, expected):
    got = _ids(engine, s.experiments.c.experiment_id, experiment_conditions(filter_string))
    assert set(got) == expected


@pytest.mark.parametrize(("order_by", "expected"), [
    (None, [2, 3, 1, 4]),
    (["last_update_time"], [4, 1, 3, 2]),
    (["experiment_id DESC"], [4, 3, 2, 1]),
    (["creation_time"], [4, 1, 2, 3]),
    (["tags.team"], [3, 2, 1, 4]),
])
def test_experiment_order_by(engine, order_by, expected):
    got = _ids(engine, s.experiments.c.experiment_id, [], experiment_order_by(order_by))
    assert got == expected


@pytest.mark.parametrize("bad", [
    "metrics.a > 1", "params.a = 'x'", "datasets.name = 'x'", "unknown = 'x'",
    "creation_time = 'x'", "name IN ('a')", "experiment_id IN (1.5)", "name = 1",
])
def test_bad_experiment_filter(bad):
    with pytest.raises(InvalidParameterValue):
        experiment_conditions(bad)


def test_bad_experiment_order_by():
    with pytest.raises(InvalidParameterValue, match="unknown attribute"):
        experiment_order_by(["start_time"])
    with pytest.raises(InvalidParameterValue, match="metrics"):
        experiment_order_by(["metrics.a"])


# --- registered models ------------------------------------------------------------------

MODEL_FILTERS = [
    (None, {"alpha-model", "beta", "gamma"}),
    ("name = 'beta'", {"beta"}),
    ("name LIKE '%a'", {"beta", "gamma"}),
    ("name ILIKE 'ALPHA%'", {"alpha-model"}),
    ("name LIKE 'ALPHA%'", set()),
    ("name IN ('beta', 'gamma')", {"beta", "gamma"}),
    ("name NOT IN ('beta')", {"alpha-model", "gamma"}),
    ("name != 'beta'", {"alpha-model", "gamma"}),
    # the mlflow client appends this to every search: models without the tag match
    ("tags.`mlflow.prompt.is_prompt` != 'true'", {"alpha-model", "gamma"}),
    ("tags.`mlflow.prompt.is_prompt` = 'true'", {"beta"}),
    ("tag.team = 'a'", {"alpha-model"}),
    ("tags.team LIKE 'a'", {"alpha-model"}),
    ("name LIKE '%' AND tags.`mlflow.prompt.is_prompt` != 'true'", {"alpha-model", "gamma"}),
    ("name = 'beta' AND tags.`mlflow.prompt.is_prompt` != 'true'", set()),
]


@pytest.mark.parametrize(("filter_string", "expected"), MODEL_FILTERS)
def test_registered_model_filter(engine, filter_string, expected):
    got = _ids(engine, s.registered_models.c.name, registered_model_conditions(filter_string))
    assert set(got) == expected


@pytest.mark.parametrize(("order_by", "expected"), [
    (None, ["alpha-model", "beta", "gamma"]),
    (["name DESC"], ["gamma", "beta", "alpha-model"]),
    (["timestamp DESC"], ["alpha-model", "beta", "gamma"]),
    (["last_updated_timestamp"], ["gamma", "beta", "alpha-model"]),
    (["creation_timestamp DESC"], ["gamma", "beta", "alpha-model"]),
])
def test_registered_model_order_by(engine, order_by, expected):
    got = _ids(engine, s.registered_models.c.name, [], registered_model_order_by(order_by))
    assert got == expected


@pytest.mark.parametrize("bad", [
    "creation_timestamp > 1", "metrics.x > 1", "params.x = 'a'", "run_id = 'x'",
    "tags.a > 'x'", "name IN 'a'",
])
def test_bad_registered_model_filter(bad):
    with pytest.raises(InvalidParameterValue):
        registered_model_conditions(bad)


def test_bad_registered_model_order_by():
    with pytest.raises(InvalidParameterValue, match="unknown attribute"):
        registered_model_order_by(["version_number"])


# --- model versions -------------------------------------------------------------------------

def _versions(engine, filter_string=None, order_by=None) -> list[str]:
    mv = s.model_versions
    with engine.connect() as conn:
        rows = conn.execute(select(mv.c.name, mv.c.version)
                            .where(*model_version_conditions(filter_string))
                            .order_by(*model_version_order_by(order_by)))
        return [f"{name}/{version}" for name, version in rows]


VERSION_FILTERS = [
    (None, {"alpha-model/1", "alpha-model/2", "beta/1", "gamma/10"}),
    ("name = 'alpha-model'", {"alpha-model/1", "alpha-model/2"}),
    ("name IN ('beta', 'gamma')", {"beta/1", "gamma/10"}),
    ("run_id = 'r1'", {"alpha-model/1", "gamma/10"}),
    ("run_id IN ('r1', 'r2')", {"alpha-model/1", "alpha-model/2", "gamma/10"}),
    ("run_id NOT IN ('r1')", {"alpha-model/2"}),
    ("run_id != 'r1'", {"alpha-model/2"}),
    ("source_path LIKE 'models:/%'", {"alpha-model/2"}),
    ("source_path = 's3://b'", {"beta/1"}),
    ("version_number = 2", {"alpha-model/2"}),
    ("version_number > 1", {"alpha-model/2", "gamma/10"}),
    ("version_number = '10'", {"gamma/10"}),
    ("tags.note = 'ok'", {"alpha-model/2"}),
    ("tags.`mlflow.prompt.is_prompt` != 'true'", {"alpha-model/1", "alpha-model/2", "gamma/10"}),
    ("name = 'alpha-model' AND version_number >= 2", {"alpha-model/2"}),
]


@pytest.mark.parametrize(("filter_string", "expected"), VERSION_FILTERS)
def test_model_version_filter(engine, filter_string, expected):
    assert set(_versions(engine, filter_string)) == expected


@pytest.mark.parametrize(("order_by", "expected"), [
    (None, ["gamma/10", "alpha-model/2", "alpha-model/1", "beta/1"]),
    (["version_number"], ["alpha-model/1", "beta/1", "alpha-model/2", "gamma/10"]),
    (["creation_timestamp DESC"], ["beta/1", "alpha-model/2", "alpha-model/1", "gamma/10"]),
    (["name DESC", "version_number ASC"], ["gamma/10", "beta/1", "alpha-model/1", "alpha-model/2"]),
])
def test_model_version_order_by(engine, order_by, expected):
    assert _versions(engine, None, order_by) == expected


@pytest.mark.parametrize("bad", [
    "version_number = 'x'", "version_number > 1.5", "version_number LIKE '1'",
    "source_path IN ('a')", "metrics.a > 1", "creation_timestamp > 5",
])
def test_bad_model_version_filter(bad):
    with pytest.raises(InvalidParameterValue):
        model_version_conditions(bad)


# --- logged models ----------------------------------------------------------------------------

def _logged(engine, filter_string=None, order_by=None, datasets=None) -> list[str]:
    return _ids(engine, s.logged_models.c.model_id,
                logged_model_conditions(filter_string, datasets), logged_model_order_by(order_by))


LOGGED_FILTERS = [
    (None, None, {"m-1", "m-2", "m-3"}),
    ("name = 'model'", None, {"m-1", "m-2"}),
    ("model_type = 'sklearn'", None, {"m-1"}),
    ("model_type != 'sklearn'", None, {"m-3"}),
    ("status IN ('READY')", None, {"m-1", "m-3"}),
    ("source_run_id = 'r1'", None, {"m-1"}),
    ("model_id = 'm-2'", None, {"m-2"}),
    ("creation_timestamp > 150", None, {"m-2", "m-3"}),
    ("creation_time <= 200", None, {"m-1", "m-2"}),
    ("last_updated_timestamp = 300", None, {"m-3"}),
    ("metrics.acc > 0.85", None, {"m-1"}),
    ("metrics.acc < 0.2", None, {"m-1"}),  # any logged value, as MLflow
    ("metrics.acc != 0.8", None, {"m-1", "m-3"}),
    ("metrics.acc < 0.2", [{"dataset_name": "val"}], set()),
    ("metrics.acc > 0.85", [{"dataset_name": "val"}], {"m-1"}),
    ("metrics.acc > 0", [{"dataset_name": "val", "dataset_digest": "zzz"}], set()),
    (None, [{"dataset_name": "val"}], {"m-1"}),
    ("params.alpha = '1'", None, {"m-2"}),
    ("tags.env LIKE 'p%'", None, {"m-1"}),
    ("tags.env != 'prod'", None, {"m-3"}),
    ("metrics.loss < 1 AND tags.env = 'dev'", None, {"m-3"}),
]


@pytest.mark.parametrize(("filter_string", "datasets", "expected"), LOGGED_FILTERS)
def test_logged_model_filter(engine, filter_string, datasets, expected):
    assert set(_logged(engine, filter_string, datasets=datasets)) == expected


@pytest.mark.parametrize(("order_by", "expected"), [
    (None, ["m-3", "m-2", "m-1"]),
    (["metrics.acc DESC"], ["m-1", "m-2", "m-3"]),  # latest value per model; NaN last
    (["metrics.acc"], ["m-2", "m-1", "m-3"]),
    ([{"field_name": "metrics.acc", "ascending": True, "dataset_name": "test"}],
     ["m-1", "m-3", "m-2"]),
    ([{"field_name": "name", "ascending": False}], ["m-3", "m-2", "m-1"]),
    ([{"field_name": "creation_timestamp"}], ["m-1", "m-2", "m-3"]),
    (["model_type DESC"], ["m-3", "m-1", "m-2"]),  # NULL model_type last
])
def test_logged_model_order_by(engine, order_by, expected):
    assert _logged(engine, None, order_by) == expected


@pytest.mark.parametrize("bad", [
    "metrics.acc = 'x'", "datasets.name = 'x'", "bogus = 'x'", "creation_timestamp = 'x'",
    "params.alpha > 1",
])
def test_bad_logged_model_filter(bad):
    with pytest.raises(InvalidParameterValue):
        logged_model_conditions(bad)


@pytest.mark.parametrize("bad", [
    [{"field_name": "metrics.acc", "ascending": "yes"}], [{"field_name": "bogus"}],
    [{"ascending": True}], ["metrics.acc SIDEWAYS"],
])
def test_bad_logged_model_order_by(bad):
    with pytest.raises(InvalidParameterValue):
        logged_model_order_by(bad)


# --- page tokens -----------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [0, 1, 1000, 10**12])
def test_page_token_round_trip(offset):
    token = encode_page_token(offset)
    assert json.loads(base64.b64decode(token)) == {"offset": offset}  # MLflow's format
    assert decode_page_token(token) == offset


def test_page_token_empty_is_first_page():
    assert decode_page_token(None) == 0
    assert decode_page_token("") == 0
    assert Page(offset=3).offset == 3


def _b64(obj) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


@pytest.mark.parametrize("token", [
    "!!!", "abc", base64.b64encode(b"\xff\xfe").decode(), _b64([1]), _b64({"offset": -1}),
    _b64({"offset": "3"}), _b64({"offset": True}), _b64({"offset": 1.5}), _b64({}),
])
def test_bad_page_token(token):
    with pytest.raises(InvalidParameterValue, match="page token"):
        decode_page_token(token)
