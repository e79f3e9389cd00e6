"""The spool transport: writes go to this process's spool file when no server can be reached.

``database_transport(db)`` decides how a client logs to a database (DESIGN
decision 3):

* the server that owns it is reachable -> HTTP, with the spool as a fallback:
  writes that cannot be delivered (the server died and none can be started)
  are appended to the spool instead of being lost, and stay there until a
  server or ``labtrack sync`` ingests them;
* it is not reachable (served from another host on loopback or a unix socket,
  or nobody answers), or no server runs and none may be started (a SLURM job:
  ``SLURM_JOB_ID`` is set) -> the spool from the start;
* ``LABTRACK_SPOOL=1`` always spools, ``LABTRACK_SPOOL=0`` never does.

The spool transport answers the same ``call()`` as ``Transport`` for the
writes the client makes; a read raises ``SpoolReadError`` (what was spooled
becomes readable once it is ingested).  It never opens the database.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from labtrack.client.transport import LABTRACK_API, MLFLOW_API, Endpoint, Transport
from labtrack.errors import LabtrackError, ResourceDoesNotExist, SpoolReadError, TransientError
from labtrack.spool import SpoolWriter, spool_folder

# An experiment known to a spooling client only by name: resolved (and created) at ingest.
EXPERIMENT_REF = "name:"
PROBE_TIMEOUT_S = 3.0


def spool_mode() -> str:
    """``always`` (LABTRACK_SPOOL=1), ``never`` (LABTRACK_SPOOL=0) or ``auto``."""
    value = os.environ.get("LABTRACK_SPOOL", "").strip().lower()
    if value in ("1", "true", "yes", "on", "always"):
        return "always"
    if value in ("0", "false", "no", "off", "never"):
        return "never"
    return "auto"


def may_start_server() -> bool:
    """Whether this process may start a background server: not inside a batch job,
    whose server would die with the job and hold the database meanwhile."""
    return not os.environ.get("SLURM_JOB_ID")


def database_transport(db: Path) -> Any:
    """How to log to the SQLite database ``db``: HTTP (with spool fallback) or the spool."""
    from labtrack.client.discovery import server_for_database

    mode = spool_mode()
    folder = spool_folder(db)
    if mode == "always":
        return SpoolTransport(folder)
    start = may_start_server()
    try:
        endpoint, auth = server_for_database(db, start=start)
        if not _reachable(endpoint):
            raise TransientError(f"the server of {db} at {endpoint.uri} does not answer from "
                                 f"{socket.gethostname()}")
    except LabtrackError as e:
        if mode == "never":
            raise
        _announce(folder, e.message)
        return SpoolTransport(folder)

    def resolve() -> tuple[Endpoint, str | None]:
        # Called when the server stopped answering: find (or start) it again.  Failing
        # that, the write is transient, so it goes to the spool rather than being lost.
        try:
            return server_for_database(db, start=start)
        except TransientError:
            raise
        except LabtrackError as e:
            raise TransientError(e.message) from e

    http = Transport(endpoint, auth, resolver=resolve)
    return http if mode == "never" else FallbackTransport(http, folder)


def _reachable(endpoint: Endpoint) -> bool:
    """A quick connect: a firewalled host would otherwise cost minutes of retries."""
    try:
        if endpoint.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(PROBE_TIMEOUT_S)
            sock.connect(endpoint.socket_path or "")
        else:
            port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
            sock = socket.create_connection((endpoint.host, port), timeout=PROBE_TIMEOUT_S)
        sock.close()
        return True
    except OSError:
        return False


def _announce(folder: Path, why: str) -> None:
    print(f"labtrack: {why}; spooling writes to {folder} (they appear once the server of this "
          "database, or `labtrack sync`, ingests them)", file=sys.stderr, flush=True)


class SpoolTransport:
    """Turns the client's write calls into records in this process's spool file."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.writer = SpoolWriter(self.folder)  # registers its at-exit close now, before
        # the fluent API's exit hook, so runs ended at exit are still spooled before it
        self._experiments: dict[str, str] = {}  # reference -> name, for experiments/get

    @property
    def uri(self) -> str:
        return f"spool:{self.folder}"

    def close(self) -> None:
        """Nothing to do per thread (the file is closed at exit)."""

    def request_raw(self, method: str, path: str, *args: Any, **kw: Any) -> tuple[int, bytes]:
        raise SpoolReadError(f"{method} {path} needs the server, which is not reachable from this "
                             "process (its writes are spooled); artifacts cannot be spooled")

    def call(self, method: str, endpoint: str, message: dict[str, Any] | None = None, *,
             retries: bool = True, api: str = MLFLOW_API, raw_body: bytes | None = None) -> dict[str, Any]:
        """Apply a REST call: append a write to the spool, or refuse a read."""
        msg = json.loads(raw_body) if raw_body is not None else dict(message or {})
        handler = _handler(method, api, endpoint)
        if handler is None:
            raise SpoolReadError(
                f"{endpoint or api} is a read, and this process spools its writes because no "
                f"server is reachable; what it logged appears once the spool ({self.folder}) "
                "is ingested by the server or `labtrack sync`")
        return handler(self, msg)

    # -- handlers: one per write endpoint the client uses ---------------------------------
    def _append(self, *records: dict[str, Any]) -> dict[str, Any]:
        self.writer.append(records)
        return {}

    def _experiment(self, experiment_id: Any) -> dict[str, Any]:
        """``experiment_id`` or ``experiment_name`` for a record."""
        exp = str(experiment_id if experiment_id not in (None, "") else "0")
        if exp.startswith(EXPERIMENT_REF):
            return {"experiment_name": exp[len(EXPERIMENT_REF):]}
        return {"experiment_id": exp}

    def _create_experiment(self, m: dict[str, Any]) -> dict[str, Any]:
        name = m.get("name")
        if not isinstance(name, str) or not name:
            raise LabtrackError("Missing value for required parameter 'name'", "INVALID_PARAMETER_VALUE")
        self._append({"op": "set_experiment", "experiment_name": name, "tags": m.get("tags") or []})
        ref = EXPERIMENT_REF + name
        self._experiments[ref] = name
        return {"experiment_id": ref}

    def _get_experiment_by_name(self, m: dict[str, Any]) -> dict[str, Any]:
        ref = EXPERIMENT_REF + str(m.get("experiment_name"))
        if ref in self._experiments:
            return {"experiment": _experiment_json(ref, self._experiments[ref])}
        # Not known here: the fluent set_experiment then spools a set_experiment record,
        # which ingest resolves by name (creating the experiment only if it is missing).
        raise ResourceDoesNotExist(f"experiment {m.get('experiment_name')!r} is resolved when the "
                                   "spool is ingested")

    def _get_experiment(self, m: dict[str, Any]) -> dict[str, Any]:
        ref = str(m.get("experiment_id"))
        if ref in self._experiments:
            return {"experiment": _experiment_json(ref, self._experiments[ref])}
        raise SpoolReadError(f"experiment {ref} cannot be read: this process spools its writes")

    def _set_experiment_tag(self, m: dict[str, Any]) -> dict[str, Any]:
        return self._append({"op": "set_experiment_tag", **self._experiment(m.get("experiment_id")),
                             "key": m.get("key"), "value": m.get("value")})

    def _create_run(self, m: dict[str, Any]) -> dict[str, Any]:
        run_id = uuid.uuid4().hex  # chosen here, so applying the record twice makes one run
        start = m.get("start_time") or int(time.time() * 1000)
        tags = m.get("tags") or []
        self._append({"op": "create_run", "run_id": run_id, **self._experiment(m.get("experiment_id")),
                      "user_id": m.get("user_id") or "", "start_time": start,
                      "run_name": m.get("run_name") or None, "tags": tags})
        name = m.get("run_name") or next((t["value"] for t in tags if t["key"] == "mlflow.runName"), "")
        info = {"run_id": run_id, "run_uuid": run_id, "experiment_id": str(m.get("experiment_id") or "0"),
                "run_name": name, "user_id": m.get("user_id") or "", "status": "RUNNING",
                "start_time": start, "artifact_uri": "", "lifecycle_stage": "active"}
        return {"run": {"info": info, "data": {"tags": tags}}}

    def _update_run(self, m: dict[str, Any]) -> dict[str, Any]:
        rec = {"op": "update_run", "run_id": _run_id(m)}
        for k in ("status", "end_time", "run_name"):
            if m.get(k) is not None:
                rec[k] = m[k]
        return self._append(rec)

    def _log_batch(self, m: dict[str, Any]) -> dict[str, Any]:
        return self._append({"op": "log_batch", "run_id": _run_id(m), "metrics": m.get("metrics") or [],
                             "params": m.get("params") or [], "tags": m.get("tags") or []})

    def _log_series(self, m: dict[str, Any]) -> dict[str, Any]:
        """labtrack's bulk form, spooled as ONE ``log_series`` record with the columns as sent
        (base64-packed): ~30 bytes a point instead of ~70 for MLflow's point objects, and
        ingest applies it as one bulk write without a Python object per point."""
        return self._append({"op": "log_series", "run_id": _run_id(m), "series": m.get("series") or [],
                             "params": m.get("params") or [], "tags": m.get("tags") or []})

    def _log_metric(self, m: dict[str, Any]) -> dict[str, Any]:
        point = {"key": m.get("key"), "value": m.get("value"), "timestamp": m.get("timestamp"),
                 "step": m.get("step") or 0}
        return self._append({"op": "log_batch", "run_id": _run_id(m), "metrics": [point]})

    def _log_param(self, m: dict[str, Any]) -> dict[str, Any]:
        return self._append(_one_pair(m, "params"))

    def _set_tag(self, m: dict[str, Any]) -> dict[str, Any]:
        return self._append(_one_pair(m, "tags"))

    def _delete_tag(self, m: dict[str, Any]) -> dict[str, Any]:
        return self._append({"op": "delete_tag", "run_id": _run_id(m), "key": m.get("key")})

    def _delete_run(self, m: dict[str, Any]) -> dict[str, Any]:
        return self._append({"op": "delete_run", "run_id": _run_id(m)})

    def _restore_run(self, m: dict[str, Any]) -> dict[str, Any]:
        return self._append({"op": "restore_run", "run_id": _run_id(m)})

    def _log_trace(self, m: dict[str, Any]) -> dict[str, Any]:
        trace = {k: v for k, v in m.items() if k != "experiment_id"}
        self._append({"op": "log_trace", **self._experiment(m.get("experiment_id")), "trace": trace})
        return {"trace_id": m.get("trace_id")}


