"""Copy an MLflow source into a labtrack database, as that database's one writer.

The import holds the target's ownership record for as long as it writes, as
``labtrack sync`` does: a server started meanwhile refuses (naming the
import), and a running server makes the import refuse, so there is always
one writer.  It is idempotent and incremental: records keep their MLflow ids
(see ``store.mlflow_import``), a metric series is read from the source only
when it has more points there than here, and an artifact file is copied only
when it is missing or differs in size.  The summary's figures are row counts
after minus before, so a second import of unchanged data reports nothing new.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrack import mlflow_data, ownership
from labtrack._version import __version__
from labtrack.errors import DatabaseInUse, InvalidParameterValue, LabtrackError
from labtrack.imports.sql_source import local_artifact_folder

RECORD_NAME = ".mlflow-imports.json"  # in the target's artifact folder: what was imported, when
_POINTS_PER_WRITE = 400_000  # metric points per transaction (bounded memory, few commits)
_RUNS_PER_READ = 200


class ImportRefused(LabtrackError):
    """The target database is served by a running server (it must be the one writer)."""

    error_code = "RESOURCE_CONFLICT"


@dataclass
class ImportSummary:
    """What one import copied: new rows per kind, artifact files, and what it could not copy."""

    source: str
    target: str
    copied: dict[str, int] = field(default_factory=dict)
    artifact_files: int = 0
    artifact_bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{n:,} {k}" for k, n in self.copied.items() if n) or "nothing new"
        out = [f"labtrack: imported {self.source} into {self.target} in {self.seconds:.1f} s: {kinds}; "
               f"{self.artifact_files:,} artifact files ({self.artifact_bytes / 1e6:,.1f} MB)"]
        for what in self.skipped[:20]:
            out.append(f"labtrack: not imported: {what}")
        if len(self.skipped) > 20:
            out.append(f"labtrack: ... and {len(self.skipped) - 20} more not imported")
        return out


def open_source(spec: str, artifact_base: str | os.PathLike | None = None) -> Any:
    """The source ``spec`` names: a server URL, an SQLAlchemy URL, an SQLite file or a file store folder."""
    from labtrack.imports.sql_source import SqlSource

    if spec.startswith(("http://", "https://")):
        from labtrack.imports.rest_source import RestSource

        return RestSource(spec)
    if "://" in spec:
        return SqlSource(spec, artifact_base)
    path = Path(spec).expanduser().resolve()
    if path.is_dir():
        if mlflow_data.is_file_store(path):
            from labtrack.imports.file_store_source import FileStoreSource

            return FileStoreSource(path)
        found = mlflow_data.find_in_folder(path)
        if found is None:
            raise InvalidParameterValue(f"{path} holds no MLflow data (mlruns.db, mlflow.db or an mlruns "
                                        "file store)")
        return open_source(str(found.path), artifact_base)
    if not path.exists():
        raise InvalidParameterValue(f"{path} does not exist")
    if mlflow_data.inspect_sqlite(path) is None:
        raise InvalidParameterValue(f"{path} is not an MLflow database")
    return SqlSource(f"sqlite:///{path}", artifact_base)


def default_target(source: Any) -> Path:
    """Where an import writes by default: ``labtrack.db`` beside a local source (the layout of
    ``mlflow_data``), else the working directory's database."""
    local = getattr(source, "path", None)
    if local is not None:
        return mlflow_data.labtrack_database(Path(local).parent)
    cwd = Path.cwd()
    if mlflow_data.find_in_folder(cwd) is not None:
        return mlflow_data.labtrack_database(cwd)
    return cwd.resolve() / mlflow_data.DEFAULT_DB


