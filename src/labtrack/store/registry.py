"""The model registry: registered models, versions, stages, aliases, tags (reference §2.4).

Lives beside the tracking store on the same database and the same single
writer.  Rules the mlflow client relies on:

* versions are numbered 1, 2, ... per model and never reused: a deleted
  version keeps a redacted row in the stage ``Deleted_Internal``, as MLflow's
  own store does, and every read skips it;
* a new version is READY in stage "None" at once (else the client polls);
* stages match case-insensitively; ``archive_existing_versions`` archives the
  other holders of the target stage;
* ``latest_versions`` is the newest live version of each stage;
* an alias moves when set again and disappears with its version;
* a version's ``source`` must lie inside this server's artifact store
  (:mod:`labtrack.store.model_sources`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from labtrack.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from labtrack.registry_entities import ACTIVE_STAGES, DELETED_STAGE, STAGES, ModelVersion, RegisteredModel
from labtrack.store import schema as s
from labtrack.store import search
from labtrack.store.dialect import upsert
from labtrack.store.model_sources import PROMPT_TAG, find_version, resolve_source
from labtrack.store.prompts import registry_filter
from labtrack.store.registry_rows import (
    latest_rows,
    model_row,
    models_from_rows,
    version_row,
    versions_from_rows,
)
from labtrack.store.registry_rules import (
    canonical_stage,
    check_alias,
    check_description,
    check_model_name,
    check_tag,
    check_tags,
    parse_version,
)
from labtrack.store.tracking import TrackingStore, now_ms
from labtrack.store.validation import LIMITS, check_key, check_max_results

_rm, _rmt, _alias = s.registered_models, s.registered_model_tags, s.registered_model_aliases
_mv, _mvt = s.model_versions, s.model_version_tags
_DOWNLOAD_HOPS = 16  # models:/<name>/<n> sources may chain; a longer chain is refused


class RegistryStore:
    """Registered models and model versions; wraps a TrackingStore's reader and writer."""

    def __init__(self, tracking: TrackingStore) -> None:
        self.t = tracking

    # -- registered models ---------------------------------------------------

    def create_registered_model(self, name: Any, tags: dict[str, str] | None = None,
                                description: Any = None, user_id: str | None = None) -> RegisteredModel:
        """Create a model; an existing name is RESOURCE_ALREADY_EXISTS (``register_model`` relies on it)."""
        name = check_model_name(name)
        tags = check_tags(tags)
        description = check_description(description)

        def op(conn: Connection) -> RegisteredModel:
            if conn.execute(select(_rm.c.name).where(_rm.c.name == name)).first() is not None:
                raise ResourceAlreadyExists(f"Registered Model (name={name}) already exists.")
            t = now_ms()
            conn.execute(insert(_rm).values(name=name, creation_time=t, last_updated_time=t,
                                            description=description, user_id=user_id or None))
            if tags:
                conn.execute(insert(_rmt), [{"name": name, "key": k, "value": v} for k, v in tags.items()])
            return _model(conn, name)
        return self.t.write(op)

    def get_registered_model(self, name: Any) -> RegisteredModel:
        name = check_model_name(name)
        return self.t.read(lambda conn: _model(conn, name))

    def update_registered_model(self, name: Any, description: Any = None) -> RegisteredModel:
        """Set the description (None leaves it as it is)."""
        name = check_model_name(name)
        description = check_description(description)

        def op(conn: Connection) -> RegisteredModel:
            model_row(conn, name)
            values: dict[str, Any] = {"last_updated_time": now_ms()}
            if description is not None:
                values["description"] = description
            conn.execute(update(_rm).where(_rm.c.name == name).values(**values))
            return _model(conn, name)
        return self.t.write(op)

    def rename_registered_model(self, name: Any, new_name: Any) -> RegisteredModel:
        """Rename a model; its versions, tags and aliases follow it."""
        name = check_model_name(name)
        new_name = check_model_name(new_name, "new_name")

        def op(conn: Connection) -> RegisteredModel:
            model_row(conn, name)
            if new_name == name:
                return _model(conn, name)
            if conn.execute(select(_rm.c.name).where(_rm.c.name == new_name)).first() is not None:
                raise ResourceAlreadyExists(f"Registered Model (name={new_name}) already exists.")
            t = now_ms()
            # Versions, aliases and model tags follow through ON UPDATE CASCADE;
            # version tags have no foreign key and move by hand.
            conn.execute(update(_mvt).where(_mvt.c.name == name).values(name=new_name))
            conn.execute(update(_rm).where(_rm.c.name == name).values(name=new_name, last_updated_time=t))
            conn.execute(update(_mv).where(_mv.c.name == new_name).values(last_updated_time=t))
            return _model(conn, new_name)
        return self.t.write(op)

    def delete_registered_model(self, name: Any) -> None:
        """Delete a model with all its versions, tags and aliases."""
        name = check_model_name(name)

        def op(conn: Connection) -> None:
            model_row(conn, name)
            for table in (_mvt, _alias, _rmt, _mv, _rm):
                conn.execute(delete(table).where(table.c.name == name))
        self.t.write(op)

    def search_registered_models(self, filter_string: str | None = None, max_results: Any = None,
                                 order_by: Sequence[str] | None = None,
                                 page_token: str | None = None) -> tuple[list[RegisteredModel], str | None]:
        """One page of models matching the filter; returns (models, next_page_token or None)."""
        limit = check_max_results(max_results, 100, LIMITS["registered_models_max_results"])
        offset = search.decode_page_token(page_token)
        conds = search.registered_model_conditions(registry_filter(filter_string))
        order = search.registered_model_order_by(list(order_by or []))

        def op(conn: Connection) -> tuple[list[RegisteredModel], str | None]:
            rows = conn.execute(select(_rm).where(*conds).order_by(*order)
                                .offset(offset).limit(limit + 1)).all()
            token = search.encode_page_token(offset + limit) if len(rows) > limit else None
            return models_from_rows(conn, rows[:limit]), token
        return self.t.read(op)

    def get_latest_versions(self, name: Any, stages: Sequence[Any] | None = None) -> list[ModelVersion]:
        """The newest version in each of ``stages`` (all four when empty)."""
        name = check_model_name(name)
        wanted = {canonical_stage(st) for st in stages or []} or set(STAGES)

        def op(conn: Connection) -> list[ModelVersion]:
            model_row(conn, name)
            return versions_from_rows(conn, [r for r in latest_rows(conn, [name])
                                             if r.current_stage in wanted])
        return self.t.read(op)

    def set_registered_model_tag(self, name: Any, key: Any, value: Any) -> None:
        name = check_model_name(name)
        key, value = check_tag(key, value)

        def op(conn: Connection) -> None:
            model_row(conn, name)
            stmt = upsert(conn, _rmt).values(name=name, key=key, value=value)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name", "key"],
                                                    set_={"value": stmt.excluded.value}))
        self.t.write(op)

    def delete_registered_model_tag(self, name: Any, key: Any) -> None:
        """Delete a tag; a tag that is not there is fine (MLflow's rule; retries stay harmless)."""
        name = check_model_name(name)
        key = check_key("tag", key, LIMITS["registry_tag_key"])

        def op(conn: Connection) -> None:
            model_row(conn, name)
            conn.execute(delete(_rmt).where(_rmt.c.name == name, _rmt.c.key == key))
        self.t.write(op)

    # -- model versions --------------------------------------------------------

    def create_model_version(self, name: Any, source: Any, run_id: str | None = None,
                             tags: dict[str, str] | None = None, run_link: str | None = None,
                             description: Any = None, model_id: str | None = None,
                             user_id: str | None = None) -> ModelVersion:
        """Register ``source`` as the model's next version: READY, stage "None".

        The source is confined to this server's artifact store; anything else
        is INVALID_PARAMETER_VALUE and nothing is written.
        """
        name = check_model_name(name)
        tags = check_tags(tags)
        description = check_description(description)
        for field, value in (("run_id", run_id), ("run_link", run_link), ("model_id", model_id)):
            if value is not None and not isinstance(value, str):
                raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{field}': expected a string")
        root = self.t.default_artifact_root
        is_prompt = tags.get(PROMPT_TAG, "false").lower() == "true"

        def op(conn: Connection) -> ModelVersion:
            model_row(conn, name)
            src = resolve_source(conn, source, run_id or None, model_id or None, root, is_prompt=is_prompt)
            t = now_ms()
            # Deleted versions keep their rows, so max() never hands a number out twice.  Several
            # server processes (--workers on PostgreSQL) take the next number under a lock on the
            # model's row (SQLite: one writer already; it has no FOR UPDATE).
            conn.execute(select(_rm.c.name).where(_rm.c.name == name).with_for_update())
            version = (conn.execute(select(func.max(_mv.c.version)).where(_mv.c.name == name)).scalar() or 0) + 1
            conn.execute(insert(_mv).values(
                name=name, version=version, creation_time=t, last_updated_time=t,
                description=description, user_id=user_id or None, current_stage="None",
                source=src.source, run_id=src.run_id, run_link=run_link or None, status="READY",
                model_id=src.model_id))
            if tags:
                conn.execute(insert(_mvt), [{"name": name, "version": version, "key": k, "value": v}
                                            for k, v in tags.items()])
            conn.execute(update(_rm).where(_rm.c.name == name).values(last_updated_time=t))
            return _version(conn, name, version)
        return self.t.write(op)

    def get_model_version(self, name: Any, version: Any) -> ModelVersion:
        name, n = check_model_name(name), parse_version(version)
        return self.t.read(lambda conn: _version(conn, name, n))

    def update_model_version(self, name: Any, version: Any, description: Any = None) -> ModelVersion:
        """Set the description (None leaves it as it is)."""
        name, n = check_model_name(name), parse_version(version)
        description = check_description(description)

        def op(conn: Connection) -> ModelVersion:
            version_row(conn, name, n)
            values: dict[str, Any] = {"last_updated_time": now_ms()}
            if description is not None:
                values["description"] = description
            conn.execute(update(_mv).where(_mv.c.name == name, _mv.c.version == n).values(**values))
            return _version(conn, name, n)
        return self.t.write(op)

    def transition_model_version_stage(self, name: Any, version: Any, stage: Any,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        """Move a version to ``stage``; optionally archive the stage's other versions."""
        name, n = check_model_name(name), parse_version(version)
        target = canonical_stage(stage)
        if archive_existing_versions and target not in ACTIVE_STAGES:
            raise InvalidParameterValue(
                f"Model version transition cannot archive existing model versions because '{stage}' "
                f"is not an Active stage. Valid stages are {list(ACTIVE_STAGES)}")

        def op(conn: Connection) -> ModelVersion:
            version_row(conn, name, n)
            t = now_ms()
            if archive_existing_versions:
                conn.execute(update(_mv).where(_mv.c.name == name, _mv.c.version != n,
                                               _mv.c.current_stage == target)
                             .values(current_stage="Archived", last_updated_time=t))
            conn.execute(update(_mv).where(_mv.c.name == name, _mv.c.version == n)
                         .values(current_stage=target, last_updated_time=t))
            conn.execute(update(_rm).where(_rm.c.name == name).values(last_updated_time=t))
            return _version(conn, name, n)
        return self.t.write(op)

    def delete_model_version(self, name: Any, version: Any) -> None:
        """Delete a version: its aliases and tags go; a redacted row keeps its number taken."""
        name, n = check_model_name(name), parse_version(version)

        def op(conn: Connection) -> None:
            version_row(conn, name, n)
            t = now_ms()
            conn.execute(delete(_alias).where(_alias.c.name == name, _alias.c.version == n))
            conn.execute(delete(_mvt).where(_mvt.c.name == name, _mvt.c.version == n))
            conn.execute(update(_mv).where(_mv.c.name == name, _mv.c.version == n).values(
                current_stage=DELETED_STAGE, last_updated_time=t, description=None, user_id=None,
                source="REDACTED-SOURCE-PATH", run_id=None, run_link=None, status_message=None,
                model_id=None))
            conn.execute(update(_rm).where(_rm.c.name == name).values(last_updated_time=t))
        self.t.write(op)

    def search_model_versions(self, filter_string: str | None = None, max_results: Any = None,
                              order_by: Sequence[str] | None = None,
                              page_token: str | None = None) -> tuple[list[ModelVersion], str | None]:
        """One page of live versions matching the filter; returns (versions, next_page_token or None)."""
        limit = check_max_results(max_results, 10000, LIMITS["model_versions_max_results"])
        offset = search.decode_page_token(page_token)
        conds = [_mv.c.current_stage != DELETED_STAGE,
                 *search.model_version_conditions(registry_filter(filter_string))]
        order = search.model_version_order_by(list(order_by or []))

        def op(conn: Connection) -> tuple[list[ModelVersion], str | None]:
            rows = conn.execute(select(_mv).where(*conds).order_by(*order)
                                .offset(offset).limit(limit + 1)).all()
            token = search.encode_page_token(offset + limit) if len(rows) > limit else None
            return versions_from_rows(conn, rows[:limit]), token
        return self.t.read(op)

    def get_model_version_download_uri(self, name: Any, version: Any) -> str:
        """Where the version's files are: a ``models:/<model_id>`` source gives the logged
        model's artifact location, ``models:/<name>/<n>`` that version's; others are as stored."""
        name, n = check_model_name(name), parse_version(version)

        def op(conn: Connection) -> str:
            row = version_row(conn, name, n)
            for _ in range(_DOWNLOAD_HOPS):
                source = row.source
                if not source.startswith("models:/"):
                    return source
                ref = source[len("models:/"):]
                if "/" not in ref:  # a logged model's id
                    lm = conn.execute(select(s.logged_models.c.artifact_location).where(
                        s.logged_models.c.model_id == ref)).first()
                    return lm.artifact_location if lm is not None else source
                target, _, number = ref.partition("/")
                row = find_version(conn, target, number)
                if row is None:
                    raise ResourceDoesNotExist(f"The source {source!r} of this version no longer exists.")
            raise InvalidParameterValue(f"The source of model {name!r} version {n} is a chain of "
                                        f"more than {_DOWNLOAD_HOPS} model versions.")
        return self.t.read(op)

    def set_model_version_tag(self, name: Any, version: Any, key: Any, value: Any) -> None:
        name, n = check_model_name(name), parse_version(version)
        key, value = check_tag(key, value)

        def op(conn: Connection) -> None:
            version_row(conn, name, n)
            stmt = upsert(conn, _mvt).values(name=name, version=n, key=key, value=value)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name", "version", "key"],
                                                    set_={"value": stmt.excluded.value}))
        self.t.write(op)

    def delete_model_version_tag(self, name: Any, version: Any, key: Any) -> None:
        """Delete a tag; a tag that is not there is fine (MLflow's rule)."""
        name, n = check_model_name(name), parse_version(version)
        key = check_key("tag", key, LIMITS["registry_tag_key"])

        def op(conn: Connection) -> None:
            version_row(conn, name, n)
            conn.execute(delete(_mvt).where(_mvt.c.name == name, _mvt.c.version == n, _mvt.c.key == key))
        self.t.write(op)

    # -- aliases ---------------------------------------------------------------

    def set_registered_model_alias(self, name: Any, alias: Any, version: Any) -> None:
        """Point ``alias`` at a version; an alias already set moves."""
        name, n = check_model_name(name), parse_version(version)
        alias = check_alias(alias)

        def op(conn: Connection) -> None:
            version_row(conn, name, n)
            stmt = upsert(conn, _alias).values(name=name, alias=alias, version=n)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name", "alias"],
                                                    set_={"version": stmt.excluded.version}))
        self.t.write(op)

    def delete_registered_model_alias(self, name: Any, alias: Any) -> None:
        """Remove an alias; one that is not set is fine (MLflow's rule)."""
        name = check_model_name(name)
        alias = check_alias(alias, reserved_ok=True)

        def op(conn: Connection) -> None:
            model_row(conn, name)
            conn.execute(delete(_alias).where(_alias.c.name == name, _alias.c.alias == alias))
        self.t.write(op)

    def get_model_version_by_alias(self, name: Any, alias: Any) -> ModelVersion:
        """The version an alias points at; ``latest`` is the highest live version."""
        name = check_model_name(name)
        alias = check_alias(alias, reserved_ok=True)

        def op(conn: Connection) -> ModelVersion:
            model_row(conn, name)
            row = find_version(conn, name, "latest" if alias.lower() == "latest" else "@" + alias)
            if row is None:
                # MLflow's server answers INVALID_PARAMETER_VALUE here, and its client relies on the code.
                raise InvalidParameterValue(f"Registered model alias {alias} not found for model {name}.")
            return _version(conn, name, row.version)
        return self.t.read(op)


def _model(conn: Connection, name: str) -> RegisteredModel:
    return models_from_rows(conn, [model_row(conn, name)])[0]


def _version(conn: Connection, name: str, version: int) -> ModelVersion:
    return versions_from_rows(conn, [version_row(conn, name, version)])[0]
