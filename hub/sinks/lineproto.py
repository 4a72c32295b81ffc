"""InfluxDB line protocol for reading batches, with per-series prefixes cached.

Each reading becomes::

    reading,agent=a1,sensor=s1,community=c1,grid=g1,kind=gas,town=t1 value=1.5,seq=12i 17000

The tag part depends only on (agent, sensor), so it is escaped and built once and reused;
encoding a reading is then one string format. ``seq`` is the batch's sequence number, so
every stored reading traces back to the message that carried it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from wire import ReadingBatch

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\",
                              "\n": r"\n"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\\": "\\\\", "\n": r"\n"})


def escape_tag(text: str) -> str:
    """Escape a tag key or value (commas, equals signs, spaces, backslashes)."""
    return text.translate(_TAG_ESCAPES)


class LineEncoder:
    def __init__(self, sensor_tags: Mapping[str, Mapping[str, str]] | None = None, *,
                 measurement: str = "reading") -> None:
        self.measurement = measurement.translate(_MEASUREMENT_ESCAPES)
        self.sensor_tags = {
            sensor: "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items())
                            if v)
            for sensor, tags in (sensor_tags or {}).items()
        }
        self._prefixes: dict[tuple[str, str], str] = {}
        self.skipped_nonfinite = 0

    def prefix(self, agent: str, sensor: str) -> str:
        key = (agent, sensor)
        cached = self._prefixes.get(key)
        if cached is None:
            cached = (f"{self.measurement},agent={escape_tag(agent)},sensor={escape_tag(sensor)}"
                      f"{self.sensor_tags.get(sensor, '')} value=")
            self._prefixes[key] = cached
        return cached

    def encode(self, batches: Sequence[ReadingBatch]) -> bytes:
        lines: list[str] = []
        add = lines.append
        prefixes = self._prefixes
        isfinite = math.isfinite
        for batch in batches:
            agent = batch.agent
            tail = f",seq={batch.seq}i "
            for r in batch.readings:
                value = r.value
                if not isfinite(value):
                    self.skipped_nonfinite += 1
                    continue
                prefix = prefixes.get((agent, r.sensor)) or self.prefix(agent, r.sensor)
                add(f"{prefix}{value!r}{tail}{r.ts}")
        if not lines:
            return b""
        lines.append("")
        return "\n".join(lines).encode()
