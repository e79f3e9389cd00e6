"""An artifact root in an S3-compatible bucket: ``s3://bucket/prefix``.

The same interface as :class:`labtrack.artifacts.local.LocalArtifactRoot`
(``write_stream``, ``list``, ``open_read``, ``delete``, ``size``), so the
artifact proxy, the UI's listing and the ``lt`` client's direct mode treat a
bucket like a folder.

* Keys are confined like paths: a client-supplied relative path goes through
  :func:`labtrack.artifacts.paths.check_relative` (no ``..``, no absolute or
  encoded traversal) and is joined under the root's prefix, so no request can
  name a key outside ``prefix/``.
* Nothing buffers a whole file: uploads go out in parts of ``PART_SIZE``
  (one ``PutObject`` when the file is smaller than one part, else a multipart
  upload that is aborted when the upload is dropped), downloads stream
  ``GetObject``'s body.
* The client is configured as MLflow's is: ``MLFLOW_S3_ENDPOINT_URL``,
  ``MLFLOW_S3_IGNORE_TLS``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
  profiles (``AWS_PROFILE``) and the region (``AWS_DEFAULT_REGION``) are read by
  boto3's own credential chain.  boto3 is imported only when a root is opened.
"""

from __future__ import annotations

import os
import threading
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from labtrack.artifacts.paths import AllOrNothing, check_relative
from labtrack.entities import FileInfo
from labtrack.errors import InvalidParameterValue, LabtrackError, ResourceDoesNotExist, require_extra

# 8 MiB parts: S3 wants at least 5 MiB for every part but the last, and at most
# 10,000 parts, so one upload holds up to ~80 GB while memory stays one part.
PART_SIZE = 8 << 20

_clients: dict[tuple[str | None, bool], Any] = {}
_clients_lock = threading.Lock()


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; refuses a URI without a bucket."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidParameterValue(f"Not an S3 URI (s3://bucket/prefix): {uri!r}")
    return parts.netloc, parts.path.strip("/")


def s3_client() -> Any:
    """A boto3 S3 client configured from the environment as MLflow's is (cached)."""
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    ignore_tls = os.environ.get("MLFLOW_S3_IGNORE_TLS", "").strip().lower() in ("1", "true", "yes")
    key = (endpoint, ignore_tls)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            boto3 = require_extra("boto3", "s3", "an s3:// artifact store")
            from botocore.config import Config
            # Signature v4 and the region from AWS_DEFAULT_REGION / the profile, as MLflow.
            config = Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"},
                            max_pool_connections=32)
            client = boto3.session.Session().client("s3", endpoint_url=endpoint,
                                                    verify=not ignore_tls, config=config)
            _clients[key] = client
    return client


def _client_error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _missing(exc: BaseException) -> bool:
    return _client_error_code(exc) in ("404", "NoSuchKey", "NotFound")


class S3Writer(AllOrNothing):
    """A streamed upload of one object; the interface of ``ArtifactWriter``.

    Holds at most one part in memory.  Nothing is visible under the key until
    :meth:`close`: a small file is one ``PutObject`` there, a large one a
    multipart upload that ``close`` completes and :meth:`abort` drops.
    """

    # write() may make a network call: the proxy calls it off the event loop.
    blocking = True

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self._buffer: list[bytes] = []  # chunks of the part being gathered (never more than one part)
        self._buffered = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    def write(self, data: bytes) -> int:
        """Append ``data``; uploads a part whenever a whole one is buffered."""
        if self._done:
            raise ValueError("write to a closed S3Writer")
        self._buffer.append(bytes(data))
        self._buffered += len(data)
        if self._buffered >= PART_SIZE:
            gathered = b"".join(self._buffer)
            self._buffer, self._buffered = [], 0
            for start in range(0, len(gathered) - PART_SIZE + 1, PART_SIZE):
                self._upload_part(gathered[start:start + PART_SIZE])
            rest = gathered[len(gathered) - len(gathered) % PART_SIZE:]
            if rest:
                self._buffer, self._buffered = [rest], len(rest)
        return len(data)

    def _upload_part(self, data: bytes) -> None:
        if self._upload_id is None:
            reply = self._client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self._upload_id = reply["UploadId"]
        number = len(self._parts) + 1
        reply = self._client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                         PartNumber=number, Body=data)
        self._parts.append({"PartNumber": number, "ETag": reply["ETag"]})

    def close(self) -> None:
        """Publish the object under its key; a no-op once finished."""
        if self._done:
            return
        try:
            if self._upload_id is None:
                self._client.put_object(Bucket=self.bucket, Key=self.key, Body=b"".join(self._buffer))
            else:
                if self._buffer:
                    self._upload_part(b"".join(self._buffer))
                self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts})
        except BaseException:
            self.abort()
            raise
        self._buffer, self._buffered = [], 0
        self._done = True

    def abort(self) -> None:
        """Drop the upload: nothing appears under the key."""
        self._done = True
        self._buffer, self._buffered = [], 0
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the bucket's lifecycle rules clean up what stays
                pass


