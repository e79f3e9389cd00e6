"""Confinement of model-version sources to this server's artifact store.

A model version's ``source`` is where clients will later download the model
from.  MLflow accepted arbitrary sources and had a run of CVEs for it
(CVE-2023-1177 and its kin: ``file:///etc``, ``..`` hidden behind percent
encodings, ``http://`` to other hosts).  Here a source must name something
inside this server's artifact store, in one of these forms:

* ``models:/<model_id>``: an existing logged model;
* ``models:/<name>/<version|stage>`` or ``models:/<name>@<alias>``: an
  existing registered version (``copy_model_version``), stored as
  ``models:/<name>/<n>``;
* ``runs:/<run_id>/<path>``: an existing run, the path confined;
* ``mlflow-artifacts:/<path>``: the artifact proxy, the path confined;
* a URI under the default artifact root, or under the artifact location of the
  run (``run_id``) or logged model (``model_id``) the request names.

Everything else is refused with INVALID_PARAMETER_VALUE.  The lexical checks
run first and apply to every form, so an accepted prefix never carries a
query, a fragment, a control character or a ``..`` segment in any
percent-decoded or NFKC-folded form.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from sqlalchemy import Connection, select

from labtrack.artifacts.paths import check_relative
from labtrack.errors import InvalidParameterValue
from labtrack.registry_entities import DELETED_STAGE, STAGES
from labtrack.store import schema as s
from labtrack.store.registry_rules import canonical_stage, check_alias, check_model_name
from labtrack.store.validation import check_run_id

# Prompt versions (mlflow.genai) carry no files: their source is one of these placeholders.
PROMPT_TAG = "mlflow.prompt.is_prompt"
PROMPT_SOURCES = frozenset({"dummy-source", "prompt-template"})
SOURCE_LIMIT = 8192  # longer than any real URI; a longer one is an attack or a mistake
_MAX_DECODE_ROUNDS = 8
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_MODEL_ID = re.compile(r"^m-[A-Za-z0-9_\-]{1,62}$")
# Characters that would let a URI mean something other than its path.
_FORBIDDEN = ("?", "#", "\\", "\x00")


@dataclass(frozen=True)
class ParsedSource:
    """What a source names, before the database is asked whether it exists."""

    kind: str  # "logged_model" | "model_version" | "run" | "proxy" | "uri"
    text: str
    model_id: str | None = None
    run_id: str | None = None
    name: str | None = None
    ref: str | None = None  # for model_version: digits, a canonical stage, or "@alias"


@dataclass(frozen=True)
class ResolvedSource:
    """A source that was accepted, with the run and logged model it came from."""

    source: str
    run_id: str | None
    model_id: str | None


def refuse(source: Any, why: str) -> InvalidParameterValue:
    shown = source if not isinstance(source, str) or len(source) <= 200 else source[:200] + "..."
    return InvalidParameterValue(
        f"Invalid model version source {shown!r}: {why}. A source must lie inside this server's "
        "artifact store: models:/<model_id>, runs:/<run_id>/<path>, mlflow-artifacts:/<path>, "
        "or a URI under the artifact location of a run or logged model of this server.")


def _stages(source: str) -> list[str]:
    """``source``, each further percent-decoding of it, and the NFKC form of each."""
    out, current = [], source
    for _ in range(_MAX_DECODE_ROUNDS):
        out += [current, unicodedata.normalize("NFKC", current)]
        try:
            decoded = unquote_to_bytes(current).decode("utf-8")
        except UnicodeError:
            raise refuse(source, "malformed percent-encoding or invalid UTF-8") from None
        if decoded == current:
            return out
        current = decoded
    raise refuse(source, "too many layers of percent-encoding")


def _lexical_checks(source: Any) -> str:
    if not isinstance(source, str) or source == "":
        raise InvalidParameterValue("Missing value for required parameter 'source'")
    if len(source) > SOURCE_LIMIT:
        raise refuse(source, f"longer than {SOURCE_LIMIT} characters")
    if source != source.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in source):
        raise refuse(source, "control characters and surrounding whitespace are not allowed")
    for form in _stages(source):
        bad = next((c for c in _FORBIDDEN if c in form), None)
        if bad is not None:
            raise refuse(source, f"{bad!r} is not allowed (in the source or a decoding of it)")
        if ".." in form.split("/"):
            raise refuse(source, "'..' segments are not allowed")
    return source


def _confined(source: str, path: str, *, allow_empty: bool) -> str:
    """Confine a path part with the artifact root's rules; returns it unchanged."""
    try:
        segments = check_relative(path)
    except InvalidParameterValue as e:
        raise refuse(source, e.message) from None
    if not segments and not allow_empty:
        raise refuse(source, "the path names the root of the artifact store itself")
    return path


