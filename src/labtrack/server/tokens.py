"""Server tokens: one generator, so every token is safe to paste on a command line."""

from __future__ import annotations

import secrets


def new_token() -> str:
    """A random URL-safe token (32 characters) that never starts with ``-`` or ``_``.

    A token starting with ``-`` reads as an option when pasted after ``--token`` or
    ``export``, so those are drawn again.
    """
    while True:
        token = secrets.token_urlsafe(24)
        if token[0].isalnum():
            return token
