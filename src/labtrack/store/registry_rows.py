"""Reading registry rows into entities, a page at a time.

Tags, aliases and latest versions of a whole page are fetched with a few
``IN`` queries (chunked, to stay under SQLite's bound-parameter limit), never
one query per model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, select

from labtrack.errors import ResourceDoesNotExist
from labtrack.registry_entities import DELETED_STAGE, STAGES, ModelVersion, RegisteredModel
from labtrack.store import schema as s

_CHUNK = 500
_mv, _mvt = s.model_versions, s.model_version_tags
_rm, _rmt, _alias = s.registered_models, s.registered_model_tags, s.registered_model_aliases


def _chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    items = list(dict.fromkeys(items))
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def model_row(conn: Connection, name: str) -> Any:
    """The registered model's row, or RESOURCE_DOES_NOT_EXIST."""
    row = conn.execute(select(_rm).where(_rm.c.name == name)).first()
    if row is None:
        raise ResourceDoesNotExist(f"Registered Model with name={name} not found")
    return row


def version_row(conn: Connection, name: str, version: int) -> Any:
    """A live (not deleted) version's row, or RESOURCE_DOES_NOT_EXIST."""
    row = conn.execute(select(_mv).where(
        _mv.c.name == name, _mv.c.version == version, _mv.c.current_stage != DELETED_STAGE)).first()
    if row is None:
        raise ResourceDoesNotExist(f"Model Version (name={name}, version={version}) not found")
    return row


def versions_from_rows(conn: Connection, rows: Sequence[Any]) -> list[ModelVersion]:
    """Entities for ``rows`` of model_versions, in the same order, with tags and aliases."""
    keys = {(r.name, r.version) for r in rows}
    tags: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    aliases: dict[tuple[str, int], list[str]] = defaultdict(list)
    for names in _chunks([r.name for r in rows]):
        for t in conn.execute(select(_mvt).where(_mvt.c.name.in_(names)).order_by(_mvt.c.key)):
            if (t.name, t.version) in keys:
                tags[(t.name, t.version)][t.key] = t.value
        for a in conn.execute(select(_alias).where(_alias.c.name.in_(names)).order_by(_alias.c.alias)):
            aliases[(a.name, a.version)].append(a.alias)
    return [
        ModelVersion(
            name=r.name, version=str(r.version), creation_timestamp=r.creation_time,
            last_updated_timestamp=r.last_updated_time, source=r.source,
            current_stage=r.current_stage, status=r.status, description=r.description,
            user_id=r.user_id, run_id=r.run_id, run_link=r.run_link,
            status_message=r.status_message, model_id=r.model_id,
            tags=tags[(r.name, r.version)], aliases=aliases[(r.name, r.version)])
        for r in rows
    ]


def latest_rows(conn: Connection, names: Sequence[str]) -> list[Any]:
    """The newest live version in each stage of each model, ordered by name then stage."""
    out: list[Any] = []
    for chunk in _chunks(names):
        newest = (select(_mv.c.name, _mv.c.current_stage, func.max(_mv.c.version).label("version"))
                  .where(_mv.c.name.in_(chunk), _mv.c.current_stage != DELETED_STAGE)
                  .group_by(_mv.c.name, _mv.c.current_stage).subquery())
        out += conn.execute(select(_mv).join(newest, and_(
            _mv.c.name == newest.c.name, _mv.c.version == newest.c.version))).all()
    order = {stage: i for i, stage in enumerate(STAGES)}
    return sorted(out, key=lambda r: (r.name, order.get(r.current_stage, len(order))))


def models_from_rows(conn: Connection, rows: Sequence[Any]) -> list[RegisteredModel]:
    """Entities for ``rows`` of registered_models, in the same order."""
    names = [r.name for r in rows]
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    aliases: dict[str, dict[str, str]] = defaultdict(dict)
    for chunk in _chunks(names):
        for t in conn.execute(select(_rmt).where(_rmt.c.name.in_(chunk)).order_by(_rmt.c.key)):
            tags[t.name][t.key] = t.value
        for a in conn.execute(select(_alias).where(_alias.c.name.in_(chunk)).order_by(_alias.c.alias)):
            aliases[a.name][a.alias] = str(a.version)
    latest: dict[str, list[ModelVersion]] = defaultdict(list)
    for mv in versions_from_rows(conn, latest_rows(conn, names)):
        latest[mv.name].append(mv)
    return [
        RegisteredModel(
            name=r.name, creation_timestamp=r.creation_time, last_updated_timestamp=r.last_updated_time,
            description=r.description, user_id=r.user_id, latest_versions=latest[r.name],
            tags=tags[r.name], aliases=aliases[r.name])
        for r in rows
    ]
