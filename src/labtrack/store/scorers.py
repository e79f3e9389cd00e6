"""Registered scorers (``mlflow.genai.scorers``): named, versioned serialized scorers of an experiment.

A scorer is a name within an experiment, with an id.  Each register of that name adds a
version (the highest so far plus one, counted from 1) holding the serialized scorer: the
JSON text the client sent, kept as it came.  Deleting one version leaves the scorer (and
its id) in place, even with no version left; deleting every version removes the scorer,
and a later register starts again from version 1 under a new id.  That is what MLflow's
SQL store does, and what a user of ``list_scorer_versions`` sees.

Public API (``ScorerStore(tracking)``; every ``experiment_id`` may be a string or an int)::

    register(experiment_id, name, serialized_scorer, *, allow_custom_code=False,
             endpoint_exists=None) -> ScorerVersion
    latest(experiment_id) -> list[ScorerVersion]                  # the newest version of each name
    latest_across(experiment_ids: Sequence | None) -> list[ScorerVersion]  # None: every active experiment
    versions(experiment_id, name) -> list[ScorerVersion]          # oldest first
    get(experiment_id, name, version: int | None = None) -> ScorerVersion   # None: the newest
    delete(experiment_id, name, version: int | None = None) -> int          # None: every version

and, on a connection the writer holds (``labtrack import``)::

    put_imported(conn, experiment_id: int, scorer_id | None, name, version, serialized_scorer,
                 creation_time) -> str | None

and the payload rules on their own: ``check_payload(serialized_scorer, *, allow_custom_code) -> Any``
(the parsed scorer, or MLflow's refusal), ``judge_model(data) -> Any``, ``gateway_endpoint(model) -> str | None``.

Lists are ordered by experiment id, then name (code point order, on every backend).
Errors are MLflow's: RESOURCE_DOES_NOT_EXIST for a missing experiment, scorer or version,
INVALID_PARAMETER_VALUE for a deleted experiment or a refused payload, with its messages.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypedDict

from sqlalchemy import Connection, delete, func, insert, select

from labtrack.errors import InvalidParameterValue, ResourceDoesNotExist
from labtrack.store import schema as s
from labtrack.store.dialect import upsert
from labtrack.store.tracking import TrackingStore, now_ms
from labtrack.store.validation import check_experiment_id

NAME_LIMIT = 256  # the scorer_name column
_CHUNK = 500  # ids per IN (...): well under SQLite's bound-parameter limit

# MLflow's own words (mlflow.genai.scorers.scorer_utils), so that a user who meets the refusal
# reads the same advice from either server; its variable is labtrack's setting too.
CUSTOM_CODE_REFUSED = (
    "Custom scorer registration (using @scorer decorator) is disabled by default "
    "outside of Databricks tracking environments due to security concerns. "
    "Custom scorers require arbitrary code execution during deserialization.\n\n"
    "To use custom scorers:\n"
    "1. Configure MLflow to use a Databricks tracking URI, or\n"
    "2. Manage your custom scorer code in a source code repository "
    "(e.g., GitHub) and import it directly, or\n"
    "3. On a self-managed MLflow server (or local environment) that you trust to run the "
    "scorer's code, set the MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS environment variable to true, or\n"
    "4. Use built-in scorers or make_judge() scorers instead."
)
# Options of a third-party scorer's LLM client that pick the host it sends requests to.
_DESTINATION_KEYS = frozenset({"api_base", "base_url", "model_list", "fallbacks", "custom_llm_provider"})
_GATEWAY = "gateway"

_sc, _sv = s.scorers, s.scorer_versions


class ScorerVersion(TypedDict):
    """One version of a registered scorer, as the store returns it."""

    experiment_id: str
    scorer_id: str
    scorer_name: str
    scorer_version: int
    serialized_scorer: str
    creation_time: int


# -- what a register may hold --------------------------------------------------------------
def check_payload(serialized_scorer: str, *, allow_custom_code: bool) -> Any:
    """The parsed scorer, or MLflow's refusal: not JSON; code that a server would have to run
    (a ``call_source`` anywhere, an ensemble's member too) unless ``allow_custom_code``; a
    third-party scorer's client options that choose where its requests go."""
    try:
        data = json.loads(serialized_scorer)
    except ValueError:
        raise InvalidParameterValue("serialized_scorer must be valid JSON") from None
    if not allow_custom_code and _has_code(data):
        raise InvalidParameterValue(CUSTOM_CODE_REFUSED)
    for third_party in _third_party_parts(data):
        kwargs = third_party.get("kwargs")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise InvalidParameterValue(
                f"third_party_scorer_data.kwargs must be a JSON object, got {type(kwargs).__name__}.")
        found = sorted(_destinations(kwargs))
        if found:
            raise InvalidParameterValue(
                f"third_party_scorer_data.kwargs must not contain {', '.join(map(repr, found))}: "
                "these options choose where the scorer's LLM client sends requests. Configure "
                "the judge endpoint on the server instead, for example through a gateway "
                "endpoint ('gateway:/<name>') or the provider's environment variables.")
    return data


def _has_code(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get("call_source") is not None or any(_has_code(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_code(v) for v in value)
    return False


def _third_party_parts(value: Any) -> Iterable[dict[str, Any]]:
    if isinstance(value, dict):
        part = value.get("third_party_scorer_data")
        if isinstance(part, dict):
            yield part
        for v in value.values():
            yield from _third_party_parts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _third_party_parts(v)


def _destinations(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        found |= _DESTINATION_KEYS & set(value)
        for v in value.values():
            found |= _destinations(v)
    elif isinstance(value, list):
        for v in value:
            # dict() also takes [key, value] pairs: a nested option map may travel so
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and v[0] in _DESTINATION_KEYS:
                found.add(v[0])
            found |= _destinations(v)
    return found


def judge_model(data: dict[str, Any]) -> Any:
    """The model a serialized scorer's judge calls (None when it names none)."""
    for key in ("instructions_judge_pydantic_data", "builtin_scorer_pydantic_data"):
        if data.get(key):
            return data[key].get("model") if isinstance(data[key], dict) else None
    memory = data.get("memory_augmented_judge_data")
    if memory:
        base = memory.get("base_judge") if isinstance(memory, dict) else None
        return judge_model(base) if isinstance(base, dict) else None
    third_party = data.get("third_party_scorer_data")
    if third_party:
        return third_party.get("model") if isinstance(third_party, dict) else None
    return None


def gateway_endpoint(model: Any) -> str | None:
    """The endpoint a ``gateway:/<name>`` model names, else None."""
    if not isinstance(model, str):
        return None
    provider, sep, path = model.partition(":/")
    if not sep or provider != _GATEWAY:
        return None
    return path.lstrip("/") or None


def _check_name(name: Any) -> str:
    if name is None:
        raise InvalidParameterValue("Scorer name cannot be None.")
    if not isinstance(name, str):
        raise InvalidParameterValue(f"Scorer name must be a string, got {type(name).__name__}.")
    if not name.strip():
        raise InvalidParameterValue("Scorer name cannot be empty or contain only whitespace.")
    if len(name) > NAME_LIMIT:
        raise InvalidParameterValue(f"Scorer name must be at most {NAME_LIMIT} characters, got {len(name)}.")
    return name


def _check_model(data: Any, endpoint_exists: Callable[[str], bool] | None) -> None:
    if not isinstance(data, dict):
        raise InvalidParameterValue("serialized_scorer must be a JSON object")
    model = judge_model(data)
    if model is None:
        return
    if not isinstance(model, str):
        raise InvalidParameterValue(f"Scorer model must be a string, got {type(model).__name__}.")
    if not model.strip():
        raise InvalidParameterValue("Scorer model cannot be empty or contain only whitespace.")
    endpoint = gateway_endpoint(model)
    if endpoint is not None and endpoint_exists is not None and not endpoint_exists(endpoint):
        raise ResourceDoesNotExist(f"GatewayEndpoint not found (name='{endpoint}')")


# -- rows ----------------------------------------------------------------------------------
def _active_experiment(conn: Connection, exp_id: int) -> None:
    row = conn.execute(select(s.experiments.c.lifecycle_stage).where(s.experiments.c.experiment_id == exp_id)).first()
    if row is None:
        raise ResourceDoesNotExist(f"No Experiment with id={exp_id} exists")
    if row[0] != "active":
        raise InvalidParameterValue(f"The experiment {exp_id} must be in the 'active' state. "
                                    f"Current state is {row[0]}.")


def _scorer_id(conn: Connection, exp_id: int, name: str) -> str:
    row = conn.execute(select(_sc.c.scorer_id).where(_sc.c.experiment_id == exp_id, _sc.c.scorer_name == name)).first()
    if row is None:
        raise _not_found(exp_id, name)
    return str(row[0])


def _storable(version: int) -> bool:
    """Whether the version column (a 32-bit integer) can hold ``version``: PostgreSQL refuses
    to compare it with a larger number, and no stored version is one."""
    return -(2**31) <= version < 2**31


def _not_found(exp_id: int, name: str, version: int | None = None) -> ResourceDoesNotExist:
    which = f" and version {version}" if version is not None else ""
    return ResourceDoesNotExist(f"Scorer with name '{name}'{which} not found for experiment {exp_id}.")


_COLUMNS = (_sc.c.experiment_id, _sc.c.scorer_id, _sc.c.scorer_name, _sv.c.scorer_version, _sv.c.serialized_scorer,
            _sv.c.creation_time)
_JOINED = _sc.join(_sv, _sv.c.scorer_id == _sc.c.scorer_id)


def _version(row: Any, normalized: bool) -> ScorerVersion:
    return ScorerVersion(experiment_id=str(row.experiment_id), scorer_id=row.scorer_id, scorer_name=row.scorer_name,
                         scorer_version=int(row.scorer_version),
                         serialized_scorer=_shown(row.serialized_scorer, normalized),
                         creation_time=int(row.creation_time))


def _shown(text: str, normalized: bool) -> str:
    """The serialized scorer as MLflow's server answers it: lists re-encode every version's
    JSON (``json.dumps`` of the parsed text); get and register return the text as stored,
    except for a judge on a gateway endpoint, whose model they rewrite and so re-encode."""
    try:
        data = json.loads(text)
    except ValueError:  # an imported row MLflow kept unparsed
        return text
    if normalized or (isinstance(data, dict) and gateway_endpoint(judge_model(data)) is not None):
        return json.dumps(data)
    return text


def _sorted(versions: list[ScorerVersion]) -> list[ScorerVersion]:
    return sorted(versions, key=lambda v: (int(v["experiment_id"]), v["scorer_name"], v["scorer_version"]))


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


def _latest_rows(conn: Connection, exp_ids: Sequence[int] | None) -> list[ScorerVersion]:
    """The newest version of each scorer in the active experiments among ``exp_ids`` (None: all)."""
    newest = (select(_sv.c.scorer_id, func.max(_sv.c.scorer_version).label("top"))
              .group_by(_sv.c.scorer_id).subquery())
    e = s.experiments
    query = (select(*_COLUMNS)
             .select_from(_JOINED.join(newest, (newest.c.scorer_id == _sv.c.scorer_id)
                                       & (newest.c.top == _sv.c.scorer_version))
                          .join(e, e.c.experiment_id == _sc.c.experiment_id))
             .where(e.c.lifecycle_stage == "active"))
    if exp_ids is None:
        rows = list(conn.execute(query))
    else:
        rows = [r for chunk in _chunks(list(dict.fromkeys(exp_ids)))
                for r in conn.execute(query.where(_sc.c.experiment_id.in_(chunk)))]
    return _sorted([_version(r, normalized=True) for r in rows])


def put_imported(conn: Connection, experiment_id: int, scorer_id: str | None, name: str, version: int,
                 serialized_scorer: str, creation_time: int) -> str | None:
    """One scorer version copied by ``labtrack import``, with its MLflow ids, on the writer's connection.

    The scorer is made with ``scorer_id`` if the experiment has no scorer of that name (None, from a
    server that sends no ids: the experiment's scorer of that name, or a new id); a version
    already stored is kept as it is (versions never change).  Returns None when the version is
    stored (or already was), else one line saying why it was left out: the experiment holds a
    scorer of that name under another id (registered here since), or the id names another scorer.
    The experiment must exist (a deleted one too: its scorers come along).
    """
    if conn.execute(select(s.experiments.c.experiment_id).where(s.experiments.c.experiment_id == experiment_id)
                    ).first() is None:
        raise ResourceDoesNotExist(f"No Experiment with id={experiment_id} exists")
    by_name = conn.execute(select(_sc.c.scorer_id).where(_sc.c.experiment_id == experiment_id,
                                                         _sc.c.scorer_name == name)).first()
    if scorer_id is None:
        scorer_id = by_name[0] if by_name is not None else str(uuid.uuid4())
    by_id = conn.execute(select(_sc.c.experiment_id, _sc.c.scorer_name).where(_sc.c.scorer_id == scorer_id)).first()
    what = f"scorer {name!r} version {version} (id {scorer_id}) of experiment {experiment_id}"
    if by_name is not None and by_name[0] != scorer_id:
        return f"{what}: the experiment's scorer of that name has id {by_name[0]}"
    if by_name is None:
        if by_id is not None:
            return f"{what}: id {scorer_id} is scorer {by_id[1]!r} of experiment {by_id[0]}"
        conn.execute(insert(_sc).values(scorer_id=scorer_id, experiment_id=experiment_id, scorer_name=name))
    conn.execute(upsert(conn, _sv).values(scorer_id=scorer_id, scorer_version=int(version),
                                          serialized_scorer=serialized_scorer, creation_time=int(creation_time))
                 .on_conflict_do_nothing())
    return None


# -- the store -----------------------------------------------------------------------------
class ScorerStore:
    """Registered scorers on the tracking store's database and writer (no state of its own)."""

    def __init__(self, tracking: TrackingStore) -> None:
        self.t = tracking

    def register(self, experiment_id: Any, name: Any, serialized_scorer: str, *, allow_custom_code: bool = False,
                 endpoint_exists: Callable[[str], bool] | None = None) -> ScorerVersion:
        """Add the next version of scorer ``name`` (making the scorer at version 1 if it has none).

        Refused as MLflow refuses: a payload ``check_payload`` refuses, a blank name, a missing
        or deleted experiment, a judge model that is not a non-blank string; a ``gateway:/<name>``
        model when ``endpoint_exists`` (the server's gateway) does not know the endpoint.
        """
        data = check_payload(serialized_scorer, allow_custom_code=allow_custom_code)
        name = _check_name(name)
        exp_id = check_experiment_id(experiment_id)

        def op(conn: Connection) -> ScorerVersion:
            _active_experiment(conn, exp_id)
            _check_model(data, endpoint_exists)
            # Concurrent first registers of a name (server processes on PostgreSQL) meet in the
            # unique index; the row lock then numbers their versions one after the other.
            conn.execute(upsert(conn, _sc).values(scorer_id=str(uuid.uuid4()), experiment_id=exp_id, scorer_name=name)
                         .on_conflict_do_nothing(index_elements=["experiment_id", "scorer_name"]))
            scorer_id = conn.execute(select(_sc.c.scorer_id).where(_sc.c.experiment_id == exp_id,
                                                                   _sc.c.scorer_name == name).with_for_update()
                                     ).scalar_one()
            top = conn.execute(select(func.max(_sv.c.scorer_version)).where(_sv.c.scorer_id == scorer_id)).scalar()
            version = int(top or 0) + 1
            created = now_ms()
            conn.execute(insert(_sv).values(scorer_id=scorer_id, scorer_version=version,
                                            serialized_scorer=serialized_scorer, creation_time=created))
            return ScorerVersion(experiment_id=str(exp_id), scorer_id=scorer_id, scorer_name=name,
                                 scorer_version=version, serialized_scorer=_shown(serialized_scorer, False),
                                 creation_time=created)
        return self.t.write(op)

    def latest(self, experiment_id: Any) -> list[ScorerVersion]:
        """The newest version of each scorer of one experiment, which must exist and be active."""
        exp_id = check_experiment_id(experiment_id)

        def op(conn: Connection) -> list[ScorerVersion]:
            _active_experiment(conn, exp_id)
            return _latest_rows(conn, [exp_id])
        return self.t.read(op)

    def latest_across(self, experiment_ids: Sequence[Any] | None = None) -> list[ScorerVersion]:
        """The newest version of each scorer of the given experiments (None: of every experiment);
        ids of missing or deleted experiments are passed over."""
        exp_ids = None if experiment_ids is None else [check_experiment_id(e) for e in experiment_ids]
        return self.t.read(lambda conn: _latest_rows(conn, exp_ids))

    def versions(self, experiment_id: Any, name: str) -> list[ScorerVersion]:
        """Every version of scorer ``name``, oldest first."""
        exp_id = check_experiment_id(experiment_id)

        def op(conn: Connection) -> list[ScorerVersion]:
            _active_experiment(conn, exp_id)
            scorer_id = _scorer_id(conn, exp_id, name)
            rows = conn.execute(select(*_COLUMNS).select_from(_JOINED).where(_sv.c.scorer_id == scorer_id)
                                .order_by(_sv.c.scorer_version)).all()
            if not rows:
                raise _not_found(exp_id, name)
            return [_version(r, normalized=True) for r in rows]
        return self.t.read(op)

    def get(self, experiment_id: Any, name: str, version: int | None = None) -> ScorerVersion:
        """Version ``version`` of scorer ``name``; its newest when ``version`` is None."""
        exp_id = check_experiment_id(experiment_id)

        def op(conn: Connection) -> ScorerVersion:
            _active_experiment(conn, exp_id)
            scorer_id = _scorer_id(conn, exp_id, name)
            query = select(*_COLUMNS).select_from(_JOINED).where(_sv.c.scorer_id == scorer_id)
            if version is not None and not _storable(version):
                raise _not_found(exp_id, name, version)
            if version is None:
                row = conn.execute(query.order_by(_sv.c.scorer_version.desc()).limit(1)).first()
            else:
                row = conn.execute(query.where(_sv.c.scorer_version == version)).first()
            if row is None:
                raise _not_found(exp_id, name, version)
            return _version(row, normalized=False)
        return self.t.read(op)

    def delete(self, experiment_id: Any, name: str, version: int | None = None) -> int:
        """Delete one version, or (``version`` None) every version and the scorer; returns how many
        versions went.  A scorer whose versions were all deleted one by one has none to delete."""
        exp_id = check_experiment_id(experiment_id)

        def op(conn: Connection) -> int:
            _active_experiment(conn, exp_id)
            scorer_id = _scorer_id(conn, exp_id, name)
            which = _sv.c.scorer_id == scorer_id
            if version is not None and not _storable(version):
                raise _not_found(exp_id, name, version)
            if version is not None:
                which = which & (_sv.c.scorer_version == version)
            gone = int(conn.execute(delete(_sv).where(which)).rowcount)
            if not gone:
                raise _not_found(exp_id, name, version)
            if version is None:
                conn.execute(delete(_sc).where(_sc.c.scorer_id == scorer_id))
            return gone
        return self.t.write(op)


__all__ = ["CUSTOM_CODE_REFUSED", "NAME_LIMIT", "ScorerStore", "ScorerVersion", "check_payload", "gateway_endpoint",
           "judge_model", "put_imported"]
