"""The proxied artifact service (reference §1 "Artifact calls", §2.5).

Uploads are streamed to a temporary file and renamed into place when the body
is complete, so a dropped connection never leaves a half-written artifact.
Every path goes through the artifact root's confinement first.
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Any

from tornado import web

from labtrack.artifacts.paths import mlflow_artifacts_rel
from labtrack.errors import InvalidParameterValue, ResourceDoesNotExist
from labtrack.server.args import Args
from labtrack.server.base import BaseHandler, ServerContext

CHUNK = 1 << 20
MAX_UPLOAD = 1 << 40


def query_text(handler: BaseHandler, name: str) -> str:
    """A query argument exactly as sent (percent-decoded once).

    Tornado's ``get_query_argument`` turns control characters into spaces and
    strips whitespace, so ``?path=%00`` would list the root; artifact paths must
    reach the confinement check unaltered.
    """
    values = handler.request.query_arguments.get(name)
    return handler.decode_argument(values[-1], name=name) if values else ""


def _root(ctx: ServerContext) -> Any:
    if ctx.artifacts is None:
        raise ResourceDoesNotExist("This server does not serve artifacts (started with --no-serve-artifacts).")
    return ctx.artifacts


async def send_file(handler: BaseHandler, root: Any, rel: str) -> None:
    """Stream one artifact in chunks, off the event loop."""
    f = await handler.run(root.open_read, rel)
    try:
        ctype = mimetypes.guess_type(posixpath.basename(rel))[0] or "application/octet-stream"
        handler.set_header("Content-Type", ctype)
        # Never let a logged HTML or SVG file run as a page on our origin.
        handler.set_header("X-Content-Type-Options", "nosniff")
        handler.set_header("Content-Security-Policy", "sandbox")
        while data := await handler.run(f.read, CHUNK):
            handler.write(data)
            await handler.flush()
    finally:
        f.close()
    handler.finish()


@web.stream_request_body
class ArtifactHandler(BaseHandler):
    """GET (download, or list with ?path=), PUT (streamed upload), DELETE."""

    def initialize(self, ctx: ServerContext, **kwargs: Any) -> None:
        super().initialize(ctx)
        self.writer: Any = None
        self.failed: Exception | None = None

    def prepare(self) -> None:
        super().prepare()
        auth = self.ctx.extra.get("auth")
        if auth is not None:  # basic-auth: the experiment is the path's first folder
            auth.check_artifact(self.request, self.path_args[0] if self.path_args else query_text(self, "path"))
        if self.request.method == "PUT":
            self.request.connection.set_max_body_size(MAX_UPLOAD)
            rel = self.path_args[0] if self.path_args else ""
            if not rel:
                raise InvalidParameterValue("An artifact upload needs a file path.")
            self.writer = _root(self.ctx).write_stream(rel)

    def data_received(self, chunk: bytes) -> Any:
        if self.writer is not None and self.failed is None:
            if getattr(self.writer, "blocking", False):
                # A bucket's writer uploads a part now and then: off the event loop, and
                # the connection reads no further until it is done (one part in memory).
                return self._write_off_loop(self.writer, chunk)
            try:
                self.writer.write(chunk)
            except OSError as e:
                self.failed = e
        return None

    async def _write_off_loop(self, writer: Any, chunk: bytes) -> None:
        try:
            await self.run(writer.write, chunk)
        except Exception as e:  # noqa: BLE001 - answered by put() as an error reply
            self.failed = e

    def on_connection_close(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None

    async def put(self, rel: str) -> None:
        writer, self.writer = self.writer, None
        if self.failed is not None:
            writer.abort()
            raise self.failed
        await self.run(writer.close)
        self.write_json({})

    async def get(self, rel: str = "") -> None:
        root = _root(self.ctx)
        if not rel:
            listing = await self.run(root.list, query_text(self, "path"))
            self.write_json({} if listing is None else {"files": [f.to_json() for f in listing]})
            return
        await send_file(self, root, rel)

    async def delete(self, rel: str = "") -> None:
        if not rel:
            raise InvalidParameterValue("An artifact delete needs a path.")
        await self.run(_root(self.ctx).delete, rel)
        self.write_json({})


def run_artifact_place(ctx: ServerContext, run_id: str, path: str) -> tuple[Any, str]:
    """(artifact root, relative path) of ``path`` inside a run's artifacts.

    A proxied run (``mlflow-artifacts:/``) is under the served root; a run whose
    clients write to a bucket themselves (``s3://``, direct mode) is read from
    that bucket, with ``path`` confined under the run's own prefix.
    """
    run = ctx.store.get_run(run_id)
    uri = run.info.artifact_uri
    base = mlflow_artifacts_rel(uri)
    if base is not None:
        return _root(ctx), posixpath.join(base, path) if path else base
    if uri.startswith("s3://"):
        from labtrack.artifacts.s3 import S3ArtifactRoot

        return S3ArtifactRoot(uri), path
    raise InvalidParameterValue(f"The artifacts of run {run_id} are not served by this server ({uri}).")


def list_run_artifacts(ctx: ServerContext, a: Args) -> dict[str, Any]:
    """``artifacts/list``: a run's artifacts, paths relative to the run's root."""
    run_id = a.run_id()
    path = a.str("path") or ""
    run = ctx.store.get_run(run_id)
    root, rel = run_artifact_place(ctx, run_id, path)
    listing = root.list(rel) or []
    files = []
    for f in listing:
        d = f.to_json()
        d["path"] = posixpath.join(path, f.path) if path else f.path
        files.append(d)
    return {"root_uri": run.info.artifact_uri, "files": files}


class RunArtifactHandler(BaseHandler):
    """``GET get-artifact?run_uuid=&path=``: the UI's download of one run artifact."""

    async def get(self) -> None:
        run_id = query_text(self, "run_uuid") or query_text(self, "run_id")
        path = query_text(self, "path")
        if not run_id or not path:
            raise InvalidParameterValue("get-artifact needs run_uuid and path")
        auth = self.ctx.extra.get("auth")
        if auth is not None:
            await self.run(auth.check_artifact, self.request, "", run_id)
        root, rel = await self.run(run_artifact_place, self.ctx, run_id, path)
        await send_file(self, root, rel)


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("artifacts/list", {"GET": list_run_artifacts}),
]
