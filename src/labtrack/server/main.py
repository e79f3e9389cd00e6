"""Start, run and stop one server process on one database.

Order matters: claim the database (a second server stops here with a message
naming the owner), open and migrate it, bind, publish where we listen in the
ownership record, serve.  On SIGTERM/SIGINT we stop accepting, let the writer
commit what it holds, and release the record, so nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from labtrack import ownership
from labtrack.server.tokens import new_token
from labtrack._version import __version__
from labtrack.settings import Settings

log = logging.getLogger("labtrack.server")


class Server:
    """One labtrack server; ``run()`` blocks until it is told to stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.exit_code = 0
        self._stopping: asyncio.Event | None = None
        self.sockets: list[socket.socket] | None = None  # bound by the parent of --workers N

    def _artifact_root_uri(self, destination: Path | str) -> str:
        s = self.settings
        if s.default_artifact_root:
            return s.default_artifact_root
        return "mlflow-artifacts:/" if s.serve_artifacts else str(destination)

    def _destination(self) -> Path | str:
        """Where served artifacts live: a resolved folder, or an s3:// URI kept as it is."""
        from labtrack.artifacts.roots import check_served, is_remote

        s = self.settings
        check_served(s.artifacts_destination, "--artifacts-destination")
        if s.default_artifact_root:
            check_served(s.default_artifact_root, "--default-artifact-root")
        if is_remote(s.artifacts_destination):
            return s.artifacts_destination.rstrip("/")  # a remote URI never becomes a local path
        return Path(s.artifacts_destination).expanduser().resolve()

    def run(self) -> int:
        from labtrack.store.engine import normalize_url, sqlite_file

        s = self.settings
        url = normalize_url(s.backend_store_uri)
        db_path = sqlite_file(url)
        if db_path is not None:
            url, db_path = self._not_mlflow(url, db_path)
        if not s.unix_socket and s.port and self.sockets is None:
            _check_port_free(s.host, s.port)  # before anything is created: a busy port leaves no database
        destination = self._destination()
        self._private_files(db_path, destination)
        token = self._token()
        record = ownership.OwnerRecord(host=socket.gethostname(), pid=os.getpid(),
                                       database=str(db_path or url.split("@")[-1]), version=__version__,
                                       idle_timeout=s.idle_timeout)
        if db_path is not None:
            ownership.claim(db_path, record)  # raises DatabaseInUse naming the owner
        try:
            return asyncio.run(self._serve(url, db_path, destination, token, record))
        finally:
            if db_path is not None:
                ownership.release(db_path)

    @staticmethod
    def _private_files(db_path: Path | None, destination: Path | str) -> None:
        """No access for others to what we create (whatever the umask) or already hold."""
        from labtrack import file_modes
        from labtrack.spool import spool_folder

        file_modes.apply(db_path.parent if db_path is not None else Path.cwd())
        mine: list[Path] = [destination] if isinstance(destination, Path) else []
        if db_path is not None:
            mine += [*file_modes.data_paths(db_path), spool_folder(db_path).parent, spool_folder(db_path)]
            if db_path.parent.is_dir():
                file_modes.create_file(db_path)  # before SQLite, which would make it 0644
        file_modes.tighten(mine)

    def _basic_auth(self, ctx: object) -> None:
        """Users and permissions instead of the token (``--app-name basic-auth``)."""
        from labtrack.server import auth

        basic = auth.install(ctx)
        if not basic.users.count_admins():
            # Unlike MLflow, no admin/password1234: the first admin comes from the command line.
            log.warning("basic-auth: no admin user yet; create one with "
                        "`labtrack users create --admin --backend-store-uri ...`")

    def _not_mlflow(self, url: str, db_path: Path) -> tuple[str, Path]:
        """Refuse an MLflow database before touching it (one line naming ``labtrack import``),
        or serve the ``labtrack.db`` an import made beside it."""
        from labtrack.mlflow_data import artifacts_folder, resolve_database

        chosen = resolve_database(db_path)  # raises MlflowDataFound: nothing is written yet
        if chosen == db_path:
            return url, db_path
        print(f"labtrack: {db_path} holds MLflow's data; serving {chosen}, imported from it", flush=True)
        if self.settings.artifacts_destination == "./mlruns":  # the default: MLflow's folder too
            self.settings.artifacts_destination = str(artifacts_folder(chosen))
        return f"sqlite:///{chosen}", chosen

    def _token(self) -> str | None:
        s = self.settings
        if s.app_name:
            from labtrack.errors import InvalidParameterValue

            if s.app_name != "basic-auth":
                raise InvalidParameterValue(f"--app-name {s.app_name!r}: labtrack has one app, 'basic-auth'")
            return None  # users sign in with their own passwords
        if s.unix_socket or s.no_token:
            return s.token  # the socket lives in a private folder; the token is optional there
        return s.token or new_token()

    async def _serve(self, url: str, db_path: Path | None, destination: Path | str, token: str | None,
                     record: ownership.OwnerRecord) -> int:
        from tornado.netutil import bind_sockets, bind_unix_socket

        from labtrack.artifacts.roots import open_root
        from labtrack.server.app import make_app
        from labtrack.server.base import ServerContext
        from labtrack.server.http1 import Http1Server
        from labtrack.store.logged_models import LoggedModelStore
        from labtrack.store.registry import RegistryStore
        from labtrack.store.tracking import TrackingStore

        s = self.settings
        store = TrackingStore(url, default_artifact_root=self._artifact_root_uri(destination))
        artifacts = open_root(str(destination)) if s.serve_artifacts else None
        if artifacts is not None and hasattr(artifacts, "check"):
            await asyncio.get_running_loop().run_in_executor(None, artifacts.check)  # a bucket: reachable?
        ctx = ServerContext(store=store, logged_models=LoggedModelStore(store), artifacts=artifacts,
                            settings=s, token=token, registry=RegistryStore(store))
        if s.app_name:
            self._basic_auth(ctx)
        app = make_app(ctx)
        ingest = self._start_ingest(store, db_path, ctx)
        journal = self._journal(store, db_path, ctx, ingest)
        from labtrack.server.job_watch import start_job_watch

        jobs = start_job_watch(store)  # runs of SLURM jobs end as their jobs end
        lane = None
        if journal is not None and os.environ.get("LABTRACK_METRIC_LANE", "1") != "0":
            # Small metric writes answered early from their raw header fields (server/metric_lane.py).
            from labtrack.server.metric_lane import MetricLane

            lane = MetricLane(ctx, app)
        server = Http1Server(app, max_body_size=64 << 20, idle_timeout=3600, lane=lane)
        if s.unix_socket:
            Path(s.unix_socket).parent.mkdir(parents=True, exist_ok=True)
            await server.add_sockets([bind_unix_socket(s.unix_socket, mode=0o600)])
            record.unix_socket = str(Path(s.unix_socket).resolve())
            where = f"unix socket {record.unix_socket}"
        else:
            sockets = self.sockets or bind_sockets(s.port, address=s.host)
            await server.add_sockets(sockets)
            port = sockets[0].getsockname()[1]
            host = s.host if ":" not in s.host else f"[{s.host}]"
            record.url = f"http://{host}:{port}"
            where = record.url
        record.token = token
        if db_path is not None:
            ownership.write_record(db_path, record)
        from labtrack.server import listener

        ctx.extra[listener.OPENER_KEY] = listener.tcp_opener(server, record, db_path, ctx,
                                                             asyncio.get_running_loop())
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        print(f"labtrack {__version__} serving {record.database} at {where} "
              f"(artifacts: {destination if artifacts else 'not served'})", flush=True)
        if record.url:
            # What a user pastes: the mlflow client's two variables, and the browser URL.
            given = f" MLFLOW_TRACKING_TOKEN={token}" if token and not s.unix_socket else ""
            print(f"Log with the mlflow client: export MLFLOW_TRACKING_URI={record.url}{given}", flush=True)
            if given:
                print(f"Open the web UI: {record.url}/?token={token}", flush=True)
        watchers = [asyncio.create_task(self._watch(ctx))]
        if s.expose_prometheus:
            from labtrack.server import metrics
            from labtrack.spool import spool_folder

            watchers.append(metrics.install(ctx, app, spool_folder(db_path) if db_path is not None else None))
        # What exists now (modules, the app, the store) lives as long as the server:
        # frozen out of the collector's sight, the full collections that a long
        # read's many rows set off no longer walk it every time.
        gc.freeze()
        await self._stopping.wait()
        for w in watchers:
            w.cancel()
        server.stop()
        if ingest is not None:
            await loop.run_in_executor(None, ingest.stop)
        if jobs is not None:
            await loop.run_in_executor(None, jobs.stop)
        if journal is not None:
            forget = journal.close()  # later writes are answered after they are stored
            if forget is not None:
                await loop.run_in_executor(None, store.write, forget)
        await loop.run_in_executor(None, store.close)
        # Let running requests answer (writes now get 503), then close kept-alive
        # connections: a request still open when asyncio.run ends is cancelled, and
        # tornado answers a cancelled request with a 500.
        await loop.run_in_executor(None, ctx.pool.shutdown)
        if not await server.close_all_connections(timeout=10):
            log.warning("connections still open at shutdown were cut")
        ctx.close_helpers()  # the search cache's own SQLite connection, the read-ahead's pool
        if s.unix_socket:
            try:
                os.unlink(s.unix_socket)
            except OSError:
                pass
        return self.exit_code

    def _start_ingest(self, store: object, db_path: Path | None, ctx: object) -> object | None:
        """Apply spool files (writes of clients that could not reach us) every second."""
        if db_path is None:
            return None  # spool files belong to a SQLite folder
        from labtrack.spool import spool_folder
        from labtrack.store.ingest import IngestThread, SpoolIngest

        def touch(_report: object) -> None:
            ctx.last_activity = time.monotonic()  # type: ignore[attr-defined]  # ingesting is not idle

        ingest = SpoolIngest(store, spool_folder(db_path))  # type: ignore[arg-type]
        try:
            # A killed server's answered writes (server/early_answer.py), stored before we answer.
            report = ingest.recover_journals()
            if report.records or report.rejected:
                log.info("journals of a stopped server: %d writes stored, %d rejected",
                         report.records, report.rejected)
        except Exception:  # noqa: BLE001 - the ingest thread retries every second
            log.exception("storing the journals of a stopped server failed; retrying in the background")
        return IngestThread(ingest, on_applied=touch).start()

    @staticmethod
    def _journal(store: Any, db_path: Path | None, ctx: Any, ingest: Any) -> Any:
        """The journal of writes answered before they are stored (server/early_answer.py): on a
        SQLite file in WAL mode, with its spool ingest running, unless LABTRACK_EARLY_ANSWER=0."""
        from labtrack.server import early_answer

        if db_path is None or ingest is None or store.engines.journal_mode != "wal" or not early_answer.enabled():
            return None
        from labtrack.spool import spool_folder
        from labtrack.store.journal import Journal

        journal = ctx.extra[early_answer.JOURNAL_KEY] = Journal(spool_folder(db_path))
        ctx.extra[early_answer.HAND_OVER_KEY] = ingest.ingest.reload
        return journal

    async def _watch(self, ctx: object) -> None:
        """Idle timeout and parent-death watchdog (no orphans behind the proxy)."""
        s = self.settings
        assert self._stopping is not None
        while True:
            await asyncio.sleep(1.0)
            if s.parent_pid and not _alive(s.parent_pid):
                log.warning("parent process %d is gone; stopping", s.parent_pid)
                self.exit_code = 1
                self._stopping.set()
                return
            idle = time.monotonic() - ctx.last_activity  # type: ignore[attr-defined]
            if s.idle_timeout and idle > s.idle_timeout:
                log.warning("idle for %ds; stopping", int(idle))
                self._stopping.set()
                return


def _alive(pid: int) -> bool:
    # Our parent is gone once we have been re-parented, even if the pid was reused.
    return os.getppid() == pid and ownership.pid_alive(pid)


def _check_port_free(host: str, port: int) -> None:
    import errno

    from labtrack.errors import InvalidParameterValue

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InvalidParameterValue(
                    f"port {port} on {host} is already in use; pick another with --port N, "
                    "or --port 0 for a free one") from None
            raise


def serve(settings: Settings) -> int:
    from labtrack.server import log_limits
    from labtrack.server.memory import tune_malloc

    log_limits.configure(settings.log_file)  # rotated; refusals rate-limited; no header values
    tune_malloc()  # before any thread starts: they would each take an arena
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from labtrack.server.workers import check_workers, serve_workers
    from labtrack.store.engine import normalize_url

    n = check_workers(settings, normalize_url(settings.backend_store_uri))
    if settings.expose_prometheus:
        from labtrack.server.metrics import prepare_folder

        prepare_folder(settings.expose_prometheus, clean=True)  # before any process imports the client
    if n > 1:
        def child(sockets: list[socket.socket], index: int) -> int:
            server = Server(settings)
            server.sockets = sockets
            return server.run()
        return serve_workers(settings, n, child)
    return Server(settings).run()
