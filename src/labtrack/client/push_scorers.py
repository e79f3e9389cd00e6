"""``labtrack push``'s registered scorers (``mlflow.genai.scorers``), every version.

A scorer goes with the pushed experiment it is registered in.  The destination
numbers a scorer's versions itself (each register adds the next), so versions
are sent oldest first, and a version is sent only when the destination's scorer
of that name holds no version with the same serialized scorer: a destination
that started without the scorer ends with the same versions, numbered alike,
and a second push sends nothing.  A version the destination refuses (an mlflow
server takes a scorer with code only when started with
``MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS``) is named in a warning, and the push
goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labtrack.client.traces import V3_API
from labtrack.errors import LabtrackError

_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def push_scorers(source: Any, dest: Any, exp_map: dict[str, str],
                 count: Callable[[str, int], None], warn: Callable[[str], None]) -> None:
    """Copy the scorers of the pushed experiments (``exp_map``: source id -> destination id)."""
    for src_exp, dest_exp in exp_map.items():
        try:
            names = scorer_names(source, src_exp)
        except LabtrackError as exc:
            if exc.error_code == "ENDPOINT_NOT_FOUND":
                return  # a source without scorers
            raise
        for name in names:
            try:
                have = {v["serialized_scorer"] for v in scorer_versions(dest, dest_exp, name)}
            except LabtrackError as exc:
                if exc.error_code != "ENDPOINT_NOT_FOUND":
                    raise
                warn(f"the destination keeps no registered scorers (MLflow before 3.2?): {name!r} and others left out")
                return
            for v in scorer_versions(source, src_exp, name):
                if v["serialized_scorer"] in have:
                    continue
                try:
                    dest._call("POST", "scorers/register", {"experiment_id": dest_exp, "name": name,
                                                            "serialized_scorer": v["serialized_scorer"]}, api=V3_API)
                except LabtrackError as exc:
                    if exc.error_code in ("INVALID_PARAMETER_VALUE", "PERMISSION_DENIED"):
                        warn(f"scorer {name!r} version {v['scorer_version']} was refused by the destination: {exc}")
                        continue
                    raise
                have.add(v["serialized_scorer"])
                count("scorer versions", 1)


def scorer_names(client: Any, experiment_id: str) -> list[str]:
    """The experiment's registered scorers' names (raises ENDPOINT_NOT_FOUND where none can be)."""
    reply = client._read("GET", "scorers/list", {"experiment_id": experiment_id}, api=V3_API)
    return [s["scorer_name"] for s in reply.get("scorers") or []]


def scorer_versions(client: Any, experiment_id: str, name: str) -> list[dict[str, Any]]:
    """Every version of a scorer, oldest first; none where the experiment has no such scorer."""
    try:
        reply = client._read("GET", "scorers/versions", {"experiment_id": experiment_id, "name": name}, api=V3_API)
    except LabtrackError as exc:
        if exc.error_code in _ABSENT:
            return []
        raise
    return sorted(reply.get("scorers") or [], key=lambda v: int(v.get("scorer_version") or 0))


__all__ = ["push_scorers", "scorer_names", "scorer_versions"]
