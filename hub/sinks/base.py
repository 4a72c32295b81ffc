# placeholder written by the lead to unblock integration; helper-2 replaces this file
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self

from wire import ReadingBatch


class ReadingSink(Protocol):
    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc_info: object) -> None: ...
    async def write(self, batches: Sequence[ReadingBatch]) -> None: ...


class SinkError(Exception):
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


class SinkAuthError(SinkError):
    pass
