"""What a reading sink is, and the errors that tell the ingest runner what to do.

A sink writes every reading it is given, or raises. It never retries by itself: the
hub's ingest runner owns buffering, splitting and retries, and decides from the error's
type alone::

    SinkError                      retryable=False; unclassified: keep the data
    ├── RetryableSinkError         retryable=True: 429, 5xx, connection errors, timeouts;
    │                              keep the data, retry after ``retry_after`` s if given
    ├── RejectedPointsError        400/422: the points are bad; reject and count them,
    │                              and dead-letter the batch that carries them
    ├── BatchTooLargeError         413: split the batch and write the halves
    └── SinkConfigError            e.g. 404 "database not found": keep the data, an
        └── SinkAuthError          operator must act; 401/403: credentials are wrong

They are gridcall's own errors (:mod:`gridcall.wire.errors`): a ``RetryableSinkError`` is a
``RetryableError`` (the database cannot be reached or is busy), a ``SinkConfigError`` a
``FatalError`` and a ``SinkAuthError`` a ``CredentialsRefused`` (it answered and refused),
so the reconnect helper (:mod:`gridcall.wire.backoff`) tells them apart by type as it does
for a broker.

Every message names the sink, its URL (never credentials) and the reason, with the
server's own error text when there is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, Self

from gridcall.wire import ReadingBatch
from gridcall.wire.errors import (
    CredentialsRefused,
    FatalError,
    GridcallError,
    PoisonError,
    RetryableError,
)


class ReadingSink(Protocol):
    """Something the hub can write readings into, used as ``async with sink: ...``."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc_info: object) -> None: ...
    async def write(self, batches: Sequence[ReadingBatch]) -> None:
        """Write every reading of ``batches``, or raise :class:`SinkError`."""
        ...


class SinkError(GridcallError):
    """A write failed. ``status`` is the HTTP status if the server answered."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after: float | None = None


class RetryableSinkError(SinkError, RetryableError):
    """Transient: keep the data and write it again later (``retry_after`` seconds, if the
    server sent ``Retry-After``; otherwise the runner's own backoff)."""

    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RejectedPointsError(SinkError, PoisonError):
    """The server refused the points as malformed (400/422); writing them again won't help.

    InfluxDB 1.x writes the good points of a request and reports the others as a
    "partial write"; ``dropped`` is how many it dropped when it says so, else ``None``.
    """

    reason: ClassVar[str] = "rejected"
    """The dead-letter reason of a batch refused so."""

    def __init__(self, message: str, *, status: int | None = None,
                 dropped: int | None = None) -> None:
        super().__init__(message, status=status)
        self.dropped = dropped


class BatchTooLargeError(SinkError):
    """413: the request body is over the server's limit; split the batch."""


class SinkConfigError(SinkError, FatalError):
    """The sink is not set up to take the data (e.g. 404 "database not found"): keep the
    data; an operator must act before a retry can succeed."""


class SinkAuthError(SinkConfigError, CredentialsRefused):
    """401/403: the credentials are wrong or lack permission; keep the data."""
