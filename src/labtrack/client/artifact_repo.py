"""A run's artifacts, reached through the server's proxied artifact service.

``mlflow-artifacts:/X`` maps to ``<tracking server>/api/2.0/mlflow-artifacts/artifacts/X``
(``mlflow-artifacts://host:port/X`` names another server).  A plain local
path or an ``s3://`` URI (a server started with ``--no-serve-artifacts``) is
written directly, as MLflow's client does (``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from labtrack.client.transport import Transport
from labtrack.entities import FileInfo
from labtrack.errors import LabtrackError, ResourceDoesNotExist

ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


def _join(*parts: str | None) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class ArtifactRepo:
    """Upload, list and download the artifacts under one artifact URI."""

    def __init__(self, transport: Transport, artifact_uri: str) -> None:
        self.artifact_uri = artifact_uri
        self.local_root: Path | None = None
        self.transport = transport
        self.root = ""
        self.bucket: Any = None  # an S3ArtifactRoot in direct mode
        if artifact_uri.startswith("mlflow-artifacts:"):
            parts = urlsplit(artifact_uri)
            if parts.netloc:
                base = f"{'https' if transport.endpoint.scheme == 'https' else 'http'}://{parts.netloc}"
                self.transport = Transport.from_uri(base, auth=transport.auth)
            self.root = parts.path.strip("/")
        elif artifact_uri.startswith(("http://", "https://")) and ARTIFACTS_API in artifact_uri:
            base, _, rel = artifact_uri.partition(ARTIFACTS_API)
            self.transport = Transport.from_uri(base, auth=transport.auth)
            self.root = rel.strip("/")
        elif artifact_uri.startswith("s3://"):
            # Direct mode: the server handed out a bucket; write it ourselves, as MLflow's client.
            from labtrack.artifacts.s3 import S3ArtifactRoot

            self.bucket = S3ArtifactRoot(artifact_uri)
        elif artifact_uri.startswith("file://") or artifact_uri.startswith("/"):
            self.local_root = Path(urlsplit(artifact_uri).path if "://" in artifact_uri
                                   else artifact_uri)
        else:
            raise LabtrackError(f"unsupported artifact URI {artifact_uri!r}", "INVALID_PARAMETER_VALUE")

    def _url(self, rel: str) -> str:
        return f"{ARTIFACTS_API}/{quote(_join(self.root, rel), safe='/')}"

    # -- upload -----------------------------------------------------------------------
    def log_file(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Upload one file into ``artifact_path`` (a folder under the run's root)."""
        local = Path(local_path)
        rel = _join(artifact_path, local.name)
        if self.local_root is not None:
            target = self.local_root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
            return
        if self.bucket is not None:
            with open(local, "rb") as source, self.bucket.write_stream(rel) as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
            return
        size = local.stat().st_size
        with open(local, "rb") as body:
            status, data = self.transport.request_raw(
                "PUT", self._url(rel), body,
                {"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        _check(status, data)

    def log_dir(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Upload the contents of ``local_dir`` (recursively) into ``artifact_path``."""
        root = Path(local_dir)
        if not root.is_dir():
            raise LabtrackError(f"{root} is not a directory", "INVALID_PARAMETER_VALUE")
        for folder, _dirs, files in os.walk(root):
            rel_dir = Path(folder).relative_to(root).as_posix()
            for name in sorted(files):
                self.log_file(Path(folder) / name, _join(artifact_path,
                                                         "" if rel_dir == "." else rel_dir))

    # -- list and download ------------------------------------------------------------
    def list(self, path: str | None = None) -> list[FileInfo]:
        """The entries directly under ``path``; paths are relative to the run's root."""
        path = _join(path)
        if self.local_root is not None:
            folder = self.local_root / path
            if not folder.is_dir():
                return []
            return [FileInfo(_join(path, p.name), p.is_dir(),
                             None if p.is_dir() else p.stat().st_size)
                    for p in sorted(folder.iterdir())]
        if self.bucket is not None:
            return [FileInfo(_join(path, f.path), f.is_dir, f.file_size)
                    for f in self.bucket.list(path) or []]
        reply = self.transport.call("GET", "", {"path": _join(self.root, path)},
                                    api=ARTIFACTS_API)
        files = [FileInfo(_join(path, f["path"]), bool(f.get("is_dir", False)),
                          None if f.get("is_dir") else int(f.get("file_size") or 0))
                 for f in reply.get("files") or []]
        return sorted(files, key=lambda f: f.path)

    def download(self, path: str, dst_dir: str | os.PathLike) -> str:
        """Download ``path`` (a file or a folder) under ``dst_dir``; return the local path."""
        path = _join(path)
        dst = Path(dst_dir)
        entries = self.list(path)
        if not entries and path:
            self._download_file(path, dst / path)
            return str(dst / path)
        (dst / path).mkdir(parents=True, exist_ok=True)
        for entry in entries:
            if entry.is_dir:
                self.download(entry.path, dst)
            else:
                self._download_file(entry.path, dst / entry.path)
        return str(dst / path) if path else str(dst)

    def _download_file(self, rel: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.local_root is not None:
            source = self.local_root / rel
            if not source.is_file():
                raise ResourceDoesNotExist(f"no artifact {rel!r} in {self.artifact_uri}")
            shutil.copyfile(source, target)
            return
        partial = target.with_name(target.name + ".part")
        if self.bucket is not None:
            with self.bucket.open_read(rel) as source, open(partial, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            partial.replace(target)
            return
        partial = target.with_name(target.name + ".part")
        with open(partial, "wb") as out:
            status, data = self.transport.request_raw("GET", self._url(rel), stream_to=out)
        if status != 200:
            partial.unlink(missing_ok=True)
            if status == 404:
                raise ResourceDoesNotExist(f"no artifact {rel!r} in {self.artifact_uri}")
            _check(status, data)
        partial.replace(target)


def _check(status: int, data: bytes) -> None:
    if status != 200:
        from labtrack.client.transport import decode_reply

        decode_reply(status, data)


def file_sizes(repo: Any, path: str = "") -> dict[str, int]:
    """Every file under ``path`` of an artifact repo, with its size."""
    out: dict[str, int] = {}
    try:
        entries = repo.list(path or None)
    except ResourceDoesNotExist:
        return out
    for entry in entries:
        if entry.is_dir:
            out.update(file_sizes(repo, entry.path))
        else:
            out[entry.path] = int(entry.file_size or 0)
    return out
