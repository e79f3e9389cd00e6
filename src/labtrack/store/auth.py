"""Users and their permissions, as MLflow's basic-auth app keeps them (``--app-name basic-auth``).

Passwords are stored only as argon2id hashes (argon2-cffi); a password never
reaches a log, an error message or a reply.  There is no default user: the
first admin is created on the command line (``labtrack users create --admin``).

A permission is one of READ, USE, EDIT, MANAGE or DENY on one experiment
(``resource_type="experiment"``, its id) or one registered model
(``"registered_model"``, its name); a user without a grant on a resource gets
the server's default permission (READ, as MLflow's default; NO_PERMISSIONS
makes every resource invisible until granted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from labtrack.errors import (
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    require_extra,
)
from labtrack.store import schema as s

T = TypeVar("T")

RESOURCE_TYPES = ("experiment", "registered_model")
_MIN_PASSWORD = 8


@dataclass(frozen=True)
class Permission:
    """What a permission allows; the names and capabilities of MLflow's."""

    name: str
    can_read: bool
    can_use: bool
    can_update: bool
    can_delete: bool
    can_manage: bool


PERMISSIONS: dict[str, Permission] = {p.name: p for p in (
    Permission("READ", True, False, False, False, False),
    Permission("USE", True, True, False, False, False),
    Permission("EDIT", True, True, True, False, False),
    Permission("MANAGE", True, True, True, True, True),
    Permission("DENY", False, False, False, False, False),
    Permission("NO_PERMISSIONS", False, False, False, False, False),
)}

# What a grant on one resource may be (MLflow 3.17): NO_PERMISSIONS is only a
# server default; "no access" to one resource is DENY.
GRANTABLE = ("READ", "USE", "EDIT", "MANAGE", "DENY")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_admin: bool
    password_hash: str

    def to_json(self) -> dict[str, Any]:
        """MLflow's user JSON; the hash never leaves the server."""
        return {"id": self.id, "username": self.username, "is_admin": self.is_admin}


def permission(name: Any) -> Permission:
    """The Permission called ``name``; INVALID_PARAMETER_VALUE otherwise."""
    if not isinstance(name, str) or name not in PERMISSIONS:
        raise InvalidParameterValue(
            f"Invalid permission {name!r}: expected one of {', '.join(PERMISSIONS)}")
    return PERMISSIONS[name]


def check_resource_type(resource_type: Any) -> str:
    if resource_type not in RESOURCE_TYPES:
        raise InvalidParameterValue(
            f"Invalid resource_type {resource_type!r}: expected one of {', '.join(RESOURCE_TYPES)}")
    return str(resource_type)


def _hasher() -> Any:
    argon2 = require_extra("argon2", "auth", "users and passwords", package="argon2-cffi")
    return argon2.PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; the parameters travel in the hash)."""
    return str(_hasher().hash(password))


def verify_password(password_hash: str, password: str) -> bool:
    """True if ``password`` matches ``password_hash``; never raises for a wrong password."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def _check_username(username: Any) -> str:
    if not isinstance(username, str) or not username or len(username) > 255 or ":" in username:
        raise InvalidParameterValue("A username must be 1-255 characters without ':'.")
    return username


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or not password:
        raise InvalidParameterValue("Username and password cannot be empty.")
    if len(password) < _MIN_PASSWORD:
        raise InvalidParameterValue(f"A password needs at least {_MIN_PASSWORD} characters.")
    return password


