"""Item 9 of issue #19: the database, its WAL, the artifact root and the spool are never open to others.

Even under ``umask 000``.  In a setgid (group-shared) project folder the group
keeps what the umask gives it; elsewhere it gets nothing either.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labtrack.spool import SpoolWriter, spool_folder
from tests.servers import start_server


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _exercise(folder: Path) -> dict[Path, int]:
    """A server on ``folder`` under umask 000: logs, uploads, and a client spools; the modes of
    what it made, read while the server runs (the WAL goes at shutdown)."""
    with _umask(0):
        srv = start_server(f"sqlite:///{folder / 'mlruns.db'}", folder)
        try:
            exp = srv.api("POST", "experiments/create", {"name": "modes"}).json()["experiment_id"]
            run = srv.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
            assert srv.api("POST", "runs/log-metric", {"run_id": run, "key": "m", "value": 1,
                                                      "timestamp": 1, "step": 0}).status_code == 200
            put = srv.session.put(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/a/b.txt", data=b"x",
                                  timeout=30)
            assert put.status_code == 200, put.text
            writer = SpoolWriter(spool_folder(folder / "mlruns.db"))
            writer.append([{"op": "set_experiment", "experiment_name": "spooled"}])
            writer.close()
            made = [folder / "mlruns.db", folder / "mlruns", folder / "mlruns" / exp,
                    folder / "mlruns" / exp / "a" / "b.txt", spool_folder(folder / "mlruns.db"),
                    spool_folder(folder / "mlruns.db").parent, *spool_folder(folder / "mlruns.db").glob("*.jsonl")]
            wal = folder / "mlruns.db-wal"
            if wal.exists():
                made += [wal, folder / "mlruns.db-shm"]
            return {p: _mode(p) for p in made}
        finally:
            srv.stop()


def test_nothing_is_open_to_others_even_under_umask_000(tmp_path: Path) -> None:
    made = _exercise(tmp_path)
    assert len(made) >= 7
    for p, mode in made.items():
        assert mode & 0o077 == 0, f"{p.relative_to(tmp_path)} is {oct(mode)}"


def test_setgid_folder_shares_with_its_group_only(tmp_path: Path) -> None:
    shared = tmp_path / "project"
    shared.mkdir()
    os.chmod(shared, 0o2770)
    made = _exercise(shared)
    for p, mode in made.items():
        assert mode & 0o007 == 0, f"{p.relative_to(shared)} is {oct(mode)}"
    assert made[shared / "mlruns.db"] & 0o060 == 0o060  # the group may read and write the shared database


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    db.touch()
    os.chmod(db, 0o666)
    (tmp_path / "mlruns").mkdir()
    os.chmod(tmp_path / "mlruns", 0o777)
    srv = start_server(f"sqlite:///{db}", tmp_path)
    srv.stop()
    assert _mode(db) & 0o007 == 0
    assert _mode(tmp_path / "mlruns") & 0o007 == 0

