"""mlflow_data: MLflow's schema revisions, and recognising MLflow data without touching it."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path

import pytest

from labtrack import mlflow_data
from labtrack.errors import MlflowDataFound


def _mlflow_chain() -> list[str]:
    """The installed mlflow's migration chain, oldest first, read from its scripts."""
    mlflow = pytest.importorskip("mlflow")
    folder = Path(mlflow.__file__).parent / "store" / "db_migrations" / "versions"
    down: dict[str, list[str]] = {}
    for path in folder.glob("*.py"):
        text = path.read_text()
        rev = re.search(r"^revision\s*=\s*[\"'](\w+)", text, re.M)
        if rev is None:
            continue
        line = re.search(r"^down_revision\s*=\s*(.*)$", text, re.M)
        down[rev.group(1)] = re.findall(r"[\"'](\w+)[\"']", line.group(1) if line else "")
    children: dict[str, str] = {}
    for rev, parents in down.items():
        for p in parents:
            children[p] = rev
    chain = [next(r for r, p in down.items() if not p)]
    while chain[-1] in children:
        chain.append(children[chain[-1]])
    return chain


def test_revisions_follow_the_installed_mlflow_migrations() -> None:
    assert [r for r, _ in mlflow_data.REVISIONS] == _mlflow_chain()


def test_version_ranges() -> None:
    assert mlflow_data.mlflow_versions("acf3f17fdcc7") == "2.8-2.12"  # mlflow 2.9.2 writes this one
    assert mlflow_data.mlflow_versions(mlflow_data.REVISIONS[-1][0]).endswith("or later")
    assert mlflow_data.at_least("acf3f17fdcc7", "7f2a7d5fae7d")
    assert not mlflow_data.at_least("7f2a7d5fae7d", "acf3f17fdcc7")
    assert mlflow_data.position("ffffffffffff") == len(mlflow_data.REVISIONS) - 1  # newer: the newest known


def _mlflow_like(path: Path, revision: str, *, wal: bool = False) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = wal")
    conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    conn.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    conn.execute("CREATE TABLE runs (run_uuid TEXT, source_type TEXT, artifact_uri TEXT)")
    conn.commit()
    conn.close()


def _state(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("wal", [False, True])
def test_inspecting_changes_nothing(tmp_path: Path, wal: bool) -> None:
    db = tmp_path / "mlruns.db"
    _mlflow_like(db, "dc11669786a5", wal=wal)
    before = _state(tmp_path)
    found = mlflow_data.inspect_sqlite(db)
    assert found is not None and found.revision == "dc11669786a5"
    assert "MLflow 3.16 or later" in found.line() and "labtrack import" in found.line()
    assert "\n" not in found.line()
    with pytest.raises(MlflowDataFound):
        mlflow_data.resolve_database(db)
    assert _state(tmp_path) == before  # no -wal, -shm, -journal or lock beside it, same bytes


def test_labtrack_databases_are_not_mlflow(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    _mlflow_like(db, "0001")
    assert mlflow_data.inspect_sqlite(db) is None
    assert mlflow_data.resolve_database(db) == db.resolve()
    empty = tmp_path / "new" / "mlruns.db"
    assert mlflow_data.resolve_database(empty) == empty.resolve()


def test_a_folder_of_mlflow_data_uses_labtrack_db_once_imported(tmp_path: Path) -> None:
    _mlflow_like(tmp_path / "mlflow.db", "acf3f17fdcc7")
    with pytest.raises(MlflowDataFound, match="mlflow.db is an MLflow database .MLflow 2.8-2.12"):
        mlflow_data.resolve_database(tmp_path / "mlruns.db")
    _mlflow_like(tmp_path / "labtrack.db", "0001")
    assert mlflow_data.resolve_database(tmp_path / "mlruns.db") == (tmp_path / "labtrack.db").resolve()


def test_file_store_is_recognised(tmp_path: Path) -> None:
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    found = mlflow_data.find_in_folder(tmp_path)
    assert found is not None and found.kind == "file_store"
    assert found.line().startswith(f"{tmp_path / 'mlruns'} is an MLflow file store")
    assert os.listdir(tmp_path) == ["mlruns"]


def test_client_discovery_stops_at_mlflow_data_here_but_not_at_an_old_store_above(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labtrack.client.discovery import find_database

    monkeypatch.delenv("LABTRACK_DATABASE", raising=False)
    (tmp_path / "mlruns" / "0").mkdir(parents=True)  # a file store from years ago, in ~
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    project = tmp_path / "project" / "sub"
    project.mkdir(parents=True)
    assert find_database(project) is None  # lt starts ./mlruns.db there, as before
    with pytest.raises(MlflowDataFound, match="is an MLflow file store"):
        find_database(tmp_path)
    _mlflow_like(tmp_path / "project" / "mlruns.db", "acf3f17fdcc7")  # MLflow's mlruns.db above: refused
    with pytest.raises(MlflowDataFound, match="MLflow 2.8-2.12"):
        find_database(project)
