"""What a reading sink is, and the errors that tell the ingest runner what to do.

A sink writes every reading it is given, or raises one of these:

- :class:`RetryableSinkError`: 429, 5xx, connection errors, timeouts; keep and retry,
  after ``retry_after`` seconds if the server said so;
- :class:`BatchTooLargeError`: 413; split the batch;
- :class:`RejectedPointsError`: 400/422; the points are bad, reject and count them;
- :class:`SinkConfigError` (404, e.g. no such database) and its subclass
  :class:`SinkAuthError` (401/403): keep the data, an operator must act.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self

from wire import ReadingBatch


class ReadingSink(Protocol):
    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc_info: object) -> None: ...
    async def write(self, batches: Sequence[ReadingBatch]) -> None: ...


class SinkError(Exception):
    """Base class; ``status`` is the HTTP status if there was one."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RetryableSinkError(SinkError):
    retryable = True


class RejectedPointsError(SinkError):
    pass


class BatchTooLargeError(SinkError):
    pass


class SinkConfigError(SinkError):
    """The sink is not set up to take the data (e.g. 404 database not found): keep the
    data and retry slowly; an operator must act."""


class SinkAuthError(SinkConfigError):
    """401/403: credentials are wrong or lack permission."""