def parse_source(source: Any) -> ParsedSource:
    """Classify ``source`` and apply every check that needs no database."""
    text = _lexical_checks(source)
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m else ""
    rest = text[m.end():] if m else text
    if scheme in ("models", "runs", "mlflow-artifacts"):
        if not rest.startswith("/"):
            raise refuse(text, f"a {scheme}: URI must continue with '/'")
        if rest.startswith("//"):
            if scheme == "mlflow-artifacts":  # a host: only under a configured root
                return ParsedSource("uri", text)
            raise refuse(text, f"a {scheme}: URI cannot name a host")
        body = rest[1:]
    if scheme == "models":
        return _parse_models(text, body)
    if scheme == "runs":
        run_id, _, path = body.partition("/")
        try:
            check_run_id(run_id)
        except InvalidParameterValue:
            raise refuse(text, "the run ID is malformed") from None
        _confined(text, path, allow_empty=True)  # runs:/<id> alone is the run's whole root
        return ParsedSource("run", text, run_id=run_id)
    if scheme == "mlflow-artifacts":
        _confined(text, body, allow_empty=False)
        return ParsedSource("proxy", text)
    return ParsedSource("uri", text)


def _parse_models(text: str, body: str) -> ParsedSource:
    if _MODEL_ID.match(body):
        return ParsedSource("logged_model", text, model_id=body)
    try:
        if "/" not in body and "@" in body:
            name, alias = body.rsplit("@", 1)
            return ParsedSource("model_version", text, name=check_model_name(name),
                                ref="@" + check_alias(alias, reserved_ok=True))
        name, sep, ref = body.partition("/")
        if sep and "/" not in ref:
            check_model_name(name)
            if ref.isdigit():
                return ParsedSource("model_version", text, name=name, ref=str(int(ref)))
            if ref.lower() == "latest":
                return ParsedSource("model_version", text, name=name, ref="latest")
            return ParsedSource("model_version", text, name=name, ref=canonical_stage(ref))
    except InvalidParameterValue as e:
        raise refuse(text, e.message) from None
    raise refuse(text, "expected models:/<model_id>, models:/<name>/<version> or models:/<name>@<alias>")


def _split(uri: str) -> tuple[str, str, list[str]]:
    """(scheme, authority, path segments), scheme and authority lower-cased; '' when absent."""
    m = _SCHEME.match(uri)
    scheme = m.group(1).lower() if m else ""
    rest = uri[m.end():] if m else uri
    authority = ""
    if rest.startswith("//"):
        authority, _, path = rest[2:].partition("/")
        rest = "/" + path
    return scheme, authority.lower(), [seg for seg in rest.split("/") if seg]


def under_root(source: str, root: str | None, *, allow_root_itself: bool) -> bool:
    """True if ``source`` lies segment-wise under ``root`` and the rest is a confined path.

    Segments are compared as given (not decoded): an encoded variant of the
    root's own path is not the root, and an encoded ``..`` after it is refused.
    """
    if not root:
        return False
    s_scheme, s_auth, s_segs = _split(source)
    r_scheme, r_auth, r_segs = _split(root)
    if (s_scheme, s_auth) != (r_scheme, r_auth) or s_segs[:len(r_segs)] != r_segs:
        return False
    rest = "/".join(s_segs[len(r_segs):])
    if not rest and not allow_root_itself:
        return False
    try:
        check_relative(rest)
    except InvalidParameterValue:
        return False
    return True


# -- resolution against the database -------------------------------------------


def _logged_model(conn: Connection, model_id: str) -> Any:
    return conn.execute(select(s.logged_models).where(s.logged_models.c.model_id == model_id)).first()


def _run(conn: Connection, run_id: str) -> Any:
    return conn.execute(select(s.runs).where(s.runs.c.run_uuid == run_id)).first()