class AuthStore:
    """Users and grants on one database, through a reader and a writer.

    ``read(fn)`` and ``write(fn)`` run ``fn(conn)`` in a read transaction and in
    a committed write: the tracking store's own when serving, a plain engine's
    on the command line.
    """

    def __init__(self, read: Callable[[Callable[[Connection], Any]], Any],
                 write: Callable[[Callable[[Connection], Any]], Any]) -> None:
        self._read = read
        self._write = write

    # -- users -------------------------------------------------------------

    def create_user(self, username: Any, password: Any, *, is_admin: bool = False) -> User:
        """Create a user; RESOURCE_ALREADY_EXISTS if the name is taken."""
        username = _check_username(username)
        hashed = hash_password(_check_password(password))  # slow on purpose: outside the writer

        def op(conn: Connection) -> User:
            if conn.execute(select(s.users.c.id).where(s.users.c.username == username)).first():
                raise ResourceAlreadyExists(f"User (username={username}) already exists.")
            try:
                conn.execute(insert(s.users).values(username=username, password_hash=hashed,
                                                    is_admin=bool(is_admin)))
            except IntegrityError:  # another server process created it first
                raise ResourceAlreadyExists(f"User (username={username}) already exists.") from None
            return _user(conn, username)
        return self._write(op)  # type: ignore[no-any-return]

    def get_user(self, username: Any) -> User:
        """The user called ``username``; RESOURCE_DOES_NOT_EXIST if there is none."""
        return self._read(lambda conn: _user(conn, str(username)))  # type: ignore[no-any-return]

    def find_user(self, username: str) -> User | None:
        """The user called ``username``, or None."""
        return self._read(lambda conn: _find_user(conn, username))  # type: ignore[no-any-return]

    def find_user_by_id(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        row = self._read(lambda conn: conn.execute(select(s.users).where(s.users.c.id == user_id)).first())
        return _row_user(row) if row is not None else None

    def list_users(self) -> list[User]:
        rows = self._read(lambda conn: conn.execute(select(s.users).order_by(s.users.c.id)).all())
        return [_row_user(r) for r in rows]

    def count_admins(self) -> int:
        rows = self._read(lambda conn: conn.execute(
            select(s.users.c.id).where(s.users.c.is_admin.is_(True))).all())
        return len(rows)

    def update_password(self, username: Any, password: Any) -> None:
        hashed = hash_password(_check_password(password))
        self._update_user(str(username), password_hash=hashed)

    def update_admin(self, username: Any, is_admin: Any) -> None:
        if isinstance(is_admin, str):
            is_admin = is_admin.strip().lower() in ("true", "1")
        self._update_user(str(username), is_admin=bool(is_admin))

    def _update_user(self, username: str, **values: Any) -> None:
        def op(conn: Connection) -> None:
            _user(conn, username)
            conn.execute(update(s.users).where(s.users.c.username == username).values(**values))
        self._write(op)

    def delete_user(self, username: Any) -> None:
        def op(conn: Connection) -> None:
            user = _user(conn, str(username))
            conn.execute(delete(s.user_permissions).where(s.user_permissions.c.user_id == user.id))
            conn.execute(delete(s.users).where(s.users.c.id == user.id))
        self._write(op)

    # -- permissions ---------------------------------------------------------

    def grant(self, username: Any, resource_type: Any, resource_id: Any, permission_name: Any,
              *, replace: bool = False) -> None:
        """Give ``username`` a permission on one resource.

        RESOURCE_ALREADY_EXISTS if the user already has a grant there, unless
        ``replace`` (the creator's MANAGE, an update).
        """
        rtype = check_resource_type(resource_type)
        perm = permission(permission_name)
        if perm.name not in GRANTABLE:
            raise InvalidParameterValue(
                f"Invalid permission '{perm.name}' for resource_type='{rtype}'. "
                f"Resource-level grants accept only: {', '.join(GRANTABLE)} (DENY: no access).")
        rid = str(resource_id)
        if not rid:
            raise InvalidParameterValue("Missing value for required parameter 'resource_id'")

        def op(conn: Connection) -> None:
            user = _user(conn, str(username))
            where = _grant_where(user.id, rtype, rid)
            if conn.execute(select(s.user_permissions.c.id).where(*where)).first() is not None:
                if not replace:
                    raise ResourceAlreadyExists(
                        f"Permission for user={username} on resource_type={rtype}, "
                        f"resource_id={rid} already exists.")
                conn.execute(update(s.user_permissions).where(*where).values(permission=perm.name))
                return
            conn.execute(insert(s.user_permissions).values(user_id=user.id, resource_type=rtype,
                                                           resource_id=rid, permission=perm.name))
        self._write(op)

    def revoke(self, username: Any, resource_type: Any, resource_id: Any) -> None:
        """Remove ``username``'s grant on one resource; RESOURCE_DOES_NOT_EXIST if there is none."""
        rtype = check_resource_type(resource_type)

        def op(conn: Connection) -> None:
            user = _user(conn, str(username))
            done = conn.execute(delete(s.user_permissions).where(*_grant_where(user.id, rtype, str(resource_id))))
            if not done.rowcount:
                raise ResourceDoesNotExist(
                    f"Permission for user={username} on resource_type={rtype}, "
                    f"resource_id={resource_id} does not exist.")
        self._write(op)

    def granted(self, user_id: int, resource_type: str, resource_id: str) -> Permission | None:
        """The user's own grant on a resource, or None (the default applies)."""
        row = self._read(lambda conn: conn.execute(
            select(s.user_permissions.c.permission).where(
                *_grant_where(user_id, resource_type, resource_id))).first())
        return PERMISSIONS.get(row[0]) if row is not None else None

    def drop_resource(self, resource_type: str, resource_id: str) -> None:
        """Forget every grant on a deleted registered model (its name may be reused)."""
        self._write(lambda conn: conn.execute(delete(s.user_permissions).where(
            s.user_permissions.c.resource_type == resource_type,
            s.user_permissions.c.resource_id == resource_id)))


def _grant_where(user_id: int, resource_type: str, resource_id: str) -> tuple[Any, ...]:
    c = s.user_permissions.c
    return (c.user_id == user_id, c.resource_type == resource_type, c.resource_id == resource_id)


def _row_user(row: Any) -> User:
    return User(id=int(row.id), username=row.username, is_admin=bool(row.is_admin),
                password_hash=row.password_hash)


def _find_user(conn: Connection, username: str) -> User | None:
    row = conn.execute(select(s.users).where(s.users.c.username == username)).first()
    return _row_user(row) if row is not None else None


def _user(conn: Connection, username: str) -> User:
    user = _find_user(conn, username)
    if user is None:
        raise ResourceDoesNotExist(f"User with username={username} not found")
    return user
