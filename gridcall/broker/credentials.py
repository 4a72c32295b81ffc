"""The broker logins' passwords: generated once, kept in a 0600 file, never changed.

``credentials`` holds one ``user password`` line per login. A run of ``gridcall broker
acl`` reads it, generates a password only for a login it lacks (a new agent, a new
unit) and appends it; an existing line is never rewritten, so regenerating the ACL after
a config change never locks out an agent that already has its password. A login that
left the config keeps its line here but is no longer in the password file, so the broker
refuses it. To change a password, delete its line and run the command again.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

PASSWORD_BYTES = 24
"""192 random bits per password (32 URL-safe characters)."""


class CredentialsError(ValueError):
    """The credentials file cannot be read as ``user password`` lines."""


def read_credentials(path: Path) -> dict[str, str]:
    """``{user: password}`` from ``path`` (empty if it does not exist)."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise CredentialsError(f"{path}:{n}: expected 'user password', got "
                                   f"{len(parts)} fields")
        user, password = parts
        if user in out:
            raise CredentialsError(f"{path}:{n}: {user!r} appears twice")
        out[user] = password
    return out


def ensure_credentials(path: Path, users: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Every user's password, generating and appending those ``path`` lacks; returns the
    passwords and the users that are new. The file is created 0600 (in a folder made
    0700 if it must be made) and only ever appended to."""
    known = read_credentials(path)
    new = [u for u in users if u not in known]
    if new:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            if f.tell() == 0:
                f.write("# broker logins written by `gridcall broker acl`: user password\n")
            for user in new:
                known[user] = secrets.token_urlsafe(PASSWORD_BYTES)
                f.write(f"{user} {known[user]}\n")
            f.flush()
            os.fsync(f.fileno())
    if path.exists():
        os.chmod(path, 0o600)  # also an older file someone made readable
    return known, new
