"""Both desk stores for the desk's tests: SQLite (a file in the test's folder) and
PostgreSQL (a database of its own, made on the test server and dropped after).

The ``desk_stores`` fixture (tests/conftest.py) is parametrised over :data:`KINDS`; the
PostgreSQL case takes ``postgres_url`` and so is marked ``servers``
(:func:`tests.servers.mark_server_tests`)."""

from __future__ import annotations

import contextlib
import time
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
        drop_database(server_url, name)


def drop_database(server_url: str, name: str, tries: int = 50) -> None:
    """DROP DATABASE ... WITH (FORCE). Without pg_signal_backend (a server set up before
    scripts/servers.sh granted it) FORCE cannot end an autovacuum worker that is on the
    database just then, and PostgreSQL refuses; the worker ends on its own, so try again
    a bounded number of times."""
    for attempt in range(tries):
        try:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == tries - 1:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def opened(kind: Kind, tmp_path: Path, postgres_url: str | None) -> Iterator[DeskStores]:
    if kind == "sqlite":
        yield DeskStores(kind, str(tmp_path / "hub.sqlite"))
        return
    if postgres_url is None:
        raise ValueError("the PostgreSQL desk store needs the test server's postgres_url")
    with pg_database(postgres_url) as url:
        yield DeskStores(kind, url)
