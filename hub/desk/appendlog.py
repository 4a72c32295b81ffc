"""An append-only log of rows in the desk store: the one owner of what the desk's ledgers
and logs have in common (the alert ledger, silences, incidents, reminders, reports, the
external event numbers, the snapshots' table).

A log is a table described as data (:class:`Table`: its name, what it is called in
messages, the columns written besides ``body``, its SQLite DDL; :func:`steps_table` for
the common shape, the numbered steps of one thing) and a row type:

- :class:`BodyLog` writes and reads rows as their column values and an encoded ``body``,
  the table made on first use in SQLite (PostgreSQL's tables are made by the numbered
  migrations of :mod:`gridcall.hub.pgstore`), a row already there (a unique key) a
  :class:`LedgerConflict` naming the log and the rows;
- :class:`AppendLog` is a :class:`BodyLog` of frozen value objects, encoded with msgspec
  (JSON), each module saying which columns a row fills (``key``).

In SQLite a log that is ``append_only`` has triggers refusing UPDATE and DELETE, named
``{table}_no_update`` and ``{table}_no_delete``; PostgreSQL's migrations add their own,
refusing TRUNCATE too. A module keeps what is its own: its row type, its fold and its
queries (:meth:`BodyLog.bodies`, :meth:`AppendLog.select`, or SQL of its own through
:meth:`BodyLog.db`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from gridcall.hub.store import Db, DeskStore, StoreConflict
from gridcall.wire.errors import InvariantError

R = TypeVar("R")


class LedgerConflict(RuntimeError):
    """A row was already written (a unique key: the same step, or the same anomaly event).
    Also :class:`gridcall.hub.desk.ledger.LedgerConflict`."""


_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS {name}_no_update BEFORE UPDATE ON {name}
BEGIN SELECT RAISE(ABORT, '{what} is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {name}_no_delete BEFORE DELETE ON {name}
BEGIN SELECT RAISE(ABORT, '{what} is append-only'); END;
"""


@dataclass(frozen=True, slots=True)
class Table:
    """A log's table, as data. The table keeps the shape it was released with (existing
    SQLite files and PostgreSQL databases are used as they are): ``schema`` is its SQLite
    ``CREATE TABLE IF NOT EXISTS`` (and indexes), PostgreSQL's its migration."""

    name: str
    """The table's name (``silence_steps``)."""
    what: str
    """The log in messages (``the silence ledger``)."""
    columns: tuple[str, ...]
    """The columns a row fills, in order, before ``body``."""
    schema: str
    """SQLite DDL making the table (``IF NOT EXISTS``), without the triggers."""
    append_only: bool = True
    """Triggers refuse UPDATE and DELETE (False: the owner prunes rows, as snapshots do)."""
    row_id: str = "seq"
    """The column numbering rows in the order written (the default order read)."""

    def __post_init__(self) -> None:
        for name in (self.name, self.row_id, *self.columns):
            if not name.isidentifier():
                raise ValueError(f"table {self.name!r}: {name!r} is not a column name")

    @property
    def sqlite_schema(self) -> str:
        """What :meth:`Db.create` runs: ``schema`` and, if append-only, the triggers."""
        if not self.append_only:
            return self.schema
        return self.schema + _TRIGGERS.format(name=self.name, what=self.what)

    def insert_sql(self, *, ignore: bool = False) -> str:
        """The INSERT of one row (``ignore``: a row already there is not written)."""
        names = (*self.columns, "body")
        sql = (f"INSERT INTO {self.name} ({', '.join(names)}) "
               f"VALUES ({','.join('?' * len(names))})")
        return sql + " ON CONFLICT DO NOTHING" if ignore else sql


def steps_table(name: str, what: str, id_column: str) -> Table:
    """The table of the numbered steps of one kind of thing (an incident, a report):
    ``(id_column, n)`` unique, with ``at`` and ``action`` beside the body."""
    return Table(name=name, what=what, columns=(id_column, "n", "at", "action"), schema=f"""
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    {id_column} TEXT NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,
    action TEXT NOT NULL, body BLOB NOT NULL,
    UNIQUE ({id_column}, n)
);
""")


Row = tuple[object, ...]
"""One row as written: the values of :attr:`Table.columns`, then the body."""


