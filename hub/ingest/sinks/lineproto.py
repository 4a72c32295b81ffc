"""InfluxDB line protocol for reading batches, with per-series prefixes cached.

Each reading becomes one line, by default (the lean layout, issue 20)::

    reading,agent=a1,sensor=s1 value=1.5 1700000000000000000

or, with the sensor's own tags and the batch's sequence number (``seq_field=True``, the
``points: rich`` layout of hub.yaml's ``influx``)::

    reading,agent=a1,sensor=s1,grid=g1,kind=gas value=1.5,seq=12i 1700000000000000000

The tag part depends only on (agent, sensor), so it is escaped and built once and cached
per agent; encoding a reading is then one dict lookup and one string format. The
sensor's own tags follow ``agent`` and ``sensor``, sorted by key (the order InfluxDB
stores them in). Why the lean layout is the default (each extra tag or field costs
InfluxDB's write path: ``seq`` about 30 %, the four ladder tags about a third more;
bench/ingest_point_cost.py) and why (sensor, ts) identifies a stored reading without
``seq``: docs/architecture.md, "What a stored reading is".

Escaping follows what the servers really parse (checked against InfluxDB 1.6.7 and
VictoriaMetrics in ``tests/test_influx_sinks.py``):

- commas, equals signs and spaces in tag keys and values get a backslash; so do commas
  and spaces in the measurement;
- newline, carriage return and tab become the two characters ``\\n``, ``\\r``, ``\\t``
  (no parser reads them back as control characters, but a line can never be split);
- other backslashes are written as they are: InfluxDB 1.x keeps ``\\\\`` as two
  backslashes, so doubling them would change the value;
- trailing backslashes are dropped, since one would escape the separator after it and
  InfluxDB 1.x refuses such a line whatever is done; a tag left empty is omitted.

Values that are not finite (NaN, ±inf) have no line-protocol form: they are skipped and
counted in :attr:`LineEncoder.skipped_nonfinite`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import msgspec

from gridcall.wire import ReadingBatch

_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", **_CONTROL})
_FIELD_CONTROL = str.maketrans(_CONTROL)
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", **_CONTROL})
RESERVED_TAGS = frozenset({"agent", "sensor"})
_encode_json = msgspec.json.encode


def escape_tag(text: str) -> str:
    """A tag key or value as line protocol writes it (see the module docstring)."""
    return text.rstrip("\\").translate(_TAG_ESCAPES)


def escape_measurement(text: str) -> str:
    """A measurement name as line protocol writes it."""
    return text.rstrip("\\").translate(_MEASUREMENT_ESCAPES)


def escape_field_string(text: str) -> str:
    """A string field's value, with its double quotes: backslashes and double quotes get
    a backslash (the only escapes line protocol defines inside a string field); newline,
    carriage return and tab become ``\\n``, ``\\r``, ``\\t`` as in tags, so a line is
    never split."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').translate(_FIELD_CONTROL)
    return f'"{body}"'


def _tag(key: str, value: str) -> str:
    """``,key=value`` escaped, or "" when either side is empty after escaping."""
    k, v = escape_tag(key), escape_tag(value)
    return f",{k}={v}" if k and v else ""


