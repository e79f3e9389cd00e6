"""Confinement of client-supplied artifact paths, and artifact-URI parsing.

A relative artifact path arrives in a URL path that tornado has already
percent-decoded once.  MLflow has had more than ten CVEs where a path escaped
the artifact root through ``..``, absolute paths, encoded or double-encoded
separators, or symlinks (DESIGN decision 5), so this module is strict:

* the lexical check (:func:`check_relative`) refuses traversal in the path as
  given *and* in every further percent-decoding of it, and in the Unicode
  NFKC form of each stage (fullwidth dots and slashes fold to ASCII);
* the filesystem check (:func:`is_within`) is applied by the caller to the
  ``os.path.realpath`` of the candidate, so symlinks out of the root are
  caught wherever they sit in the path.

A leaf module: only the standard library and :mod:`labtrack.errors`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from labtrack.errors import InvalidParameterValue

# Decoding layers we are willing to peel; more than this is an attack, not a file name.
_MAX_DECODE_ROUNDS = 8

# 'C:' at the start of a path makes it absolute (or drive-relative) on Windows.
_DRIVE = re.compile(r"^[A-Za-z]:")

# Where the artifact proxy's files live in an HTTP URL (the UI uses ajax-api).
_HTTP_MARKERS = ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts")


def _refuse(rel: str, why: str) -> InvalidParameterValue:
    shown = rel if len(rel) <= 200 else rel[:200] + "..."
    return InvalidParameterValue(f"Invalid artifact path {shown!r}: {why}")


def _traversal_reason(text: str) -> str | None:
    """Why ``text`` would escape a root when joined to it, or None if it would not."""
    if "\x00" in text:
        return "NUL bytes are not allowed"
    if "\\" in text:
        return "backslashes are not allowed"
    if text.startswith("/"):
        return "absolute paths are not allowed"
    if text.startswith("~"):
        return "'~' (home directory) paths are not allowed"
    if _DRIVE.match(text):
        return "Windows drive letters are not allowed"
    if ".." in text.split("/"):
        return "'..' segments are not allowed"
    return None


def _decoded_stages(rel: str) -> list[str]:
    """``rel`` followed by each further percent-decoding of it, until it stops changing.

    Bytes that are not UTF-8 (``%ab`` in MLflow's ``key%step%N%...`` image
    names, or overlong forms such as ``%c0%ae``) decode to U+FFFD, which can
    never form a traversal; the file keeps its literal name, which nothing
    below us decodes again.  Raises when the layers do not end.
    """
    stages = [rel]
    current = rel
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote_to_bytes(current).decode("utf-8", "replace")
        if decoded == current:
            return stages
        stages.append(decoded)
        current = decoded
    raise _refuse(rel, "too many layers of percent-encoding")


def check_relative(rel: str) -> list[str]:
    """Validate a client-supplied relative path and return its segments.

    Empty and ``.`` segments are dropped, so ``""`` (the root itself) gives
    ``[]``.  Raises :class:`InvalidParameterValue` for any form of traversal,
    in the path itself or in any percent-decoded or NFKC-folded form of it.
    The returned segments are those of ``rel`` as given: decoding is only for
    the check, a file may legitimately be called ``a%20b.txt``.
    """
    if not isinstance(rel, str):
        raise InvalidParameterValue(f"Invalid artifact path {rel!r}: expected a string")
    for stage in _decoded_stages(rel):
        for form in (stage, unicodedata.normalize("NFKC", stage)):
            reason = _traversal_reason(form)
            if reason is not None:
                raise _refuse(rel, reason)
    return [seg for seg in rel.split("/") if seg not in ("", ".")]


def is_within(root: Path, real: str | os.PathLike[str]) -> bool:
    """True if the already-resolved path ``real`` is ``root`` or below it."""
    real_path = Path(real)
    return real_path == root or root in real_path.parents


def mlflow_artifacts_rel(uri: str) -> str | None:
    """Map an artifact-proxy URI to the relative path under the artifact root.

    ``mlflow-artifacts:/X``, ``mlflow-artifacts://host:port/X`` and
    ``http(s)://host/<prefix>/api/2.0/mlflow-artifacts/artifacts/X`` all give
    ``X`` (percent-decoded once, as the server would see it over HTTP); any
    other URI gives None.  The result is not yet confined: pass it to
    ``LocalArtifactRoot.resolve``.
    """
    if not isinstance(uri, str):
        return None
    parts = urlsplit(uri)
    if parts.scheme == "mlflow-artifacts":
        return unquote(parts.path).lstrip("/")
    if parts.scheme in ("http", "https"):
        for marker in _HTTP_MARKERS:
            idx = parts.path.find(marker)
            if idx < 0:
                continue
            rest = parts.path[idx + len(marker):]
            # The marker must end at a segment boundary: '.../artifactsX' is another endpoint.
            if rest and not rest.startswith("/"):
                continue
            return unquote(rest).lstrip("/")
    return None


class AllOrNothing:
    """A writer used as a context manager: ``close()`` commits it, an exception ``abort()``s it.

    Every artifact writer (a local temp file, an S3 multipart upload) lands whole or not at all.
    """

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):  # type: ignore[no-untyped-def]  # the subclass itself
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