class BodyLog:
    """Rows of ``table`` in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore, table: Table) -> None:
        self.store = store
        self.table = table
        self._ready = False
        self.rows_read = 0
        """Rows this log has read from the store so far (what a standby's follow costs)."""

    def db(self, db: Db) -> Db:
        """The store's connection, the table made on first use (so a log may be made
        before the store is entered). Not inside a transaction: SQLite's
        ``executescript`` commits."""
        if not self._ready:
            db.create(self.table.sqlite_schema)
            self._ready = True
        return db

    def writer(self, rows: Sequence[Row]) -> Callable[[Db], None]:
        """Writes ``rows`` inside another transaction (the alert ledger's, whose steps
        they link: :meth:`gridcall.hub.desk.ledger.Ledger.append` ``also``), so both are
        written together or not at all. The table must be made already."""
        sql = self.table.insert_sql()

        def insert(db: Db) -> None:
            if not self._ready:  # making the table (executescript) would commit the caller's
                raise InvariantError(f"{self.table.what} was written before it was read "
                                     "(Desk.start makes its table)")
            db.executemany(sql, rows)
        return insert

    async def append(self, rows: Sequence[Row],
                     also: Callable[[Db], None] | None = None) -> None:
        """Write the rows in one transaction, and ``also`` in it: all or none.
        LedgerConflict if one of them is there already (a unique key)."""
        insert = self.writer(rows)

        def run(db: Db) -> None:
            self.db(db)  # makes the table first, outside the transaction
            try:
                with db.transaction():
                    insert(db)
                    if also is not None:
                        also(db)
            except StoreConflict as exc:
                raise LedgerConflict(
                    f"{self.table.what} already holds a row of "
                    f"{[r[0] for r in rows]} ({self.table.columns[0]}): {exc}") from exc
        await self.store.sql(run)

    async def add(self, row: Row) -> bool:
        """Write the row unless one with its unique key is there; whether it was written."""
        sql = self.table.insert_sql(ignore=True)
        return await self.store.sql(lambda db: self.db(db).execute(sql, row).rowcount == 1)

    def select_sql(self, where: str = "", order: str | None = None) -> str:
        sql = f"SELECT body FROM {self.table.name}"
        if where:
            sql += f" WHERE {where}"
        return f"{sql} ORDER BY {order or self.table.row_id}"

    async def bodies(self, where: str = "", params: Sequence[object] = (), *,
                     order: str | None = None) -> list[bytes]:
        """The bodies of the rows ``where`` (SQL, ``?`` placeholders) by ``order``
        (default: as written)."""
        sql = self.select_sql(where, order)
        rows = await self.store.sql(lambda db: self.db(db).execute(sql, params).fetchall())
        self.rows_read += len(rows)
        return [r[0] if isinstance(r[0], bytes) else bytes(r[0]) for r in rows]

    async def written_after(self, row: int) -> list[tuple[int, bytes]]:
        """``(row, body)`` of each row written after row ``row`` (its ``row_id``), in the
        order written: the log's position, so a reader follows its tail."""
        rid = self.table.row_id
        sql = f"SELECT {rid}, body FROM {self.table.name} WHERE {rid} > ? ORDER BY {rid}"
        rows = await self.store.sql(lambda db: self.db(db).execute(sql, (row,)).fetchall())
        self.rows_read += len(rows)
        return [(int(r[0]), r[1] if isinstance(r[1], bytes) else bytes(r[1])) for r in rows]


class AppendLog(Generic[R]):
    """A :class:`BodyLog` of ``kind`` values (frozen, msgspec-encodable), each filling
    the table's columns with ``key(row)``; use inside ``async with store``."""

    def __init__(self, store: DeskStore, table: Table, kind: type[R],
                 key: Callable[[R], Row]) -> None:
        self.log = BodyLog(store, table)
        self.key = key
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(kind)

    @property
    def store(self) -> DeskStore:
        return self.log.store

    def rows(self, values: Sequence[R]) -> list[Row]:
        return [(*self.key(v), self._encoder.encode(v)) for v in values]

    def writer(self, values: Sequence[R]) -> Callable[[Db], None]:
        """:meth:`BodyLog.writer` of these values."""
        return self.log.writer(self.rows(values))

    async def append(self, *values: R, also: Callable[[Db], None] | None = None) -> None:
        """Write them in one transaction; LedgerConflict if one is there already."""
        await self.log.append(self.rows(values), also)

    async def add(self, value: R) -> bool:
        """Write it; False (nothing written) if it is there already."""
        return await self.log.add(self.rows([value])[0])

    async def select(self, where: str = "", params: Sequence[object] = (), *,
                     order: str | None = None) -> list[R]:
        """The values ``where`` by ``order`` (default: as written)."""
        return [self._decoder.decode(b)
                for b in await self.log.bodies(where, params, order=order)]

    async def written_after(self, row: int) -> list[tuple[int, R]]:
        """``(row, value)`` of each value written after row ``row``, in the order written
        (:meth:`BodyLog.written_after`)."""
        return [(n, self._decoder.decode(b)) for n, b in await self.log.written_after(row)]


__all__ = ["AppendLog", "BodyLog", "LedgerConflict", "Row", "Table", "steps_table"]