def imported_sources(db: str | os.PathLike) -> dict[str, Any]:
    """The record of earlier imports into ``db``: source -> {revision, imported_ms, copied}."""
    try:
        return json.loads((mlflow_data.artifacts_folder(db) / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def owning(db: Path) -> Iterator[None]:
    """Hold ``db``'s ownership record, or refuse while a server owns it."""
    owner = ownership.read_owner(db)
    if owner is not None:
        raise ImportRefused(f"{db} is served by {owner.describe()}; stop that server, import, "
                            "then start it again (the import must be the database's one writer)")
    record = ownership.OwnerRecord(host=socket.gethostname(), pid=os.getpid(), database=str(db),
                                   version=__version__)
    try:
        ownership.claim(db, record)
    except DatabaseInUse as e:
        raise ImportRefused(e.message) from e
    try:
        yield
    finally:
        ownership.release(db)


def import_mlflow(source: Any, db: str | os.PathLike, *, artifacts: str | os.PathLike | None = None,
                  progress: Callable[[int], Any] | None = None, owned: bool = False) -> ImportSummary:
    """Copy everything ``source`` holds into the SQLite database ``db``; return the summary.

    ``progress(total_runs)`` may return a progress bar (``click.progressbar``).
    ``owned``: the caller already holds ``db``'s ownership record (the JupyterLab launcher).
    """
    db = Path(db).resolve()
    if mlflow_data.inspect_sqlite(db) is not None:
        raise InvalidParameterValue(f"{db} is an MLflow database; import into a labtrack database")
    dest = Path(artifacts).resolve() if artifacts else mlflow_data.artifacts_folder(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    experiments = source.experiments()  # an unreachable or unreadable source fails before anything is written
    holder = contextlib.nullcontext() if owned else owning(db)
    with holder:
        from labtrack.store.tracking import TrackingStore

        store = TrackingStore(f"sqlite:///{db}", default_artifact_root="mlflow-artifacts:/")
        try:
            summary = _copy(source, experiments, store, dest, progress)
        finally:
            store.close()
    summary.target = str(db)
    _remember(db, dest, source, summary)
    return summary


def _copy(source: Any, experiments: list[Any], store: Any, dest: Path,
          progress: Callable[[int], Any] | None) -> ImportSummary:
    from labtrack.store import mlflow_import as mi

    started = time.monotonic()
    summary = ImportSummary(source=source.describe(), target="")
    before = store.read(mi.counts)
    root = store.default_artifact_root
    exp_ids = store.write(lambda conn: mi.experiments(conn, experiments, root))
    locations = store.read(mi.experiment_locations)
    have_points = store.read(mi.metric_counts)
    src_points: dict[str, dict[str, int]] = {}
    for (run_id, key), n in source.metric_counts().items():
        src_points.setdefault(run_id, {})[key] = n
    run_ids = source.run_ids()
    prefixes: list[tuple[Path | str, str]] = []  # MLflow's artifact folder (or URI) -> labtrack's URI
    copier = _ArtifactCopier(dest, summary)
    bar = progress(len(run_ids)) if progress else contextlib.nullcontext()
    with bar as b:
        for i in range(0, len(run_ids), _RUNS_PER_READ):
            records = []
            for rec in source.runs(run_ids[i:i + _RUNS_PER_READ]):
                if rec.experiment_id in exp_ids:
                    records.append(rec)
                else:  # an experiment the source did not list (another workspace's)
                    summary.skipped.append(f"run {rec.run_id} (its experiment {rec.experiment_id} is not readable)")
            uris = store.write(lambda conn: mi.runs(conn, records, exp_ids, locations))
            pending: list[tuple[str, list[Any]]] = []
            points = 0
            for rec in records:
                grown = [k for k, n in src_points.get(rec.run_id, {}).items()
                         if have_points.get((rec.run_id, k), 0) < n]
                if grown:
                    series = source.metrics(rec.run_id, grown)
                    pending.append((rec.run_id, series))
                    points += sum(len(x) for x in series)
                if points >= _POINTS_PER_WRITE:
                    _write_metrics(store, pending)
                    pending, points = [], 0
                copier.copy_from(source, rec.artifact_uri, uris[rec.run_id], prefixes)
                if b is not None:
                    b.update(1)
            _write_metrics(store, pending)
    models = [m for m in source.logged_models() if m.experiment_id in exp_ids]
    if models:
        locs = store.write(lambda conn: mi.logged_models(conn, models, exp_ids, locations))
        for m in models:
            copier.copy_from(source, m.artifact_location, locs[m.model_id], prefixes)
    registered = source.registered_models()
    if registered:
        rewrite = _rewriter(prefixes, source)
        summary.skipped += store.write(lambda conn: mi.registered_models(conn, registered, rewrite, root))
    if hasattr(source, "traces"):
        have = store.read(mi.trace_ids)
        for batch in source.traces(list(exp_ids), have, summary.skipped.append):
            kept = [t for t in batch if t.experiment_id in exp_ids]
            summary.skipped += store.write(lambda conn: mi.traces(conn, kept, exp_ids))
    if hasattr(source, "eval_datasets"):  # MLflow's file store has none
        datasets = source.eval_datasets()
        if datasets:
            summary.skipped += store.write(lambda conn: mi.eval_datasets(conn, datasets, exp_ids))
    if hasattr(source, "scorers"):  # MLflow's file store has none
        scorers = [v for v in source.scorers(list(exp_ids)) if v.experiment_id in exp_ids]
        if scorers:
            summary.skipped += store.write(lambda conn: mi.scorers(conn, scorers, exp_ids))
    if hasattr(source, "not_imported"):  # first: these lines are never cut off by a long list of skipped runs
        summary.skipped[:0] = source.not_imported()
    after = store.read(mi.counts)
    summary.copied = {k: after[k] - before[k] for k in after}
    summary.seconds = time.monotonic() - started
    return summary


def _write_metrics(store: Any, pending: list[tuple[str, list[Any]]]) -> None:
    from labtrack.store import mlflow_import as mi

    if not pending:
        return

    def op(conn: Any) -> None:
        for run_id, series in pending:
            mi.metrics(conn, run_id, series)
    store.write(op)


def _rewriter(prefixes: list[tuple[Path | str, str]], source: Any) -> Callable[[str], str]:
    """Model-version sources that point into MLflow's artifacts, pointed into labtrack's.

    A prefix is a local folder (SQL and file stores: compared as paths, so
    ``file:///x`` and ``/x`` agree) or an artifact URI (a server's, compared by segments).
    """
    ordered = sorted(prefixes, key=lambda p: len(str(p[0])), reverse=True)

    def rewrite(uri: str) -> str:
        if uri.startswith(("models:/", "runs:/")):
            return uri  # resolved through the imported runs and logged models
        local = source.artifact_folder(uri)
        for old, new in ordered:
            if isinstance(old, str):
                if uri == old or uri.startswith(old.rstrip("/") + "/"):
                    return new.rstrip("/") + uri[len(old.rstrip("/")):]
            elif local is not None and (local == old or old in local.parents):
                rest = local.relative_to(old).as_posix()
                return new if rest == "." else new.rstrip("/") + "/" + rest
        return uri
    return rewrite


class _ArtifactCopier:
    """Copies a folder of MLflow artifacts to where labtrack serves a URI, file by file, once."""

    def __init__(self, dest: Path, summary: ImportSummary) -> None:
        self.dest = dest
        self.summary = summary

    def target(self, uri: str) -> Path | None:
        return local_artifact_folder(uri, self.dest)

    def copy_from(self, source: Any, old_uri: str, uri: str, prefixes: list[tuple[Path | str, str]]) -> None:
        """Copy the artifacts at the source's ``old_uri`` to labtrack's ``uri``; remember the pair."""
        old = source.artifact_folder(old_uri)
        if old is not None:
            prefixes.append((old, uri))
            self.copy(old, uri)
        elif hasattr(source, "copy_artifacts") and old_uri:
            prefixes.append((old_uri, uri))
            new = self.target(uri)
            if new is not None:
                source.copy_artifacts(old_uri, new, self._counted)

    def _counted(self, _path: Path, size: int) -> None:
        self.summary.artifact_files += 1
        self.summary.artifact_bytes += size

    def copy(self, old: Path, uri: str) -> None:
        new = self.target(uri)
        if new is None or not old.is_dir():
            return
        for folder, dirs, files in os.walk(old):
            dirs.sort()
            rel = Path(folder).relative_to(old)
            for name in files:
                src = Path(folder) / name
                if src.is_symlink():
                    continue  # a link could point anywhere; labtrack's artifacts are files
                dst = new / rel / name
                try:
                    size = src.stat().st_size
                    if dst.exists() and dst.stat().st_size == size:
                        continue
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    tmp = dst.with_name(f".labtrack-import-{name[:40]}.tmp")
                    shutil.copyfile(src, tmp)
                    os.replace(tmp, dst)
                except OSError as e:
                    self.summary.skipped.append(f"artifact {src} ({e.strerror or e})")
                    continue
                self.summary.artifact_files += 1
                self.summary.artifact_bytes += size


def _remember(db: Path, dest: Path, source: Any, summary: ImportSummary) -> None:
    record_path = dest / RECORD_NAME
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    record[source.label] = {"revision": getattr(source, "revision", None), "imported_ms": int(time.time() * 1000),
                            "copied": summary.copied}
    dest.mkdir(parents=True, exist_ok=True)
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, record_path)


__all__ = ["ImportRefused", "ImportSummary", "default_target", "import_mlflow", "imported_sources",
           "open_source", "owning"]
