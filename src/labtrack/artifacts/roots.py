"""Which artifact root a URI names, and which URIs a server can serve.

A server serves a local folder or an S3-compatible bucket.  Anything else
(``gs://``, ``wasbs://``, ``hdfs://``...) is refused when the server starts, in
one line, and a remote URI never turns into a local path: ``s3://b/p`` is a
bucket, never a folder called ``s3:``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from labtrack.errors import InvalidParameterValue

# Schemes a run's artifact location may have on a labtrack server.
SERVED_SCHEMES = ("", "file", "s3", "mlflow-artifacts")


def scheme(uri: str) -> str:
    """The URI's scheme, "" for a plain path (``C:\\x`` style drive letters included)."""
    parts = urlsplit(uri)
    return parts.scheme if len(parts.scheme) > 1 else ""


def is_remote(uri: str) -> bool:
    """True for a URI that names something other than a local path."""
    return scheme(uri) not in ("", "file")


def check_served(uri: str, what: str) -> None:
    """Refuse a URI scheme labtrack cannot serve, in one line naming ``what`` (a flag)."""
    if scheme(uri) not in SERVED_SCHEMES:
        raise InvalidParameterValue(
            f"{what} {uri!r}: labtrack serves artifacts from a local folder or an S3-compatible "
            f"bucket (s3://bucket/prefix), not {scheme(uri)}://")


def open_root(uri: str) -> Any:
    """A ``LocalArtifactRoot`` or ``S3ArtifactRoot`` for a destination (path, file:// or s3://)."""
    check_served(uri, "--artifacts-destination")
    kind = scheme(uri)
    if kind == "s3":
        from labtrack.artifacts.s3 import S3ArtifactRoot

        return S3ArtifactRoot(uri)
    if kind == "mlflow-artifacts":
        raise InvalidParameterValue(f"--artifacts-destination {uri!r}: expected a folder or s3://bucket/prefix")
    from labtrack.artifacts.local import LocalArtifactRoot

    return LocalArtifactRoot(urlsplit(uri).path if kind == "file" else os.path.expanduser(uri))
