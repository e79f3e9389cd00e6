"""The registered scorer store (store/scorers.py) on SQLite and PostgreSQL: versions, order,
deletes, MLflow's errors, ids kept on import, gc, and migration 0011 both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from labtrack.errors import InvalidParameterValue, ResourceDoesNotExist
from labtrack.store import gc, migrate
from labtrack.store import schema as s
from labtrack.store.scorers import CUSTOM_CODE_REFUSED, ScorerStore, put_imported
from labtrack.store.tracking import TrackingStore

GUIDELINES = json.dumps({"name": "g", "builtin_scorer_class": "Guidelines",
                         "builtin_scorer_pydantic_data": {"name": "g", "guidelines": ["é"], "model": None}})


def _names(versions: list[Any]) -> list[tuple[str, str, int]]:
    return [(v["experiment_id"], v["scorer_name"], v["scorer_version"]) for v in versions]


def test_versions_are_numbered_and_listed_as_mlflow_does(store: TrackingStore) -> None:
    sc = ScorerStore(store)
    exp = store.create_experiment("scoring")
    first = sc.register(exp, "g", GUIDELINES)
    assert first["scorer_version"] == 1 and first["serialized_scorer"] == GUIDELINES and first["experiment_id"] == exp
    second = sc.register(exp, "g", '{"a":  1}')
    assert second["scorer_version"] == 2 and second["scorer_id"] == first["scorer_id"]
    assert second["serialized_scorer"] == '{"a":  1}'  # register and get answer the text as sent
    assert sc.get(exp, "g")["serialized_scorer"] == '{"a":  1}'
    assert sc.get(exp, "g", 1)["serialized_scorer"] == GUIDELINES
    # lists answer each version re-encoded, as mlflow's server does
    assert [v["serialized_scorer"] for v in sc.versions(exp, "g")] == [GUIDELINES, '{"a": 1}']
    for name in ("é", "B", "a", "Tone"):  # code point order on both backends, whatever the collation
        sc.register(exp, name, "{}")
    sc.register("0", "zeta", "{}")
    assert _names(sc.latest(exp)) == [(exp, n, v) for n, v in [("B", 1), ("Tone", 1), ("a", 1), ("g", 2), ("é", 1)]]
    assert _names(sc.latest_across(None))[0] == ("0", "zeta", 1)
    assert _names(sc.latest_across([exp, "0", "4242"])) == _names(sc.latest_across(None))


def test_deletes_keep_or_drop_the_scorer(store: TrackingStore) -> None:
    sc = ScorerStore(store)
    exp = store.create_experiment("deletes")
    for _ in range(3):
        kept = sc.register(exp, "k", "{}")
    assert sc.delete(exp, "k", 3) == 1
    assert sc.register(exp, "k", "{}")["scorer_version"] == 3  # max + 1 of what is left
    sc.delete(exp, "k", 1)
    sc.delete(exp, "k", 2)
    sc.delete(exp, "k", 3)
    with pytest.raises(ResourceDoesNotExist, match="Scorer with name 'k' not found for experiment"):
        sc.get(exp, "k")
    with pytest.raises(ResourceDoesNotExist):
        sc.versions(exp, "k")
    with pytest.raises(ResourceDoesNotExist):
        sc.delete(exp, "k")  # nothing left to delete
    assert sc.latest(exp) == []
    again = sc.register(exp, "k", "{}")
    assert again["scorer_version"] == 1 and again["scorer_id"] == kept["scorer_id"]  # the emptied scorer
    assert sc.delete(exp, "k") == 1
    assert sc.register(exp, "k", "{}")["scorer_id"] != kept["scorer_id"]  # deleted whole: a new scorer


def test_errors_are_mlflows(store: TrackingStore) -> None:
    sc = ScorerStore(store)
    exp = store.create_experiment("errors")
    sc.register(exp, "x", "{}")
    with pytest.raises(ResourceDoesNotExist,
                       match=f"Scorer with name 'x' and version 7 not found for experiment {exp}."):
        sc.get(exp, "x", 7)
    with pytest.raises(ResourceDoesNotExist, match="No Experiment with id=4242 exists"):
        sc.register("4242", "x", "{}")
    with pytest.raises(InvalidParameterValue, match="valid JSON"):
        sc.register(exp, "x", "nope")
    with pytest.raises(InvalidParameterValue, match="empty or contain only whitespace"):
        sc.register(exp, "  ", "{}")
    with pytest.raises(InvalidParameterValue, match="at most 256"):
        sc.register(exp, "n" * 257, "{}")
    with pytest.raises(InvalidParameterValue, match="a JSON object"):
        sc.register(exp, "x", "[1]")
    with pytest.raises(InvalidParameterValue) as refused:
        sc.register(exp, "x", json.dumps({"ensemble_scorer_data": {"scorers": [{"call_source": "return 1"}]}}))
    assert refused.value.message == CUSTOM_CODE_REFUSED
    assert sc.register(exp, "code", '{"call_source": "return 1"}', allow_custom_code=True)["scorer_version"] == 1
    with pytest.raises(InvalidParameterValue, match="must not contain 'base_url'"):
        sc.register(exp, "x", json.dumps({"third_party_scorer_data": {"kwargs": {"o": [["base_url", "h"]]}}}))
    judge = json.dumps({"instructions_judge_pydantic_data": {"instructions": "i", "model": "gateway:/chat"}})
    with pytest.raises(ResourceDoesNotExist, match=r"GatewayEndpoint not found \(name='chat'\)"):
        sc.register(exp, "j", judge, endpoint_exists=lambda name: False)
    assert sc.register(exp, "j", judge, endpoint_exists=lambda name: name == "chat")["scorer_version"] == 1
    with pytest.raises(ResourceDoesNotExist):
        sc.get(exp, "x", 2**40)  # beyond the column's int32: simply absent
    store.delete_experiment(exp)
    for call in (lambda: sc.latest(exp), lambda: sc.get(exp, "x"), lambda: sc.register(exp, "x", "{}"),
                 lambda: sc.delete(exp, "x")):
        with pytest.raises(InvalidParameterValue, match=f"The experiment {exp} must be in the 'active' state. "
                                                        "Current state is deleted."):
            call()
    assert sc.latest_across([exp]) == []


def _imported(store: TrackingStore, exp: str, scorer_id: str | None, name: str, version: int, serialized: str,
              created: int) -> str | None:
    return store.write(lambda conn: put_imported(conn, int(exp), scorer_id, name, version, serialized, created))


def test_import_keeps_ids_and_times_and_names_conflicts(store: TrackingStore) -> None:
    sc = ScorerStore(store)
    exp = store.create_experiment("imported")
    sid = "0570ca09-5ee1-413d-a663-b375c9075098"
    for version in (2, 1, 2):  # out of order, and again: nothing changes the second time
        assert _imported(store, exp, sid, "old", version, f'{{"v": {version}}}', 1_700_000_000_000 + version) is None
    assert [(v["scorer_id"], v["scorer_version"], v["creation_time"]) for v in sc.versions(exp, "old")] == [
        (sid, 1, 1_700_000_000_001), (sid, 2, 1_700_000_000_002)]
    assert sc.register(exp, "old", "{}")["scorer_version"] == 3
    mine = sc.register(exp, "new", "{}")
    why = _imported(store, exp, "11111111-1111-1111-1111-111111111111", "new", 1, "{}", 1)
    assert why is not None and mine["scorer_id"] in why
    why = _imported(store, store.create_experiment("other"), sid, "old", 1, "{}", 1)
    assert why is not None and "is scorer 'old'" in why
    # Without an id (a server that sends none): the name's scorer here, else a new one, kept for later versions.
    assert _imported(store, exp, None, "old", 5, "{}", 5) is None and sc.get(exp, "old", 5)["scorer_id"] == sid
    for version in (1, 2):
        assert _imported(store, exp, None, "fresh", version, "{}", version) is None
    fresh = {v["scorer_id"] for v in sc.versions(exp, "fresh")}
    assert len(fresh) == 1 and sid not in fresh
    store.delete_experiment(exp)
    assert _imported(store, exp, sid, "old", 4, "{}", 4) is None  # a deleted experiment's scorers come along
    with pytest.raises(ResourceDoesNotExist):
        _imported(store, "4242", sid, "old", 1, "{}", 1)


def test_gc_removes_a_deleted_experiments_scorers(store: TrackingStore) -> None:
    sc = ScorerStore(store)
    exp = store.create_experiment("collected")
    sc.register(exp, "a", "{}")
    sc.register(exp, "a", "{}")
    store.delete_experiment(exp)
    store.write(lambda conn: gc.collect(conn, experiment_ids=[exp]))
    for table in (s.scorer_versions, s.scorers):
        assert store.read(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()) == 0


def test_migration_0011_up_and_down(backend_uri: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = sa.create_engine(backend_uri)
    try:
        with engine.connect() as conn:
            migrate.upgrade(conn, "0010")
            assert not sa.inspect(conn).has_table("scorers")
            migrate.upgrade(conn)
            assert migrate.current_revision(conn) == migrate.HEAD == "0011"
            diff = [d for d in compare_metadata(MigrationContext.configure(conn), s.metadata)
                    if "scorer" in str(d)]
            assert diff == []
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", str(migrate.MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0010")
            conn.commit()
            assert not sa.inspect(conn).has_table("scorer_versions") and migrate.current_revision(conn) == "0010"
    finally:
        engine.dispose()
