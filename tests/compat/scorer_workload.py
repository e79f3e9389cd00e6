"""A registered-scorer workload through the unmodified mlflow client; prints what it observes.

Run as ``python -m tests.compat.scorer_workload [builtin|custom]`` with MLFLOW_TRACKING_URI set
(and MLFLOW_TRACKING_TOKEN if the server wants one).  The last line of stdout is one JSON
object: every value the client read back (names, versions, each scorer's serialized form and
what it scores, list orders, the errors it met), with scorer ids replaced by their order of
first appearance and times by checks on them, so that two servers' observations compare as
they are.

``builtin``: built-in, guidelines and judge scorers; errors for a missing experiment, scorer or
version and a deleted experiment; deleting one version and all; a @scorer refused (the server's
default), and the online scoring call.  ``custom``: @scorer scorers, for servers started with
MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS=true (and this client with it, to load them back).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import mlflow
import requests
from mlflow.exceptions import MlflowException
from mlflow.genai.judges import make_judge
from mlflow.genai.scorers import (
    Guidelines,
    RelevanceToQuery,
    Safety,
    Scorer,
    ScorerSamplingConfig,
    delete_scorer,
    get_scorer,
    list_scorers,
    scorer,
)
from mlflow.genai.scorers.registry import list_scorer_versions  # not re-exported by mlflow.genai.scorers

URI = os.environ["MLFLOW_TRACKING_URI"]
HEADERS = {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"} if os.environ.get(
    "MLFLOW_TRACKING_TOKEN") else {}
_ids: dict[str, str] = {}


def label(scorer_id: Any) -> str:
    """A scorer id as its order of first appearance (S0, S1, ...)."""
    return _ids.setdefault(str(scorer_id), f"S{len(_ids)}")


def error(call: Callable[[], Any]) -> dict[str, Any]:
    """What the user sees when ``call`` fails: the MlflowException's code and message."""
    try:
        call()
    except MlflowException as exc:
        return {"error_code": exc.error_code, "message": exc.message}
    raise AssertionError(f"{call} did not fail")


def shown(s: Scorer) -> dict[str, Any]:
    """A scorer the client loaded back: its name, kind and whole serialized form."""
    return {"name": s.name, "kind": s.kind.value, "dump": s.model_dump()}


def rest(method: str, path: str, **kw: Any) -> dict[str, Any]:
    """A raw v3 call, for what the client's functions do not reach (lists across experiments)."""
    reply = requests.request(method, f"{URI}/api/3.0/mlflow/{path}", headers=HEADERS, timeout=60, **kw)
    body = reply.json()
    if reply.status_code != 200:  # MLflow's error JSON; mlflow server adds sqlstate and error_class
        return {"status": reply.status_code, "body": {k: body[k] for k in ("error_code", "message")}}
    for entry in body.get("scorers", []) + ([body["scorer"]] if "scorer" in body else []):
        entry["scorer_id"] = label(entry["scorer_id"])
        assert isinstance(entry.pop("creation_time"), int)
    return {"status": reply.status_code, "body": body}


