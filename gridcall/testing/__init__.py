"""gridcall's testing kit: a simulated district with readable expectations (docs/testing.md).

``District``, ``ExpectationFailed`` and ``Match`` live in :mod:`gridcall.testing.district`
and are imported from here on first use: the pytest plugin (:mod:`gridcall.testing.plugin`)
is loaded into every pytest session of a project that installed gridcall, and importing
the simulator (agents, hub, detectors, about a second) must wait until a test asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridcall.testing.district import District, ExpectationFailed, Match

__all__ = ["District", "ExpectationFailed", "Match"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gridcall.testing import district

        return getattr(district, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
