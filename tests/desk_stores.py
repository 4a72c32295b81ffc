"""Both desk stores for the desk's tests: SQLite (a file in the test's folder) and
PostgreSQL (a database of its own, made on the test server and dropped after).

The ``desk_stores`` fixture (tests/conftest.py) is parametrised over :data:`KINDS`; the
PostgreSQL case takes ``postgres_url`` and so is marked ``servers``
(:func:`tests.servers.mark_server_tests`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg

from gridcall.hub.pgstore import PgStore
from gridcall.hub.store import DeskStore, Store

Kind = Literal["sqlite", "postgresql"]
KINDS: tuple[Kind, ...] = ("sqlite", "postgresql")


class DeskStores:
    """Opens the same desk store as often as a test asks (a hub restarting)."""

    def __init__(self, kind: Kind, where: str) -> None:
        self.kind = kind
        self.where = where
        """The SQLite file, or the PostgreSQL URL of the test's own database."""

    def open(self) -> contextlib.AbstractAsyncContextManager[DeskStore]:
        if self.kind == "sqlite":
            return Store(self.where)
        return PgStore(self.where)


@contextlib.contextmanager
def pg_database(server_url: str, prefix: str = "gridcall_t") -> Iterator[str]:
    """A new empty database on ``server_url``'s server, its URL; dropped on leaving."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextlib.contextmanager
def opened(kind: Kind, tmp_path: Path, postgres_url: str | None) -> Iterator[DeskStores]:
    if kind == "sqlite":
        yield DeskStores(kind, str(tmp_path / "hub.sqlite"))
        return
    if postgres_url is None:
        raise ValueError("the PostgreSQL desk store needs the test server's postgres_url")
    with pg_database(postgres_url) as url:
        yield DeskStores(kind, url)
