"""``labtrack users``: the accounts of a basic-auth server, and ``labtrack db upgrade``.

These act on the database itself (as an administrator does before starting
a team server), not through a server: the first admin must exist before
anyone can sign in, and labtrack, unlike MLflow, creates no default one.
Passwords are read from a hidden prompt or from standard input
(``--password-stdin``), never from the command line, where ``ps`` shows them.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from labtrack.errors import LabtrackError

_DB_HELP = "SQLAlchemy URL of the database [default: LABTRACK_BACKEND_STORE_URI, sqlite:///mlruns.db]."


def _backend(uri: str | None) -> str:
    from labtrack.settings import Settings

    return uri or Settings.from_sources({}).backend_store_uri


def _fail(message: str) -> None:
    click.echo(f"labtrack: {message}", err=True)
    sys.exit(2)


def auth_store(uri: str | None) -> Any:
    """An AuthStore on the database, through its own short transactions."""
    from labtrack.store.auth import AuthStore
    from labtrack.store.engine import open_engines

    engines = open_engines(_backend(uri), readers=1)

    def read(fn: Any) -> Any:
        with engines.reader.connect() as conn:
            return fn(conn)

    def write(fn: Any) -> Any:
        with engines.writer.begin() as conn:
            return fn(conn)
    return AuthStore(read, write)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def users() -> None:
    """Users of a basic-auth server (labtrack server --app-name basic-auth)."""


@users.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="The user may manage users and every resource.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--backend-store-uri", default=None, help=_DB_HELP)
def create(username: str, admin: bool, password_stdin: bool, backend_store_uri: str | None) -> None:
    """Create USERNAME (the first admin of a new team server is made this way)."""
    try:
        user = auth_store(backend_store_uri).create_user(username, _password(password_stdin), is_admin=admin)
    except LabtrackError as e:
        _fail(e.message)
    click.echo(f"labtrack: created {'admin ' if user.is_admin else 'user '}{user.username}")


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--backend-store-uri", default=None, help=_DB_HELP)
def set_password(username: str, password_stdin: bool, backend_store_uri: str | None) -> None:
    """Give USERNAME a new password."""
    try:
        auth_store(backend_store_uri).update_password(username, _password(password_stdin))
    except LabtrackError as e:
        _fail(e.message)
    click.echo(f"labtrack: new password set for {username}")


@users.command("list")
@click.option("--backend-store-uri", default=None, help=_DB_HELP)
def list_users(backend_store_uri: str | None) -> None:
    """List the users (name, and whether each is an admin)."""
    try:
        found = auth_store(backend_store_uri).list_users()
    except LabtrackError as e:
        _fail(e.message)
    for user in found:
        click.echo(f"{user.username}\t{'admin' if user.is_admin else 'user'}")


@users.command("delete")
@click.argument("username")
@click.option("--backend-store-uri", default=None, help=_DB_HELP)
def delete(username: str, backend_store_uri: str | None) -> None:
    """Delete USERNAME and the permissions granted to them."""
    try:
        auth_store(backend_store_uri).delete_user(username)
    except LabtrackError as e:
        _fail(e.message)
    click.echo(f"labtrack: deleted {username}")


@click.group()
def db() -> None:
    """The database itself."""


@db.command("upgrade")
@click.argument("url", required=False)
def upgrade(url: str | None) -> None:
    """Bring the database at URL to the current schema (default: LABTRACK_BACKEND_STORE_URI or ./mlruns.db).

    Servers upgrade a database when they start; on a shared database an
    administrator may rather do it once, explicitly, before the servers start.
    """
    from labtrack.store.engine import open_engines
    from labtrack.store.migrate import HEAD, current_revision

    target = _backend(url)
    try:
        engines = open_engines(target, readers=1)  # migrates under the schema lock (advisory on PostgreSQL)
        with engines.reader.connect() as conn:
            revision = current_revision(conn)
        engines.dispose()
    except LabtrackError as e:
        _fail(e.message)
    except Exception as e:  # noqa: BLE001 - a driver's error, in one line
        _fail(f"cannot upgrade {target.split('@')[-1]}: {type(e).__name__}: {str(e).splitlines()[0]}")
    click.echo(f"labtrack: {target.split('@')[-1]} is at schema revision {revision} (current: {HEAD})")
