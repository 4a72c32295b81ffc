"""What a notification channel is: the protocol every channel module implements.

A channel knows three things about a configured entry of ``notify.yaml``: where it goes
(:meth:`~Channel.target`, for a person reading the log, never a secret), what it sends
(:meth:`~Channel.body`: the alert as JSON, or as text a person reads), and, when a send
failed, whether trying again may help (:meth:`~Channel.classify`), decided from the
library's own result or exception, never from its log text. :meth:`~Channel.send` makes
one attempt, blocking (the notifier runs it in a worker thread), and raises
:class:`DeliveryError` (or the library's exception) on failure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, TypeVar

from gridcall.config.notify import NotifyFile
from gridcall.wire.errors import GridcallError

C_contra = TypeVar("C_contra", contravariant=True)


class Verdict(enum.Enum):
    RETRY = "retry"
    """Transient (unreachable, busy, a timeout, a 5xx): try again after the backoff."""
    GIVE_UP = "give up"
    """The receiver refused the request itself (a wrong token or path): sending it again
    cannot help until someone fixes notify.yaml or the receiver."""


@dataclass(frozen=True, slots=True)
class Message:
    """One alert step, rendered once for every channel."""

    title: str
    text: str
    """Plain text a grid worker can read on a phone."""
    json: str
    """The alert as wire JSON (docs/api.md)."""


class DeliveryError(GridcallError):
    """One attempt failed; ``status`` is the receiver's HTTP status when it answered."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class Channel(Protocol[C_contra]):
    type: str
    """The ``type:`` of the channel in notify.yaml this module handles."""

    def target(self, channel: C_contra) -> str:
        """Where a delivery goes, as a person finds it in notify.yaml (never a secret)."""
        ...

    def body(self, channel: C_contra, message: Message) -> str:
        """What this channel sends of ``message``."""
        ...

    def send(self, channel: C_contra, settings: NotifyFile, message: Message,
             timeout: float) -> None:
        """One blocking attempt; returns if delivered, raises why not otherwise (secrets
        are read from the environment now: KeyError naming an unset variable)."""
        ...

    def classify(self, error: BaseException) -> Verdict:
        """Retry, or give up at once, after ``send`` raised ``error``."""
        ...


def retry_always(error: BaseException) -> Verdict:
    """For channels whose library reports only success or failure."""
    return Verdict.RETRY


def http_verdict(status: int | None) -> Verdict:
    """A 4xx other than 408 (timeout) and 429 (too many requests) is the request's own
    fault: give up. Anything else (no answer, 5xx, 408, 429) may pass later."""
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return Verdict.GIVE_UP
    return Verdict.RETRY