def builtin() -> dict[str, Any]:
    out: dict[str, Any] = {}
    exp = mlflow.set_experiment("scorers-differential").experiment_id
    other = mlflow.create_experiment("scorers-other")

    polite_v1 = Guidelines(name="polite", guidelines=["Be polite", "Answer in English"])
    registered = polite_v1.register(experiment_id=exp)
    out["registered"] = {"name": registered.name, "same_dump": registered.model_dump() == polite_v1.model_dump()}
    Guidelines(name="polite", guidelines=["Be polite", "Answer in French <b>é</b>"]).register(experiment_id=exp)
    RelevanceToQuery().register(experiment_id=exp, name="relevance")
    Safety().register(experiment_id=exp)
    tone = make_judge(name="tone", instructions="Is {{ outputs }} polite? " + "x" * 5000,
                      model="openai:/gpt-4o-mini", feedback_value_type=bool)
    tone.register(experiment_id=exp)
    tone.register(experiment_id=exp, name="Tone")  # names are case-sensitive, and sort before lower case
    Safety().register(experiment_id=other, name="safety-elsewhere")
    Guidelines(name="zeta", guidelines=["short"]).register(experiment_id="0")

    out["list"] = [shown(s) for s in list_scorers(experiment_id=exp)]
    out["versions"] = [[shown(s), v] for s, v in list_scorer_versions(name="polite", experiment_id=exp)]
    out["get_latest"] = shown(get_scorer(name="polite", experiment_id=exp))
    out["get_v1"] = shown(get_scorer(name="polite", experiment_id=exp, version=1))
    out["get_v1_round_trip"] = out["get_v1"]["dump"] == polite_v1.model_dump()
    out["judge_round_trip"] = shown(get_scorer(name="tone", experiment_id=exp))["dump"] == tone.model_dump()
    out["rest"] = {
        "get": rest("GET", "scorers/get", params={"experiment_id": exp, "name": "polite", "version": 1}),
        "versions": rest("GET", "scorers/versions", params={"experiment_id": exp, "name": "polite"}),
        "across": rest("GET", "scorers/list", params={"experiment_ids": [other, exp, "424242"]}),
        "everywhere": rest("GET", "scorers/list"),
        "both": rest("GET", "scorers/list", params={"experiment_ids": [exp], "experiment_id": exp}),
    }

    out["errors"] = {
        "missing_scorer": error(lambda: get_scorer(name="nope", experiment_id=exp)),
        "missing_version": error(lambda: get_scorer(name="polite", experiment_id=exp, version=99)),
        "missing_versions": error(lambda: list_scorer_versions(name="nope", experiment_id=exp)),
        "missing_experiment": error(lambda: list_scorers(experiment_id="424242")),
        "delete_missing": error(lambda: delete_scorer(name="nope", experiment_id=exp, version="all")),
        "delete_missing_version": error(lambda: delete_scorer(name="polite", experiment_id=exp, version=99)),
        "delete_without_version": error(lambda: delete_scorer(name="polite", experiment_id=exp)),
        "blank_name": error(lambda: Safety().register(experiment_id=exp, name="   ")),
    }

    # Deleting one version, then the rest one by one, then every version of another scorer.
    delete_scorer(name="polite", experiment_id=exp, version=1)
    out["after_delete_v1"] = [v for _, v in list_scorer_versions(name="polite", experiment_id=exp)]
    out["latest_after_delete_v1"] = get_scorer(name="polite", experiment_id=exp).guidelines
    out["deleted_v1"] = error(lambda: get_scorer(name="polite", experiment_id=exp, version=1))
    delete_scorer(name="polite", experiment_id=exp, version=2)
    out["after_delete_each"] = {
        "list": [s.name for s in list_scorers(experiment_id=exp)],
        "get": error(lambda: get_scorer(name="polite", experiment_id=exp)),
        "versions": error(lambda: list_scorer_versions(name="polite", experiment_id=exp)),
        "delete_all": error(lambda: delete_scorer(name="polite", experiment_id=exp, version="all")),
    }
    Guidelines(name="polite", guidelines=["again"]).register(experiment_id=exp)
    out["reregistered_versions"] = [v for _, v in list_scorer_versions(name="polite", experiment_id=exp)]
    delete_scorer(name="relevance", experiment_id=exp, version="all")
    out["after_delete_all"] = {
        "list": [s.name for s in list_scorers(experiment_id=exp)],
        "get": error(lambda: get_scorer(name="relevance", experiment_id=exp)),
    }
    RelevanceToQuery().register(experiment_id=exp, name="relevance")
    out["relevance_again"] = [v for _, v in list_scorer_versions(name="relevance", experiment_id=exp)]
    out["rest"]["after"] = rest("GET", "scorers/list", params={"experiment_id": exp})

    # A @scorer carries its code: refused unless the server was started to allow it.
    @scorer
    def exact(outputs: str, expectations: dict[str, Any]) -> bool:
        return outputs == expectations["expected_response"]

    out["custom_refused"] = error(lambda: exact.register(experiment_id=exp))

    # Online scoring: MLflow's server refuses a judge without a gateway model; labtrack runs none.
    polite = get_scorer(name="polite", experiment_id=exp)
    out["online"] = error(lambda: polite.start(sampling_config=ScorerSamplingConfig(sample_rate=0.5)))

    mlflow.delete_experiment(other)
    out["deleted_experiment"] = {
        "list": error(lambda: list_scorers(experiment_id=other)),
        "get": error(lambda: get_scorer(name="safety-elsewhere", experiment_id=other)),
        "register": error(lambda: Safety().register(experiment_id=other, name="late")),
        "across": rest("GET", "scorers/list", params={"experiment_ids": [other]}),
    }
    return out


def custom() -> dict[str, Any]:
    out: dict[str, Any] = {}
    exp = mlflow.set_experiment("custom-scorers").experiment_id

    @scorer
    def exact(outputs: str, expectations: dict[str, Any]) -> bool:
        return outputs == expectations["expected_response"]

    @scorer(name="length_ok", aggregations=["mean"])
    def short(outputs: str) -> bool:
        return len(outputs) < 10

    exact.register(experiment_id=exp)
    short.register(experiment_id=exp)
    short.register(experiment_id=exp)
    loaded = get_scorer(name="exact", experiment_id=exp)
    out["exact"] = {"dump_round_trip": loaded.model_dump() == exact.model_dump(),
                    "scores": [loaded(outputs="a", expectations={"expected_response": "a"}),
                               loaded(outputs="a", expectations={"expected_response": "b"})]}
    out["list"] = [shown(s) for s in list_scorers(experiment_id=exp)]
    out["versions"] = [v for _, v in list_scorer_versions(name="length_ok", experiment_id=exp)]
    out["short_scores"] = get_scorer(name="length_ok", experiment_id=exp, version=1)(outputs="tiny")
    return out


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "builtin"
    observed = builtin() if which == "builtin" else custom()
    print(json.dumps(observed, sort_keys=True))


if __name__ == "__main__":
    main()
