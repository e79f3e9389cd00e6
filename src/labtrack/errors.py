"""Exception types and MLflow's error codes.

A leaf module: the store, the server and the client all raise these, and the
server renders them as MLflow's error JSON (``{"error_code", "message"}``)
with the HTTP status that the code maps to.
"""

from __future__ import annotations

from typing import Any

# One table: MLflow error code -> HTTP status (reference §1).
HTTP_STATUS: dict[str, int] = {
    "INVALID_PARAMETER_VALUE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "BAD_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "CUSTOMER_UNAUTHORIZED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "NOT_FOUND": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_CONFLICT": 409,
    "ABORTED": 409,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL_ERROR": 500,
    "INVALID_STATE": 500,
    "DATA_LOSS": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
}

# When a reply is not MLflow's error JSON, its status says what happened.
_CODE_FOR_STATUS = {404: "ENDPOINT_NOT_FOUND", 400: "BAD_REQUEST", 401: "UNAUTHENTICATED",
                    403: "PERMISSION_DENIED", 405: "BAD_REQUEST", 500: "INTERNAL_ERROR",
                    503: "TEMPORARILY_UNAVAILABLE"}


class LabtrackError(Exception):
    """Base error; carries an MLflow error code and its HTTP status."""

    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.error_code, 500)

    def to_json(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"


class InvalidParameterValue(LabtrackError):
    """Bad input: a wrong type, a value over a limit, a malformed filter."""

    error_code = "INVALID_PARAMETER_VALUE"


class ResourceDoesNotExist(LabtrackError):
    """An unknown experiment, run, model or artifact."""

    error_code = "RESOURCE_DOES_NOT_EXIST"


class ResourceAlreadyExists(LabtrackError):
    """A name that is already taken (experiments, registered models)."""

    error_code = "RESOURCE_ALREADY_EXISTS"


class InvalidState(LabtrackError):
    """The request is valid but the object's state forbids it (a deleted run)."""

    error_code = "INVALID_STATE"


class BadRequest(LabtrackError):
    """A request that cannot be parsed at all (malformed JSON)."""

    error_code = "BAD_REQUEST"


class Unauthenticated(LabtrackError):
    """A missing or wrong token."""

    error_code = "UNAUTHENTICATED"


class DatabaseInUse(LabtrackError):
    """Another labtrack server owns the database."""

    error_code = "RESOURCE_CONFLICT"


class TransientError(LabtrackError):
    """The server was unreachable or overloaded; the write may be retried."""

    error_code = "TEMPORARILY_UNAVAILABLE"


class SpoolReadError(LabtrackError):
    """A read asked of a client that spools its writes (no server is reachable).

    Spooled writes reach the database when a server or ``labtrack sync``
    ingests the spool files; only then can they be read back.
    """

    error_code = "TEMPORARILY_UNAVAILABLE"


class MlflowDataFound(LabtrackError):
    """The database (or folder) holds MLflow's data, which labtrack never opens for writing.

    The message is one line: what was found (and the MLflow version its schema
    belongs to) and the ``labtrack import`` command that copies it.
    """

    error_code = "INVALID_STATE"

    def __init__(self, message: str, path: str = "", revision: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.revision = revision


class MissingExtra(LabtrackError):
    """An optional dependency is not installed; the message names the extra that brings it.

    The CLI prints it as one line; the server answers it as MLflow's error JSON.
    """

    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str, module: str = "", extra: str = "") -> None:
        super().__init__(message)
        self.module = module
        self.extra = extra


def require_extra(module: str, extra: str, purpose: str, package: str | None = None) -> Any:
    """``import module``, or raise ``MissingExtra`` saying ``pip install 'labtrack[extra]'``.

    ``purpose`` says what needed it ("a postgresql:// database"), ``package`` the
    name pip knows it by when that differs (``scikit-learn`` for ``sklearn``).
    Only the module itself being absent is turned into the one line: an import
    that fails inside the package (a broken install) keeps its own error.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        root = module.split(".")[0]
        if (e.name or "").split(".")[0] != root and _installed(root):
            raise  # the package is there but fails inside (a dependency of its own is broken)
        raise MissingExtra(f"{purpose} needs {package or module.split('.')[0]}, which is not "
                           f"installed: pip install 'labtrack[{extra}]'", module, extra) from None


def _installed(package: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules (None there)
        return False


_BY_CODE: dict[str, type[LabtrackError]] = {
    cls.error_code: cls
    for cls in (InvalidParameterValue, ResourceDoesNotExist, ResourceAlreadyExists,
                InvalidState, BadRequest, Unauthenticated, TransientError)
}


def error_from_response(status: int, body: object) -> LabtrackError:
    """Rebuild a typed error from an HTTP reply (used by the client)."""
    if isinstance(body, dict) and "error_code" in body:
        code = str(body.get("error_code"))
        message = str(body.get("message", ""))
    else:
        code = _CODE_FOR_STATUS.get(status, "INTERNAL_ERROR")
        message = f"HTTP {status}"
        if isinstance(body, (str, bytes)) and body:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            message = f"HTTP {status}: {text[:500]}"
    cls = _BY_CODE.get(code, LabtrackError)
    err = cls(message, code)
    return err