def find_version(conn: Connection, name: str, ref: str) -> Any:
    """The live version row that ``ref`` (digits, a stage, 'latest' or '@alias') names, or None."""
    mv = s.model_versions
    live = [mv.c.name == name, mv.c.current_stage != DELETED_STAGE]
    if ref.startswith("@"):
        alias = s.registered_model_aliases
        row = conn.execute(select(alias.c.version).where(
            alias.c.name == name, alias.c.alias == ref[1:])).first()
        if row is None:
            return None
        live.append(mv.c.version == row.version)
    elif ref.isdigit():
        live.append(mv.c.version == int(ref))
    elif ref in STAGES:
        live.append(mv.c.current_stage == ref)
    return conn.execute(select(mv).where(*live).order_by(mv.c.version.desc()).limit(1)).first()


def resolve_source(conn: Connection, source: Any, run_id: str | None, model_id: str | None,
                   default_root: str | None, *, is_prompt: bool = False) -> ResolvedSource:
    """Accept ``source`` for a new model version, or raise InvalidParameterValue.

    ``run_id`` and ``model_id`` are the request's own fields: when given they
    must exist and agree with the source; when absent they are filled in from
    what the source names.  A prompt version (``is_prompt``) has no files and
    only a placeholder source, as in MLflow.
    """
    if is_prompt:
        if source not in PROMPT_SOURCES:
            raise refuse(source, "a prompt version's source must be one of " + ", ".join(sorted(PROMPT_SOURCES)))
        return ResolvedSource(source, run_id, model_id)
    parsed = parse_source(source)
    text = parsed.text
    run = lm = None
    if run_id:
        try:
            check_run_id(run_id)
        except InvalidParameterValue:
            raise refuse(text, f"run_id {run_id[:80]!r} is malformed") from None
        if (run := _run(conn, run_id)) is None:
            raise refuse(text, f"run_id {run_id!r} names no run of this server")
    if model_id:
        if (lm := _logged_model(conn, model_id)) is None:
            raise refuse(text, f"model_id {model_id[:80]!r} names no logged model of this server")

    if parsed.kind == "logged_model":
        assert parsed.model_id is not None
        if model_id and model_id != parsed.model_id:
            raise refuse(text, f"it names logged model {parsed.model_id!r} but model_id is {model_id!r}")
        if (lm := lm or _logged_model(conn, parsed.model_id)) is None:
            raise refuse(text, "it names no logged model of this server")
        return ResolvedSource(text, run_id or lm.source_run_id, parsed.model_id)
    if parsed.kind == "run":
        assert parsed.run_id is not None
        if run_id and run_id != parsed.run_id:
            raise refuse(text, f"it names run {parsed.run_id!r} but run_id is {run_id!r}")
        if run is None and _run(conn, parsed.run_id) is None:
            raise refuse(text, "it names no run of this server")
        return ResolvedSource(text, parsed.run_id, model_id)
    if parsed.kind == "model_version":
        assert parsed.name is not None and parsed.ref is not None
        row = find_version(conn, parsed.name, parsed.ref)
        if row is None:
            raise refuse(text, "it names no registered model version of this server")
        if (run_id and run_id != row.run_id) or (model_id and model_id != row.model_id):
            raise refuse(text, "run_id and model_id must match the referenced model version")
        return ResolvedSource(f"models:/{row.name}/{row.version}", run_id or row.run_id,
                              model_id or row.model_id)
    if parsed.kind == "proxy":
        return ResolvedSource(text, run_id, model_id)
    # Any other URI or path: only under a root this server itself hands out, and for a
    # local path also on disk (a symlink inside the root may lead out).
    if default_root and under_root(text, default_root, allow_root_itself=False):
        roots = [default_root]
    else:
        roots = [root for root in (run.artifact_uri if run is not None else None,
                                   lm.artifact_location if lm is not None else None)
                 if root and under_root(text, root, allow_root_itself=True)]
    if roots:
        from labtrack.store.artifact_locations import real_within

        anchor = default_root or roots[0]
        if not all(real_within(text, root) for root in roots) or not real_within(text, anchor):
            raise refuse(text, "it leads outside the artifact store (symlink)")
        return ResolvedSource(text, run_id, model_id)
    scheme = _split(text)[0]
    why = ("a local path outside the artifact store" if scheme in ("", "file")
           else f"a {scheme}: URI outside this server's artifact store")
    raise refuse(text, why)
