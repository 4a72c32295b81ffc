"""gridcall's own errors, with what a caller may do about them kept apart.

::

    GridcallError                  something of ours went wrong; ``retryable`` says whether
    ├── RetryableError             trying again later may succeed (a server unreachable,
    │                              busy, a timeout): back off and retry
    ├── FatalError                 retrying will not help until a person changes the
    │   └── CredentialsRefused     configuration (a refused login, a missing database)
    ├── PoisonError                this message (not the server, not the config) can never
    │                              be handled as it is: set it aside in the dead-letter
    │                              store, acknowledge it and go on
    └── InvariantError             a runtime invariant does not hold: a bug, named where

A leaf, like the rest of :mod:`gridcall.wire`: every layer may raise and catch these.
Packages subclass them for their own errors (the hub's sink errors do), so a reconnect
loop can decide from the type alone (:func:`gridcall.wire.backoff.classify_error`).
"""

from __future__ import annotations

from typing import ClassVar


class GridcallError(Exception):
    """Base of gridcall's errors. ``retryable``: may the same call succeed later as is?"""

    retryable: ClassVar[bool] = False


class RetryableError(GridcallError):
    """Transient: the other side is unreachable, busy or slow; retry with backoff."""

    retryable: ClassVar[bool] = True


class FatalError(GridcallError):
    """Retrying as is will not help: a person must change the configuration first."""


class CredentialsRefused(FatalError):
    """A server answered and refused our login or its permissions (MQTT CONNACK 4/5,
    HTTP 401/403): distinct from one that cannot be reached."""


class PoisonError(GridcallError):
    """The data itself is refused (a store's constraint, a number it cannot hold, points a
    database rejects): retrying it as is fails again, and other data is not affected."""


class InvariantError(GridcallError, RuntimeError):
    """An internal invariant does not hold (a bug): raised instead of ``assert``, which
    ``python -O`` strips."""


def invariant(condition: object, what: str) -> None:
    """Raise :class:`InvariantError` naming ``what`` unless ``condition`` holds."""
    if not condition:
        raise InvariantError(what)
