"""``POST /api/2.0/labtrack/gc``: the server that owns a database collects its garbage.

``labtrack gc`` asks here when a server owns the database (the one-writer
rule: only the owner writes), and runs ``garbage_collect`` itself, holding
the ownership record, when none does.  On a team server only an admin may.
"""

from __future__ import annotations

from typing import Any

from labtrack.server.auth import PermissionDenied
from labtrack.server.args import Args
from labtrack.server.base import ServerContext


def garbage_collect(store: Any, root: Any, *, older_than_ms: int = 0,
                    experiment_ids: list[str] | None = None,
                    run_ids: list[str] | None = None) -> dict[str, Any]:
    """Remove deleted runs/experiments/models, their artifacts, and reclaim the file's space.

    The rows go in one write through ``store``'s writer; then the artifact
    folders under ``root``; then VACUUM (SQLite).  Returns the counts and the
    database's size before and after, in bytes.
    """
    from labtrack.artifacts.gc import remove_artifacts
    from labtrack.store.gc import collect, database_bytes, vacuum

    before = database_bytes(store)
    removed = store.write(lambda conn: collect(conn, older_than_ms, experiment_ids, run_ids))
    files = remove_artifacts(root, removed.artifact_uris)
    vacuumed = vacuum(store) if (removed.runs or removed.experiments or removed.logged_models) else False
    return {
        "runs": len(removed.runs), "experiments": len(removed.experiments),
        "logged_models": len(removed.logged_models), "run_ids": removed.runs,
        "experiment_ids": removed.experiments, "artifact_folders": files.folders,
        "artifact_bytes": files.bytes, "artifacts_left": files.left, "vacuumed": vacuumed,
        "database_bytes_before": before, "database_bytes_after": database_bytes(store),
    }


def _ids(a: Args, name: str) -> list[str] | None:
    value = a.data.get(name)
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()] or None


def gc(ctx: ServerContext, a: Args) -> dict[str, Any]:
    user = getattr(a, "user", None)
    if user is not None and not getattr(user, "is_admin", False):
        raise PermissionDenied("Only an admin may remove deleted runs permanently (gc).")
    root = ctx.artifacts
    if root is None:  # --no-serve-artifacts: runs write straight into the destination folder
        from labtrack.artifacts.roots import open_root

        root = open_root(ctx.settings.artifacts_destination)
    return garbage_collect(ctx.store, root, older_than_ms=a.int("older_than_ms") or 0,
                           experiment_ids=_ids(a, "experiment_ids"), run_ids=_ids(a, "run_ids"))


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("gc", {"POST": gc}),
]
