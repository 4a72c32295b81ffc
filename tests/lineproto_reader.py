"""A small reader of InfluxDB line protocol, for tests that check what the hub writes
before (or besides) a real InfluxDB parses it. It follows the escapes the docs define:
``\\,`` ``\\=`` ``\\ `` in the measurement and tags, ``\\"`` and ``\\\\`` in string fields,
``i`` for integers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, object]
    time: int


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside of backslash escapes and double-quoted strings."""
    parts, cur, quoted, i = [], [], False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ',= "\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _value(text: str) -> object:
    if text.startswith('"'):
        return _unescape(text[1:-1])
    if text.endswith("i"):
        return int(text[:-1])
    if text in ("t", "true", "T", "True"):
        return True
    if text in ("f", "false", "F", "False"):
        return False
    return float(text)


def parse(body: bytes) -> list[Point]:
    points = []
    for line in body.decode().splitlines():
        if not line:
            continue
        head, fields, ts = _split(line, " ")
        series = _split(head, ",")
        tags = dict(_split(t, "=")[:2] for t in series[1:])
        values = {}
        for f in _split(fields, ","):
            k, v = f.split("=", 1)
            values[_unescape(k)] = _value(v)
        points.append(Point(_unescape(series[0]),
                            {_unescape(k): _unescape(v) for k, v in tags.items()},
                            values, int(ts)))
    return points
