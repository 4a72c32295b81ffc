"""Snapshots of the desk's state, so a restart replays only the ledger's tail.

:class:`DeskImage` is what :meth:`gridcall.hub.desk.desk.Desk.image` makes of the desk after
the ledger row ``through_seq`` (the alerts and every index the fold of the transitions
builds: grouping keys, each agent's highest event folded, who was seen when, the spread
window, the live deadline and reminder timers). :class:`SnapshotStore` keeps the latest
few in the store's database, encoded with msgpack. The desk writes one every
``SNAPSHOT_EVERY`` ledger rows; at start-up it restores the latest whose config matches
and replays the rows written after it. A snapshot is only a cache: the ledger stays the
truth, and a snapshot that does not fit (another config, a row written after it but
stamped before it, an undecodable body) is passed over for the full fold.

The table is one row per snapshot, ``(through_seq, through_at, config, written_at,
body)``; only :class:`SnapshotStore` touches it, through the desk's log of rows
(:mod:`gridcall.hub.desk.appendlog`, :data:`TABLE`). On SQLite :data:`TABLE` makes it; on
PostgreSQL migration 2 of :mod:`gridcall.hub.pgstore`.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib

import msgspec

from gridcall.config import ConfigSet
from gridcall.hub.desk.appendlog import BodyLog, Table
from gridcall.hub.desk.lifecycle import AlertState
from gridcall.hub.desk.spread import Sighting
from gridcall.hub.desk.timers import Timer
from gridcall.hub.store import Db, DeskStore

TABLE = Table(
    name="desk_snapshots", what="the desk's snapshots",
    columns=("through_seq", "through_at", "config", "written_at"),
    schema="""
CREATE TABLE IF NOT EXISTS desk_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    through_seq INTEGER NOT NULL, through_at INTEGER NOT NULL, config TEXT NOT NULL,
    written_at INTEGER NOT NULL, body BLOB NOT NULL
);
""", append_only=False, row_id="id")
"""Rows appended through :mod:`gridcall.hub.desk.appendlog`, but not append-only: a save
drops all but the latest :data:`KEPT`."""

KEPT = 2
"""Snapshots kept (the latest, and the one before it in case the latest is unreadable)."""


class DeskImage(msgspec.Struct, frozen=True, kw_only=True):
    """The desk's state folded from the alert ledger through row ``through_seq`` (whose
    ``at`` is ``through_at``, the latest of them). Lists are in a canonical order, so two
    desks folded from the same rows give equal images."""

    through_seq: int
    through_at: int
    config: str
    """:func:`config_key` of the config it was folded with."""
    states: list[AlertState]
    open: list[tuple[str, str, str]]
    """(matter, grid or agent, alert): see ``Desk._open``."""
    latest: list[tuple[str, str, str]]
    event_marks: list[tuple[str, int]]
    """(agent, seq): each agent's highest anomaly event folded into an alert."""
    last_seen: list[tuple[str, str, int]]
    sensors: list[tuple[str, list[str]]]
    seen_at: list[tuple[str, int]]
    spread: list[tuple[str, str, list[Sighting]]]
    """Sightings within the spread window ending at ``through_at``."""
    next: int
    timers: list[Timer]
    """Deadline timers of the alerts' current steps (stale ones dropped), sorted."""
    reminder_timers: list[Timer]
    """Reminder timers of the alerts' current stints, sorted."""
    stint: list[tuple[str, int]]
    handed: list[tuple[str, str]]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(DeskImage)


def config_key(config: ConfigSet) -> str:
    """What a snapshot depends on in the config (the places, the catalog, the roster): a
    snapshot folded under another config is not used."""
    text = repr((config.topology, config.matters, config.duty))
    return hashlib.sha256(text.encode()).hexdigest()


def encode(image: DeskImage) -> bytes:
    return _encoder.encode(image)


ITEMS_PER_STEP = 1000
"""Items of a list encoded between two turns of the event loop (:func:`encode_stepwise`):
1,000 alerts are about 1.3 MB of msgpack, a millisecond or two."""


def _array_header(n: int) -> bytes:
    """msgpack's header of an array of ``n`` items."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


async def encode_stepwise(image: DeskImage, step: int = ITEMS_PER_STEP) -> bytes:
    """The same bytes as :func:`encode`, made ``step`` items of a long list at a time with
    a turn of the event loop between (msgspec holds the GIL while it encodes, so a worker
    thread would hold the loop as long: 2-4 s at 50,000 alerts). ``image`` must not
    change meanwhile: :meth:`Desk.image` builds its lists anew, of frozen values."""
    fields: dict[str, object] = {}
    for name in DeskImage.__struct_fields__:
        value = getattr(image, name)
        if isinstance(value, list) and len(value) > step:
            parts = [_array_header(len(value))]
            for i in range(0, len(value), step):
                chunk = value[i:i + step]
                parts.append(_encoder.encode(chunk)[len(_array_header(len(chunk))):])
                await asyncio.sleep(0)
            value = msgspec.Raw(b"".join(parts))
        fields[name] = value  # a map in field order: what encode() writes for the struct
    return _encoder.encode(fields)


def decode(body: bytes) -> DeskImage:
    """The image in ``body``, decoded with the cyclic garbage collector paused: decoding
    makes hundreds of thousands of objects, each allocation counting towards a
    collection that walks the whole heap (3-4x the decode's own time at 50,000 alerts
    in a large process); nothing it makes is a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _decoder.decode(body)
    finally:
        if enabled:
            gc.enable()


class SnapshotStore:
    """The desk's snapshots in ``store``'s database; use inside ``async with store``."""

    def __init__(self, store: DeskStore) -> None:
        self.store = store
        self.log = BodyLog(store, TABLE)

    async def save(self, image: DeskImage, *, written_at: int) -> int:
        """Write ``image`` and drop all but the latest :data:`KEPT`; the body's size. The
        event loop runs on meanwhile: encoded step by step, written in the store's
        thread."""
        body = await encode_stepwise(image)

        def prune(db: Db) -> None:
            db.execute("DELETE FROM desk_snapshots WHERE id NOT IN (SELECT id FROM "
                       "desk_snapshots ORDER BY id DESC LIMIT ?)", (KEPT,))
        await self.log.append([(image.through_seq, image.through_at, image.config,
                                written_at, body)], also=prune)
        return len(body)

    async def latest(self, config: str) -> list[bytes]:
        """The bodies of the snapshots folded under ``config``, latest first (decode them
        with :func:`decode`)."""
        return await self.log.bodies("config=?", (config,), order="id DESC")