class LineEncoder:
    """Encodes reading batches as line protocol, tagging each reading with its sensor's
    tags (``sensor_tags[sensor_id]``). Unknown sensors get only ``agent`` and ``sensor``.
    ``seq_field`` adds the batch's sequence number as an integer field ``seq``.

    Not thread-safe (the prefix cache is shared); one encoder per sink.
    """

    def __init__(self, sensor_tags: Mapping[str, Mapping[str, str]] | None = None, *,
                 measurement: str = "reading", max_cached_series: int = 1_000_000,
                 seq_field: bool = False) -> None:
        escaped = escape_measurement(measurement)
        if not escaped:
            raise ValueError(f"measurement name {measurement!r} is empty once escaped")
        self.measurement = escaped
        self.max_cached_series = max_cached_series
        self.seq_field = seq_field
        tags: dict[str, str] = {}
        for sensor, sensor_tags_of in (sensor_tags or {}).items():
            clash = RESERVED_TAGS & set(sensor_tags_of)
            if clash:
                raise ValueError(f"tags of sensor {sensor!r} redefine {sorted(clash)}: "
                                 "'agent' and 'sensor' are set from each reading")
            tags[sensor] = "".join(_tag(k, v) for k, v in sorted(sensor_tags_of.items()))
        self._sensor_tags = tags
        self._by_agent: dict[str, dict[str, str]] = {}
        self._cached = 0
        self.skipped_nonfinite = 0
        """Readings skipped because their value was NaN or infinite, since creation."""

    def prefix(self, agent: str, sensor: str) -> str:
        """``measurement,tags value=`` for one series, built once and cached."""
        prefixes = self._by_agent.get(agent)
        cached = None if prefixes is None else prefixes.get(sensor)
        if cached is not None:
            return cached
        if self._cached >= self.max_cached_series:  # a flood of bogus ids: start over
            self._by_agent.clear()
            self._cached = 0
            prefixes = None
        if prefixes is None:
            prefixes = self._by_agent[agent] = {}
        cached = prefixes[sensor] = (
            f"{self.measurement}{_tag('agent', agent)}{_tag('sensor', sensor)}"
            f"{self._sensor_tags.get(sensor, '')} value=")
        self._cached += 1
        return cached

    def encode(self, batches: Sequence[ReadingBatch]) -> bytes:
        """Line protocol for every finite reading of ``batches`` (b"" if there is none).

        The hot path (measured in bench/ingest_worker_cpu.py): one string per batch, made
        by joining its lines (a join per batch, then one over the batches, measured
        cheaper than one list of every line), and the finite check done once per batch on
        the sum of its values (NaN or ±inf anywhere makes the sum non-finite; so does an
        overflow of large finite values, which only sends the batch down the per-reading
        path). Only a batch whose sum is not finite is filtered reading by reading.

        A batch's values are formatted by one ``msgspec.json.encode`` of the list, split
        at its commas, instead of ``float.__repr__`` per reading (0.39 -> 0.23 µs per
        reading here): the same shortest digits that read back to the same double,
        written ``1e+16`` as ``1e16``, which line protocol parses alike (checked against
        InfluxDB 1.6.7 and VictoriaMetrics in tests/test_influx_sinks.py)."""
        parts: list[str] = []
        append = parts.append
        isfinite = math.isfinite
        by_agent = self._by_agent
        seq_field = self.seq_field
        for batch in batches:
            readings = batch.readings
            tail = f",seq={batch.seq}i " if seq_field else " "
            prefixes = by_agent.get(batch.agent) or self._prefixes_for(batch)
            values = [r.value for r in readings]
            if not isfinite(sum(values)):
                kept = [r for r in readings if isfinite(r.value)]
                self.skipped_nonfinite += len(readings) - len(kept)
                readings = kept
                values = [r.value for r in kept]
                if not kept:
                    continue
            texts = _encode_json(values).decode()[1:-1].split(",")
            try:
                append("".join([f"{prefixes[r.sensor]}{v}{tail}{r.ts}\n"
                                for r, v in zip(readings, texts, strict=True)]))
            except KeyError:  # a sensor seen for the first time
                prefixes = self._prefixes_for(batch)
                append("".join([f"{prefixes[r.sensor]}{v}{tail}{r.ts}\n"
                                for r, v in zip(readings, texts, strict=True)]))
        # A lone surrogate can't come from JSON, but must not crash the hot path either.
        return "".join(parts).encode("utf-8", "replace")

    def _prefixes_for(self, batch: ReadingBatch) -> dict[str, str]:
        """The prefixes of every sensor in ``batch``, creating those not cached yet."""
        prefix, agent = self.prefix, batch.agent
        return {r.sensor: prefix(agent, r.sensor) for r in batch.readings}
