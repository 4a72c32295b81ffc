"""Active and standby: which of the hubs on one PostgreSQL desk store holds the desk.

Two (or more) ``gridcall hub run`` with the same ``hub.desk_store`` and ``client_id``:
each first asks for a session-level advisory lock (``pg_try_advisory_lock``, the key
derived from the client id, :func:`lock_key`) on a connection of its own. The one that
gets it is active: it connects to the broker (the desk's and the readings' persistent
sessions) and runs the desk. The others wait, asking again every ``poll`` seconds, and
touch neither the broker nor the desk's tables, so the active hub's sessions are not
taken over under it.

PostgreSQL frees a session's advisory lock when the session ends: the active hub stopping
(it closes the connection), its process killed (the kernel closes the socket at once), or
its machine gone (no one closes anything: the server notices through TCP keepalives,
which this connection sets on the server's side to 5 s idle + 3 probes 2 s apart, so
within about 11 s). A standby then gets the lock at its next ask and starts: the desk is
rebuilt from the ledger, its timers armed again, every open alert republished retained,
and the notify outbox sends what the ledger holds and ``notified`` does not.

The active hub pings its lock connection every ``check`` seconds (:meth:`DeskLease.watch`);
if the connection is gone, its lock may already be someone else's, so it stops (exit 1)
rather than run a second desk. Cut off from the database (the path, not the process), it
learns so within ``check`` plus libpq's ``tcp_user_timeout`` (10 s: a ping not
acknowledged by then fails), about when the server frees its lock; for that second or
two both hubs may publish alert states and send notifications (the ledger itself is
safe: the cut-off hub cannot write to it). A lease with fencing tokens would close that
window; it is not built. Takeover time, from the holder's end to the standby
running: ``poll`` (1 s) plus the new hub's start-up after a kill or a clean stop; plus up
to ~11 s of keepalives when the holder's machine vanished (bench/failover.py measures the
kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Self

import psycopg

from gridcall.hub.pgstore import redact
from gridcall.wire.errors import InvariantError

log = logging.getLogger(__name__)

SERVER_KEEPALIVE = "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 " \
                   "-c tcp_keepalives_count=3"
"""The server's TCP keepalives on the lock's session: how soon PostgreSQL frees the lock
of a holder whose machine vanished (about 5 + 3 × 2 s)."""


class LeaseLost(RuntimeError):
    """The active hub's lock connection failed: another hub may hold the desk now."""


def lock_key(client_id: str) -> int:
    """The advisory lock's key for the desk of ``client_id`` (a signed 64-bit int)."""
    digest = hashlib.sha256(f"gridcall-desk:{client_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class DeskLease:
    """``async with DeskLease(url, client_id) as lease: if await lease.acquire(stop): ...``"""

    def __init__(self, url: str, client_id: str, *, poll: float = 1.0,
                 check: float = 1.0, about: str = "") -> None:
        """``about``: this hub as the others see it while it holds the desk (its host,
        pid and API address, in the lock session's ``application_name``)."""
        self.url = url
        self.client_id = client_id
        self.about = about
        self.holder = "another hub"
        """Who held the desk at the latest ask (for a standby's 503s)."""
        self.key = lock_key(client_id)
        self.poll = poll
        self.check = check
        self.held = False
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def __repr__(self) -> str:
        return f"desk lease {self.client_id} on {redact(self.url)}"

    async def __aenter__(self) -> Self:
        self._conn = await asyncio.to_thread(
            psycopg.connect, self.url, autocommit=True, connect_timeout=10,
            application_name=f"gridcall-lease {self.client_id} {self.about}".strip()[:63],
            options=SERVER_KEEPALIVE, keepalives=1, keepalives_idle=5,
            keepalives_interval=2, keepalives_count=3, tcp_user_timeout=10_000)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self.held = False
            await asyncio.to_thread(conn.close)  # the session ends: the lock is free

    @property
    def conn(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None:
            raise InvariantError(f"{self!r} used outside 'async with'")
        return self._conn

    def _try(self) -> bool:
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row is not None and row[0])

    def _holder(self) -> str:
        try:
            return self._holder_row()
        except psycopg.Error as exc:  # only for the log line
            return f"another session ({type(exc).__name__})"

    def _holder_row(self) -> str:
        row = self.conn.execute(
            "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
            (self.key,)).fetchone()
        if row is None:
            return "no hub (the desk is free: a takeover is under way)"
        return f"{row[0]!r} from {row[1] or 'local'} (backend pid {row[2]})"

    async def try_now(self) -> bool:
        """Ask for the lock once: whether this hub holds the desk now (else
        :attr:`holder` names who does)."""
        if await asyncio.to_thread(self._try):
            self.held = True
            return True
        self.holder = await asyncio.to_thread(self._holder)
        return False

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this hub holds the desk (True) or ``stop`` is set (False)."""
        said = False
        while not stop.is_set():
            if await self.try_now():
                return True
            if not said:
                log.warning("%s: standby, the desk is held by %s", self, self.holder)
                said = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll)
        return False

    async def watch(self) -> None:
        """Return when the lock's connection fails (the lock is no longer ours)."""
        while True:
            try:
                await asyncio.to_thread(self.conn.execute, "SELECT 1")
            except psycopg.Error as exc:
                self.held = False
                log.error("%s: the lock's connection failed (%s); another hub may hold the "
                          "desk now", self, exc)
                return
            await asyncio.sleep(self.check)


__all__ = ["DeskLease", "LeaseLost", "lock_key"]
