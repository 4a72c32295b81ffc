"""The one counters protocol: ``stats()`` returns a flat mapping of names to numbers.

Sources, the ingest runner, the notifier and the workers count what they do; whoever
reports (the agent's status message, ``gridcall ingest``'s summary, the API) asks them
through this one method instead of reaching into their attributes. Names are stable:
some are fields of the agent's status message on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

Number = int | float


@runtime_checkable
class HasStats(Protocol):
    def stats(self) -> Mapping[str, Number]:
        """Counters as ``{name: number}``, flat (no nesting), safe to copy and log."""
        ...


def stats_of(thing: object) -> dict[str, Number]:
    """``thing.stats()`` as a plain dict, or ``{}`` when it keeps none."""
    if isinstance(thing, HasStats):
        return dict(thing.stats())
    return {}