_HANDLERS = {
    ("POST", "experiments/create"): SpoolTransport._create_experiment,
    ("GET", "experiments/get-by-name"): SpoolTransport._get_experiment_by_name,
    ("GET", "experiments/get"): SpoolTransport._get_experiment,
    ("POST", "experiments/set-experiment-tag"): SpoolTransport._set_experiment_tag,
    ("POST", "runs/create"): SpoolTransport._create_run,
    ("POST", "runs/update"): SpoolTransport._update_run,
    ("POST", "runs/log-batch"): SpoolTransport._log_batch,
    ("POST", "runs/log-metric"): SpoolTransport._log_metric,
    ("POST", "runs/log-parameter"): SpoolTransport._log_param,
    ("POST", "runs/set-tag"): SpoolTransport._set_tag,
    ("POST", "runs/delete-tag"): SpoolTransport._delete_tag,
    ("POST", "runs/delete"): SpoolTransport._delete_run,
    ("POST", "runs/restore"): SpoolTransport._restore_run,
    ("POST", LABTRACK_API + "runs/log-series"): SpoolTransport._log_series,
    ("POST", LABTRACK_API + "traces/log"): SpoolTransport._log_trace,
}


def _handler(method: str, api: str, endpoint: str) -> Any:
    """The spool's handler of a call (MLflow's endpoints by name, labtrack's by path), or None."""
    return _HANDLERS.get((method, endpoint if api == MLFLOW_API else api + endpoint))


