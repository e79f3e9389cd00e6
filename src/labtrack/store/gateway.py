"""The AI gateway's objects made over REST (secrets, model definitions, endpoints), kept in the database.

Each is one row of ``gateway_objects``: its kind, id, name and a JSON body.  A
secret's body names where its provider key is (an environment variable or a
0600 file), never the key: the key never reaches the database.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, select

from labtrack.store import schema as s
from labtrack.store.dialect import upsert
from labtrack.store.tracking import TrackingStore

_g = s.gateway_objects


class GatewayStore:
    """Rows of ``gateway_objects`` through the tracking store's reader and one writer."""

    def __init__(self, tracking: TrackingStore) -> None:
        self.t = tracking

    def load(self) -> list[dict[str, Any]]:
        """Every object: ``{kind, id, name, body, created_at, last_updated_at}``, oldest first."""
        def op(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(_g).order_by(_g.c.created_at, _g.c.object_id)).all()
            return [{"kind": r.kind, "id": r.object_id, "name": r.name, "body": json.loads(r.body),
                     "created_at": r.created_at, "last_updated_at": r.last_updated_at} for r in rows]
        return self.t.read(op)

    def put(self, kind: str, object_id: str, name: str, body: dict[str, Any], created_at: int,
            last_updated_at: int) -> None:
        values = {"kind": kind, "object_id": object_id, "name": name, "body": json.dumps(body),
                  "created_at": created_at, "last_updated_at": last_updated_at}

        def op(conn: Connection) -> None:
            stmt = upsert(conn, _g).values(**values)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["kind", "object_id"],
                set_={"name": stmt.excluded.name, "body": stmt.excluded.body,
                      "last_updated_at": stmt.excluded.last_updated_at}))
        self.t.write(op)

    def delete(self, kind: str, object_id: str) -> None:
        def op(conn: Connection) -> None:
            conn.execute(delete(_g).where(_g.c.kind == kind, _g.c.object_id == object_id))
        self.t.write(op)
