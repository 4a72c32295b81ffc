"""The board's live changes: :class:`ChangeFeed` fans the desk's changes out to the open
event streams of the built-in board (a desk hook: putting on a queue never waits, so a
slow browser cannot hold up the desk). The HTTP side (``/v1/board/events``) is the API's,
:mod:`gridcall.hub.api.board`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from gridcall.hub.board.view import inside
from gridcall.hub.desk.desk import Change

QUEUE_LIMIT = 1000
"""Changes held per open stream; a client that falls further behind gets ``resync``."""


class _Stream:
    def __init__(self, root: tuple[str, ...]) -> None:
        self.root = root
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(QUEUE_LIMIT)
        self.lost = False


class ChangeFeed:
    """Fans the desk's changes out to the open event streams (a desk hook: putting on a
    queue never waits, so a slow browser cannot hold up the desk)."""

    def __init__(self) -> None:
        self._streams: set[_Stream] = set()
        self.closed = False
        self.version = 0
        """Changes seen: the desk's alerts change only through its hooks, so a state
        computed at this version stays right until the next change."""

    @property
    def streams(self) -> int:
        return len(self._streams)

    async def hook(self, change: Change) -> None:
        self.version += 1
        for stream in list(self._streams):
            if not inside(change.alert.place, stream.root):
                continue
            try:
                stream.queue.put_nowait(change)
            except asyncio.QueueFull:
                stream.lost = True  # the page is told to fetch the whole state again

    @contextlib.contextmanager
    def subscribe(self, root: tuple[str, ...]) -> Iterator[_Stream]:
        stream = _Stream(root)
        if self.closed:
            stream.queue.put_nowait(None)
        self._streams.add(stream)
        try:
            yield stream
        finally:
            self._streams.discard(stream)

    def close(self) -> None:
        """End every stream (the server is stopping: an open stream would keep it up)."""
        self.closed = True
        for stream in self._streams:
            while stream.queue.full():
                stream.queue.get_nowait()
                stream.lost = True
            stream.queue.put_nowait(None)


__all__ = ["QUEUE_LIMIT", "ChangeFeed"]
