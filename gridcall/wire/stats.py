"""The one counters protocol: ``stats()`` returns a flat mapping of names to numbers.

Sources, the ingest runner, the notifier and the workers count what they do; whoever
reports (the agent's status message, ``gridcall ingest``'s summary, the API) asks them
through this one method instead of reaching into their attributes. Names are stable:
some are fields of the agent's status message on the wire.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

Scalar = int | float | str | bool | None
"""What a counter may be: a count, a rate, or a plain label (a client id, a state)."""


@runtime_checkable
class HasStats(Protocol):
    def stats(self) -> Mapping[str, Scalar]:
        """Counters as ``{name: value}``, flat (no nesting), safe to copy and log."""
        ...


def stats_of(thing: object) -> dict[str, Scalar]:
    """``thing.stats()`` as a plain dict, or ``{}`` when it keeps none."""
    if isinstance(thing, HasStats):
        return dict(thing.stats())
    return {}


def flatten(counters: object) -> dict[str, Scalar]:
    """A counters dataclass as one flat mapping: its scalar fields by name, and each
    mapping field (a ``Counter`` by reason, by unit...) as ``field.key`` entries."""
    if not dataclasses.is_dataclass(counters) or isinstance(counters, type):
        raise TypeError(f"flatten needs a dataclass instance, got {type(counters).__name__}")
    out: dict[str, Scalar] = {}
    for f in dataclasses.fields(counters):
        value = getattr(counters, f.name)
        if isinstance(value, Mapping):
            out |= {f"{f.name}.{k}": v for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
                    if isinstance(v, int | float | str | bool) or v is None}
        elif isinstance(value, int | float | str | bool) or value is None:
            out[f.name] = value
    return out
