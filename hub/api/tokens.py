"""API tokens: one or more per unit, kept only as SHA-256 hashes in a JSON file.

``gridcall hub token issue UNIT`` (a unit, or a department: its token opens the
department routes; or ``--person ID``, a person of roster.yaml, whose steps then name
them) makes a token (32 random bytes, URL-safe), prints it
once and appends its hash to the tokens file; ``revoke`` removes a unit's tokens;
``list`` shows who has tokens and since when. A district of 40 units thus needs one
file, not 40 environment variables, and a leaked file gives no usable token: the tokens
are random, so an unsalted SHA-256 cannot be reversed (GitHub stores its tokens the
same way). The file is written to a temporary file and renamed, mode 0600.

The file (default: ``api-tokens.json`` beside the hub's store)::

    {"tokens": [{"unit": "dasha", "sha256": "9f86d0...", "issued_at": "2026-11-27T03:00:00Z",
                 "label": "town app", "person": ""}]}

:class:`TokenFile` re-reads it when it changes on disk, so a new or revoked token takes
effect at the next request, without restarting the hub. A file that cannot be read (a
bad hand edit) is logged as an error and the tokens known before stay valid.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from gridcall.wire.private import private_folder

log = logging.getLogger(__name__)

PREFIX = "gct_"
"""Tokens start with this, so a secret scanner (and a person) can tell what one is."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    unit: str
    sha256: str
    issued_at: str
    label: str = ""
    person: str = ""
    """The person (roster.yaml) the token was issued to; their steps name them. ""
    for a unit's token (entries written before persons existed have none)."""
    system: str = ""
    """A department's business system (external.yaml) the token was issued to: it may
    only post that system's events (``POST /v1/events/external``); ``unit`` is then "".
    "" for a unit's or a person's token."""


class TokenFileError(ValueError):
    """The tokens file exists but cannot be used; the message names it and why."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_entries(path: Path) -> list[TokenEntry]:
    """The entries of the tokens file ([] if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        data = json.loads(text)
        return [TokenEntry(**item) for item in data["tokens"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenFileError(f"{path}: not a gridcall tokens file "
                             f'({{"tokens": [{{"unit", "sha256", "issued_at"}}]}}): {exc}'
                             ) from None


def write_entries(path: Path, entries: list[TokenEntry]) -> None:
    private_folder(path.parent)  # 0700 if new: `hub token issue` often makes var/ first
    body = json.dumps({"tokens": [asdict(e) for e in entries]}, indent=1, ensure_ascii=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def issue(path: Path, unit: str, *, known_units: Collection[str], label: str = "",
          now: datetime | None = None, person: str = "") -> str:
    """A new token for ``unit`` (and ``person`` of it, if given), its hash appended to
    the file; the token itself is returned once and stored nowhere. ValueError for a
    unit the config does not have."""
    if unit not in known_units:
        near = difflib.get_close_matches(unit, sorted(known_units), n=3)
        raise ValueError(f"{unit!r} is not a unit of the config (district, town, community "
                         "or grid id) nor one of its departments"
                         + (f"; did you mean {', '.join(near)}?" if near else ""))
    token = PREFIX + secrets.token_urlsafe(32)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_entries(path, [*read_entries(path),
                         TokenEntry(unit, digest(token), when, label, person)])
    return token


def issue_system(path: Path, system: str, *, known_systems: Collection[str],
                 label: str = "", now: datetime | None = None) -> str:
    """A new token for the external ``system`` (external.yaml), as :func:`issue` makes
    one for a unit; ValueError for a system the config does not have."""
    if system not in known_systems:
        raise ValueError(f"{system!r} is not a system of external.yaml"
                         + (f" (known: {', '.join(sorted(known_systems))})"
                            if known_systems else " (it declares none)"))
    token = PREFIX + secrets.token_urlsafe(32)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_entries(path, [*read_entries(path),
                         TokenEntry("", digest(token), when, label, system=system)])
    return token


def revoke(path: Path, unit: str, *, person: str | None = None,
           system: str | None = None) -> int:
    """Remove every token of ``unit`` (of ``person`` or of ``system`` only, if given:
    ``unit`` may then be empty); how many there were."""
    entries = read_entries(path)
    kept = [e for e in entries if not (
        e.person == person if person is not None
        else e.system == system if system is not None else e.unit == unit and not e.system)]
    if len(kept) != len(entries):
        write_entries(path, kept)
    return len(entries) - len(kept)


class TokenFile:
    """Who a bearer token belongs to, from the tokens file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, TokenEntry] = {}
        self.error: str | None = None
        """Why the file could not be read at its last change (None when it could)."""

    def _reload(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._entries = {e.sha256: e for e in read_entries(self.path)}
                self.error = None
            except TokenFileError as exc:  # keep serving with the tokens known so far
                self.error = str(exc)
                log.error("API tokens not reloaded, the previous ones stay valid: %s", exc)

    def entry_of(self, token: str) -> TokenEntry | None:
        """Whom the token was issued to (unit, person), or None for an unknown token."""
        self._reload()
        wanted = digest(token)
        for known, entry in self._entries.items():  # constant time per comparison
            if hmac.compare_digest(known, wanted):
                return entry
        return None

    def unit_of(self, token: str) -> str | None:
        """The unit the token was issued to, or None for an unknown token."""
        entry = self.entry_of(token)
        return None if entry is None else entry.unit

    def __len__(self) -> int:
        self._reload()
        return len(self._entries)
