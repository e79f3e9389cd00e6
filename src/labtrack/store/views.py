"""Saved views of an experiment's runs page: a name, the page's state and its dashboard's chart panels.

The runs page keeps all of its state (filter, columns, sort, grouping, metric
ranges, chart settings) in the query of its URL hash, so a view keeps that
query as it is (``state.query``) and the dashboard's chart panels beside it
(``state.panels``: which metrics, the x axis, smoothing, log scale and a
param or tag to group runs by, drawn as mean ± std bands).  Opening a view
puts its query back into the hash: a link to a view opens the same page in
any browser.  Names are unique within an experiment.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from labtrack.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from labtrack.limits import LIMITS
from labtrack.store import schema as s
from labtrack.store.tracking import TrackingStore, now_ms
from labtrack.store.validation import check_experiment_id

_v = s.saved_views
X_MODES = ("step", "relative", "wall")  # the runs page's chart x axes (src/ui/src/metricchart.ts)
_PANEL_KEYS = {"title", "metrics", "x", "smoothing", "log", "group"}
_GROUP_PREFIXES = ("params.", "tags.", "attr.")


def _text(field: str, value: Any, limit: int, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise InvalidParameterValue(f"Missing value for required parameter '{field}'")
        return ""
    if not isinstance(value, str):
        raise InvalidParameterValue(f"Invalid value {str(value)[:80]!r} for parameter '{field}': expected a string")
    if len(value) > limit:
        raise InvalidParameterValue(f"'{field}' is {len(value)} characters long, over the limit of {limit}")
    return value


def check_name(name: Any) -> str:
    value = _text("name", name, LIMITS["view_name"], required=True).strip()
    if not value:
        raise InvalidParameterValue("Missing value for required parameter 'name'")
    return value


def check_panel(i: int, panel: Any) -> dict[str, Any]:
    """One chart panel, with its defaults filled in; anything else is INVALID_PARAMETER_VALUE."""
    where = f"state.panels[{i}]"
    if not isinstance(panel, dict):
        raise InvalidParameterValue(f"'{where}' must be an object")
    unknown = sorted(set(panel) - _PANEL_KEYS)
    if unknown:
        raise InvalidParameterValue(f"'{where}' has unknown fields {unknown}; a panel has {sorted(_PANEL_KEYS)}")
    metrics = panel.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise InvalidParameterValue(f"'{where}.metrics' must be a non-empty list of metric keys")
    if len(metrics) > LIMITS["view_panel_metrics"]:
        raise InvalidParameterValue(
            f"'{where}.metrics' has {len(metrics)} metrics, over the limit of {LIMITS['view_panel_metrics']}")
    keys = [_text(f"{where}.metrics", m, LIMITS["key"], required=True) for m in metrics]
    x = panel.get("x", "step")
    if x not in X_MODES:
        raise InvalidParameterValue(f"'{where}.x' must be one of {list(X_MODES)}, got {str(x)[:40]!r}")
    smoothing = panel.get("smoothing", 0)
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not (
            math.isfinite(smoothing) and 0 <= smoothing < 1):
        raise InvalidParameterValue(f"'{where}.smoothing' must be a number from 0 up to (not including) 1")
    log = panel.get("log", False)
    if not isinstance(log, bool):
        raise InvalidParameterValue(f"'{where}.log' must be true or false")
    group = _text(f"{where}.group", panel.get("group"), LIMITS["key"] + 7)
    if group and not group.startswith(_GROUP_PREFIXES):
        raise InvalidParameterValue(f"'{where}.group' must name a column such as 'params.lr' or 'tags.team'")
    return {"title": _text(f"{where}.title", panel.get("title"), LIMITS["view_name"]), "metrics": keys,
            "x": x, "smoothing": float(smoothing), "log": log, "group": group}


def check_state(state: Any) -> dict[str, Any]:
    """``{"query": <the runs page's hash query>, "panels": [<panel>, ...]}``, checked."""
    if state is None:
        state = {}
    if isinstance(state, str):  # a client may send the JSON text
        try:
            state = json.loads(state)
        except ValueError:
            raise InvalidParameterValue("'state' must be a JSON object") from None
    if not isinstance(state, dict):
        raise InvalidParameterValue("'state' must be an object with 'query' and 'panels'")
    unknown = sorted(set(state) - {"query", "panels"})
    if unknown:
        raise InvalidParameterValue(f"'state' has unknown fields {unknown}; it has 'query' and 'panels'")
    query = _text("state.query", state.get("query"), LIMITS["view_query"]).lstrip("?")
    panels = state.get("panels") or []
    if not isinstance(panels, list):
        raise InvalidParameterValue("'state.panels' must be a list")
    if len(panels) > LIMITS["view_panels"]:
        raise InvalidParameterValue(f"'state.panels' has {len(panels)} panels, over the limit of {LIMITS['view_panels']}")
    return {"query": query, "panels": [check_panel(i, p) for i, p in enumerate(panels)]}


def check_view_id(view_id: Any) -> str:
    value = _text("view_id", view_id, 32, required=True)
    if not value.isalnum():
        raise InvalidParameterValue(f"Invalid view id {value!r}")
    return value


def _view(row: Any) -> dict[str, Any]:
    return {"view_id": row.view_id, "experiment_id": str(row.experiment_id), "name": row.name,
            "state": json.loads(row.state), "created_by": row.created_by or "",
            "creation_time": row.creation_time, "last_update_time": row.last_update_time}


def _row(conn: Connection, view_id: str) -> Any:
    row = conn.execute(select(_v).where(_v.c.view_id == view_id)).first()
    if row is None:
        raise ResourceDoesNotExist(f"No saved view with id={view_id} exists")
    return row


def _taken(name: str) -> ResourceAlreadyExists:
    return ResourceAlreadyExists(f"A saved view named '{name}' already exists in this experiment")


class ViewStore:
    """Saved views on the tracking store's database, written through its one writer."""

    def __init__(self, tracking: TrackingStore) -> None:
        self.t = tracking

    def experiment_of(self, view_id: Any) -> str:
        """The id of the experiment a view belongs to (for permission checks)."""
        vid = check_view_id(view_id)
        return str(self.t.read(lambda conn: _row(conn, vid)).experiment_id)

    def create(self, experiment_id: Any, name: Any, state: Any, created_by: str | None = None) -> dict[str, Any]:
        exp_id = check_experiment_id(experiment_id)
        view_name = check_name(name)
        body = json.dumps(check_state(state), ensure_ascii=False, separators=(",", ":"))
        view_id = uuid.uuid4().hex
        t = now_ms()

        def op(conn: Connection) -> dict[str, Any]:
            if conn.execute(select(s.experiments.c.experiment_id).where(
                    s.experiments.c.experiment_id == exp_id)).first() is None:
                raise ResourceDoesNotExist(f"No Experiment with id={exp_id} exists")
            if conn.execute(select(_v.c.view_id).where(_v.c.experiment_id == exp_id, _v.c.name == view_name)).first():
                raise _taken(view_name)
            count = conn.execute(select(func.count()).select_from(_v).where(_v.c.experiment_id == exp_id)).scalar_one()
            if count >= LIMITS["views_per_experiment"]:
                raise InvalidParameterValue(
                    f"This experiment has {count} saved views, the limit; delete some before saving more")
            try:
                with conn.begin_nested():
                    conn.execute(insert(_v).values(view_id=view_id, experiment_id=exp_id, name=view_name, state=body,
                                                   created_by=created_by or None, creation_time=t, last_update_time=t))
            except IntegrityError:  # another server process (--workers) saved the name meanwhile
                raise _taken(view_name) from None
            return _view(_row(conn, view_id))
        return self.t.write(op)

    def get(self, view_id: Any) -> dict[str, Any]:
        vid = check_view_id(view_id)
        return self.t.read(lambda conn: _view(_row(conn, vid)))

    def list(self, experiment_id: Any) -> list[dict[str, Any]]:
        """The experiment's views, by name."""
        exp_id = check_experiment_id(experiment_id)

        def op(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(_v).where(_v.c.experiment_id == exp_id).order_by(_v.c.name, _v.c.view_id)).all()
            return [_view(r) for r in rows]
        return self.t.read(op)

    def update(self, view_id: Any, name: Any = None, state: Any = None) -> dict[str, Any]:
        """Rename a view and/or replace its state (a field left out stays as it was)."""
        vid = check_view_id(view_id)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = check_name(name)
        if state is not None:
            values["state"] = json.dumps(check_state(state), ensure_ascii=False, separators=(",", ":"))

        def op(conn: Connection) -> dict[str, Any]:
            row = _row(conn, vid)
            if values.get("name", row.name) != row.name and conn.execute(select(_v.c.view_id).where(
                    _v.c.experiment_id == row.experiment_id, _v.c.name == values["name"])).first():
                raise _taken(values["name"])
            if values:
                try:
                    with conn.begin_nested():
                        conn.execute(update(_v).where(_v.c.view_id == vid).values(**values, last_update_time=now_ms()))
                except IntegrityError:
                    raise _taken(values["name"]) from None
            return _view(_row(conn, vid))
        return self.t.write(op)

    def delete(self, view_id: Any) -> None:
        vid = check_view_id(view_id)

        def op(conn: Connection) -> None:
            _row(conn, vid)
            conn.execute(delete(_v).where(_v.c.view_id == vid))
        self.t.write(op)