class _Body:
    """GetObject's streaming body with the file methods the proxy uses."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, n: int = -1) -> bytes:
        return bytes(self._body.read(None if n is None or n < 0 else n))

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class S3ArtifactRoot:
    """The objects under ``s3://bucket/prefix``, addressed by confined relative paths."""

    def __init__(self, uri: str, client: Any = None) -> None:
        """Use the bucket and prefix of ``uri``; the client defaults to :func:`s3_client`."""
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._client = client

    def __repr__(self) -> str:
        return f"S3ArtifactRoot({self.uri!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def key(self, rel: str, *, for_write: bool = False) -> str:
        """The object key of ``rel``, confined under the prefix ("" is the prefix itself)."""
        segments = check_relative(rel)
        if for_write and (not segments or rel.rsplit("/", 1)[-1] in ("", ".")):
            raise InvalidParameterValue(f"Invalid artifact path {rel!r}: must name a file")
        return "/".join([self.prefix, *segments] if self.prefix else segments)

    def _folder(self, rel: str) -> str:
        key = self.key(rel)
        return key + "/" if key else ""

    def check(self) -> None:
        """Raise a one-line LabtrackError unless the bucket can be reached."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except LabtrackError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore's errors are many; one line names the cause
            code = _client_error_code(exc) or type(exc).__name__
            raise LabtrackError(f"cannot reach the artifact bucket {self.bucket!r} ({code})",
                                "INVALID_PARAMETER_VALUE") from None

    # -- operations --------------------------------------------------------

    def write_stream(self, rel: str) -> S3Writer:
        """Start an upload to ``rel``; it appears on ``close()``."""
        return S3Writer(self.client, self.bucket, self.key(rel, for_write=True))

    def list(self, rel: str) -> list[FileInfo] | None:
        """Entries directly under the folder ``rel``, sorted; None if there are none (or it is a file)."""
        folder = self._folder(rel)
        infos: dict[str, FileInfo] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
            for common in page.get("CommonPrefixes") or []:
                name = common["Prefix"][len(folder):].rstrip("/")
                if name:
                    infos[name] = FileInfo(path=name, is_dir=True)
            for obj in page.get("Contents") or []:
                name = obj["Key"][len(folder):]
                if name and "/" not in name:  # a folder marker ('x/') names the folder itself
                    infos[name] = FileInfo(path=name, is_dir=False, file_size=int(obj["Size"]))
        if not infos:
            return [] if not check_relative(rel) else None  # the root exists even when empty
        return [infos[k] for k in sorted(infos)]

    def open_read(self, rel: str) -> BinaryIO:
        """A streaming reader of the object ``rel``; the caller closes it."""
        key = self.key(rel)
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _missing(exc) or _client_error_code(exc) == "NoSuchKey":
                raise ResourceDoesNotExist(f"Artifact {rel!r} does not exist") from None
            raise
        return _Body(reply["Body"])  # type: ignore[return-value]

    def size(self, rel: str) -> int:
        """Size in bytes of the object ``rel``."""
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(rel))["ContentLength"])
        except Exception as exc:
            if _missing(exc):
                raise ResourceDoesNotExist(f"Artifact {rel!r} does not exist") from None
            raise

    def delete(self, rel: str) -> None:
        """Delete the object ``rel``, or every object under the folder ``rel``."""
        key = self.key(rel)
        if not check_relative(rel):
            raise InvalidParameterValue(f"Invalid artifact path {rel!r}: it names the artifact root itself")
        keys = [key] if self._exists(key) else []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key + "/"):
            keys += [obj["Key"] for obj in page.get("Contents") or []]
        if not keys:
            raise ResourceDoesNotExist(f"Artifact {rel!r} does not exist")
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys a call
            self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception as exc:
            if _missing(exc):
                return False
            raise
