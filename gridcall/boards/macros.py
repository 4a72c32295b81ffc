"""Grafana's substitution of macros and template variables in InfluxQL, as its InfluxDB
data source does it, so a dashboard's queries can run on a real InfluxDB without Grafana.

- ``$timeFilter`` → ``time >= now() - 6h`` for a relative range (Grafana leaves out the
  upper bound when the range ends at now) or ``time >= 1700000000000ms and time <=
  1700003600000ms`` for an absolute one;
- ``$__interval`` → ``10s``, ``$__interval_ms`` → ``10000``;
- ``$name`` / ``${name}`` → the variable's value. Inside a regex literal
  (``=~ /^$grid$/``) the values are regex-escaped and several become ``(a|b)``, as the
  InfluxDB data source does for multi-value and "All" variables; elsewhere exactly one
  value is allowed and it is inserted as is.

Anything else that looks like a macro (``$__range``, ``${grid:csv}``, ``[[grid]]``, an
unknown ``$name``) raises :class:`UnknownMacro`: a query must not reach InfluxDB with a
``$`` Grafana would have replaced, nor pass a test by accident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_MACRO = re.compile(r"\$\{([^}]*)\}|\$(\w+)|\[\[([^\]]*)\]\]")
_REGEX_LITERAL = re.compile(r"[=!]~\s*/((?:\\.|[^/\\])*)/")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_DURATION = re.compile(r"^\d+(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
            "w": 604_800_000}


class UnknownMacro(ValueError):
    """A ``$...`` (or ``[[...]]``) the substitution does not know; says which and where."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Either ``relative`` (``"6h"``: now-6h → now) or absolute ``start_ms``/``end_ms``."""

    relative: str | None = "6h"
    start_ms: int | None = None
    end_ms: int | None = None

    def __post_init__(self) -> None:
        absolute = self.start_ms is not None and self.end_ms is not None
        if (self.relative is None) == (not absolute):
            raise ValueError("give a relative duration or both start_ms and end_ms")
        if self.relative is not None and not _DURATION.match(self.relative):
            raise ValueError(f"relative range {self.relative!r}: use e.g. 6h, 1m, 7d")

    def influxql(self) -> str:
        if self.relative is not None:
            return f"time >= now() - {self.relative}"
        return f"time >= {self.start_ms}ms and time <= {self.end_ms}ms"


def duration_ms(text: str) -> int:
    """``"10s"`` → 10000 (Grafana-style durations)."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"duration {text!r}: use e.g. 10s, 1m, 6h")
    return int(text[: -len(m.group(1))]) * _UNIT_MS[m.group(1)]


def regex_escape(value: str) -> str:
    """Escape regex metacharacters and ``/`` the way Grafana's InfluxDB data source does."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


Values = str | Sequence[str]


def expand(query: str, *, variables: Mapping[str, Values], time_range: TimeRange,
           interval: str = "10s") -> str:
    """``query`` with every macro and variable replaced; :class:`UnknownMacro` if one is
    not known (or a multi-value variable stands outside a regex)."""
    regex_spans = [m.span(1) for m in _REGEX_LITERAL.finditer(query)]
    builtins = {"timeFilter": time_range.influxql(), "__interval": interval,
                "__interval_ms": str(duration_ms(interval))}

    def replace(m: re.Match[str]) -> str:
        if m.group(3) is not None:
            raise UnknownMacro(f"[[{m.group(3)}]] at {m.start()} in {query!r}: the old "
                               "[[var]] syntax is not used by our dashboards")
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise UnknownMacro(f"${name} at {m.start()} in {query!r}: no such macro or "
                               f"variable (known: {sorted([*builtins, *variables])})")
        value = variables[name]
        values = [value] if isinstance(value, str) else list(value)
        if not values:
            raise UnknownMacro(f"${name} at {m.start()} in {query!r}: the variable is empty")
        if any(start <= m.start() < end for start, end in regex_spans):
            escaped = [regex_escape(v) for v in values]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        if len(values) != 1:
            raise UnknownMacro(f"${name} at {m.start()} in {query!r}: {len(values)} values "
                               "outside a regex literal; use =~ /^${name}$/")
        return values[0]

    return _MACRO.sub(replace, query)


def variables_used(text: str) -> set[str]:
    """The names of the template variables ``text`` refers to (not the built-in macros)."""
    names = {m.group(1) or m.group(2) for m in _MACRO.finditer(text) if m.group(3) is None}
    return {n for n in names if n and n not in ("timeFilter", "__interval", "__interval_ms")}
