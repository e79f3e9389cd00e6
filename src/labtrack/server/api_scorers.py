"""Registered scorer endpoints (``/api/3.0/mlflow/scorers/...``), as ``mlflow.genai.scorers`` calls them.

A scorer travels as MLflow's ``Scorer`` message: ``experiment_id`` a number, the serialized
scorer JSON text.  ``register`` answers with its own fields (``version``, ``name``, the
experiment id as text).  An empty list is ``{}``, as MLflow's JSON leaves empty fields out.

Online scoring (``scorer.start()``, ``update()``, ``stop()``) is MLflow's server sampling new
traces and scoring them in the background: labtrack runs no such job, so the PUT that
configures it is refused with NOT_IMPLEMENTED (501) and a message that says so.  The client's
``list_scorers`` and ``get_scorer`` also ask which online configurations exist; the true
answer is none, and that is what ``online-configs`` says.
"""

from __future__ import annotations

from typing import Any

from labtrack.errors import InvalidParameterValue, LabtrackError, ResourceDoesNotExist
from labtrack.server.args import Args
from labtrack.server.base import ServerContext
from labtrack.store.scorers import ScorerStore, ScorerVersion

ONLINE_SCORING_REFUSED = (
    "labtrack does not run online scoring: registered scorers are stored and served, but no "
    "server job samples new traces to score them, so scorer.start(), update() and stop() are "
    "not available. Score traces with mlflow.genai.evaluate(data=mlflow.search_traces(...), "
    "scorers=[...]) instead.")


def scorer_store(ctx: ServerContext) -> ScorerStore:
    return ctx.one("scorers", lambda: ScorerStore(ctx.store))


def _message(v: ScorerVersion) -> dict[str, Any]:
    return {"experiment_id": int(v["experiment_id"]), "scorer_name": v["scorer_name"],
            "scorer_version": v["scorer_version"], "serialized_scorer": v["serialized_scorer"],
            "creation_time": v["creation_time"], "scorer_id": v["scorer_id"]}


def _listed(versions: list[ScorerVersion]) -> dict[str, Any]:
    return {"scorers": [_message(v) for v in versions]} if versions else {}


def _endpoint_exists(ctx: ServerContext) -> Any:
    def exists(name: str) -> bool:
        from labtrack.server.api_gateway import gateway_of

        try:
            gateway_of(ctx).endpoint(name)
        except ResourceDoesNotExist:
            return False
        return True
    return exists


def register(ctx: ServerContext, a: Args) -> dict[str, Any]:
    experiment_id, name, serialized = a.req("experiment_id"), a.req("name"), a.req("serialized_scorer")
    v = scorer_store(ctx).register(experiment_id, name, serialized,
                                   allow_custom_code=bool(getattr(ctx.settings, "enable_custom_scorers", False)),
                                   endpoint_exists=_endpoint_exists(ctx))
    return {"version": v["scorer_version"], "scorer_id": v["scorer_id"], "experiment_id": v["experiment_id"],
            "name": v["scorer_name"], "serialized_scorer": v["serialized_scorer"], "creation_time": v["creation_time"]}


def list_scorers(ctx: ServerContext, a: Args) -> dict[str, Any]:
    experiment_id = a.str("experiment_id")
    given_ids = "experiment_ids" in a.data
    if experiment_id and given_ids:
        raise InvalidParameterValue(
            "Cannot specify both 'experiment_id' and 'experiment_ids'. Use 'experiment_ids' to scope the "
            "query to multiple experiments, or 'experiment_id' to scope it to a single experiment.")
    store = scorer_store(ctx)
    if given_ids:
        return _listed(store.latest_across(a.str_list("experiment_ids")))
    if experiment_id:
        return _listed(store.latest(experiment_id))
    return _listed(store.latest_across(None))


def list_versions(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return _listed(scorer_store(ctx).versions(a.req("experiment_id"), a.req("name")))


def get(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"scorer": _message(scorer_store(ctx).get(a.req("experiment_id"), a.req("name"), a.int("version")))}


def delete(ctx: ServerContext, a: Args) -> dict[str, Any]:
    scorer_store(ctx).delete(a.req("experiment_id"), a.req("name"), a.int("version"))
    return {}


def online_configs(ctx: ServerContext, a: Args) -> dict[str, Any]:
    if not a.str_list("scorer_ids"):
        raise InvalidParameterValue("Missing value for required parameter 'scorer_ids'")
    return {"configs": []}  # labtrack keeps no online scoring configuration (see the module)


def set_online_config(ctx: ServerContext, a: Args) -> dict[str, Any]:
    raise LabtrackError(ONLINE_SCORING_REFUSED, "NOT_IMPLEMENTED")


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("scorers/register", {"POST": register}),
    ("scorers/list", {"GET": list_scorers}),
    ("scorers/versions", {"GET": list_versions}),
    ("scorers/get", {"GET": get}),
    ("scorers/delete", {"DELETE": delete}),
    ("scorers/online-configs", {"GET": online_configs}),
    ("scorers/online-config", {"PUT": set_online_config}),
]