def _names_spooled_experiment(message: dict[str, Any] | None) -> bool:
    # An experiment made while spooling is known by name only: the server cannot look it up.
    return str((message or {}).get("experiment_id", "")).startswith(EXPERIMENT_REF)


def _one_pair(m: dict[str, Any], field: str) -> dict[str, Any]:
    """A log_batch record of one param or tag (``field``) from a log-parameter/set-tag message."""
    return {"op": "log_batch", "run_id": _run_id(m), field: [{"key": m.get("key"), "value": m.get("value")}]}


def _run_id(m: dict[str, Any]) -> str:
    run_id = m.get("run_id") or m.get("run_uuid")
    if not isinstance(run_id, str) or not run_id:
        raise LabtrackError("Missing value for required parameter 'run_id'", "INVALID_PARAMETER_VALUE")
    return run_id


def _experiment_json(ref: str, name: str) -> dict[str, Any]:
    return {"experiment_id": ref, "name": name, "artifact_location": "", "lifecycle_stage": "active",
            "tags": []}


class FallbackTransport:
    """HTTP to the server; writes it cannot take (unreachable after retries) go to the spool.

    Once a write was spooled, later writes are spooled too, so they are applied
    in the order they were made (a tag set twice keeps its last value).  Reads
    still go to the server; those the spool can answer (an experiment looked up
    by name for ``set_experiment``) fall back to it as well.
    """

    def __init__(self, http: Transport, folder: Path) -> None:
        self.http = http
        self.folder = folder
        # Made now, not at the first failure: see SpoolTransport.__init__ on the order at exit.
        # It opens no file until something is spooled.
        self._spool = SpoolTransport(folder)
        self._lock = threading.Lock()
        self.spooling = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)  # endpoint, auth, uri, request_raw, close...

    @property
    def uri(self) -> str:
        return self.http.uri

    def call(self, method: str, endpoint: str, message: dict[str, Any] | None = None, *,
             retries: bool = True, api: str = MLFLOW_API, raw_body: bytes | None = None) -> dict[str, Any]:
        handled = _handler(method, api, endpoint) is not None
        if handled and self.spooling and (method == "POST" or _names_spooled_experiment(message)):
            return self._spool.call(method, endpoint, message, api=api, raw_body=raw_body)
        try:
            return self.http.call(method, endpoint, message, retries=retries, api=api, raw_body=raw_body)
        except TransientError as e:
            if not handled:
                raise
            with self._lock:
                if not self.spooling:
                    self.spooling = True
                    _announce(self.folder, f"the server is gone ({e.message})")
        return self._spool.call(method, endpoint, message, api=api, raw_body=raw_body)


__all__ = ["EXPERIMENT_REF", "FallbackTransport", "SpoolTransport", "database_transport",
           "may_start_server", "spool_mode"]
