"""``labtrack sync``: ingest a database's spool files without running a server.

It takes the database's ownership record for the time it runs, exactly as a
server does, so the one-writer rule holds: a server started meanwhile refuses
(naming this process), and a live server makes ``sync`` refuse, because that
server ingests the spool itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labtrack import ownership
from labtrack._version import __version__
from labtrack.errors import DatabaseInUse
from labtrack.spool import spool_folder, waiting_files


class SyncRefused(Exception):
    """Another process (a server) owns the database."""


def sync_database(db: Path, progress: Callable[[int], Any] | None = None) -> Any:
    """Apply every waiting spool file of ``db``; return the IngestReport.

    ``progress(total_bytes)`` may return a progress bar (a context manager with
    ``update(n)``), as ``click.progressbar`` does.
    """
    from labtrack.store.ingest import IngestReport, SpoolIngest

    owner = ownership.read_owner(db)
    if owner is not None:
        raise SyncRefused(f"{db} is served by {owner.describe()}, which ingests its spool files "
                          "itself; nothing to do")
    folder = spool_folder(db)
    if not waiting_files(folder):
        return IngestReport()
    record = ownership.OwnerRecord(host=socket.gethostname(), pid=os.getpid(), database=str(db),
                                   version=__version__)
    try:
        ownership.claim(db, record)
    except DatabaseInUse as e:
        raise SyncRefused(f"{e.message}; that server ingests its spool files itself") from e
    try:
        from labtrack import file_modes
        from labtrack.store.tracking import TrackingStore

        file_modes.apply(db.parent)  # the database and its WAL: never readable by others
        file_modes.create_file(db)
        file_modes.tighten(file_modes.data_paths(db))

        store = TrackingStore(f"sqlite:///{db}")
        try:
            ingest = SpoolIngest(store, folder)
            bar = progress(ingest.pending_bytes()) if progress else contextlib.nullcontext()
            with bar as b:
                if b is not None:
                    ingest.on_progress = b.update
                return ingest.run_all()
        finally:
            store.close()
    finally:
        ownership.release(db)
