"""Replay recorded data as sensor streams: InfluxDB exports and data-logger CSV files.

Three shapes of CSV are recognised by their header (``read_recording``):

* **InfluxDB 1.x** (``influx -format csv`` and the HTTP API's ``Accept: application/csv``):
  ``name,time,<tags and fields...>`` (``SELECT *``: tags and fields as columns) or
  ``name,tags,time,<fields...>`` (``GROUP BY`` tags: ``tags`` holds ``k=v,k=v``). The
  header is repeated before each series; time is epoch ns, or RFC 3339 with
  ``-precision rfc3339``.
* **InfluxDB 2.x annotated CSV** (``influx query --raw``, the ``/api/v2/query`` API):
  ``#datatype``/``#group``/``#default`` rows, then ``,result,table,_start,_stop,_time,
  _value,_field,_measurement,<tags>``; several tables, each maybe with its own header,
  separated by blank lines.
* **A data logger's file**: a timestamp column (``time``, ``timestamp``, ``ts``, ``date``,
  ``datetime``, or the first column) and one or many value columns. Timestamps are ISO 8601
  (no zone: UTC) or epoch seconds, milliseconds, microseconds or nanoseconds (told apart
  by magnitude). A headerless export (VictoriaMetrics' ``/api/v1/export/csv``) is read
  with ``columns=`` naming its columns.

Each value becomes a point of a *series*, keyed by the row's ``sensor`` tag if it has one,
else by its field (``value`` columns of one measurement) or value column name. ``mapping``
maps keys to sensor ids (``{"TT-101": "market-g1-temperature-1"}``); keys not mapped stay
as they are. With ``sensors`` (the config's ids) every key must end up a known sensor,
else the error lists them (and the near misses).

Bad rows lose nothing else: a row whose time or value cannot be read is skipped and
reported (``Recording.skipped``: file:line and why); the good rows all play. A file that
cannot be used at all (no time column, nothing readable, unknown sensors) raises
:class:`ReplayError` naming the file and line.

Playing: :class:`ReplaySource` has the edge agent's source shape (``samples()``), paced on
a clock at ``speed`` times real time. :class:`RecordedStream` gives ``value(t)`` like a
:class:`~gridcall.simulators.streams.SensorStream`, for the simulated district (a scenario's
``replay:`` entry), holding each recorded value until the next and giving None across
gaps (a recorded dropout stays one).
"""

from __future__ import annotations

import asyncio
import bisect
import codecs
import csv
import difflib
import heapq
import math
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gridcall.edge_agent.sources import Sample
from gridcall.wire.clock import Clock, from_epoch, from_iso

Format = Literal["influx-v1", "influx-v2", "logger"]
TIME_NAMES = ("time", "timestamp", "ts", "date", "datetime", "_time", "time_utc", "datetime_utc")
NOT_VALUES_V1 = {"name", "tags", "time", "agent", "sensor", "grid", "kind", "community",
                 "town", "seq", "unit"}
"""Columns of an InfluxDB 1.x export that are not the values to play (gridcall's tags and
the batch sequence number), unless ``value_field`` names one."""


class ReplayError(ValueError):
    """A recording that cannot be played; the message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class SkippedRow:
    line: int
    reason: str

    def describe(self, path: Path | str) -> str:
        return f"{path}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Series:
    sensor: str
    ts: tuple[int, ...]
    """Epoch ns, ascending."""
    values: tuple[float | None, ...]

    @property
    def interval_ns(self) -> int:
        """The typical (median) step between readings."""
        if len(self.ts) < 2:
            return 0
        return int(statistics.median(b - a for a, b in zip(self.ts, self.ts[1:], strict=False)))

    def at(self, t_ns: int, *, gap_factor: float = 2.5) -> float | None:
        """The value recorded at or last before ``t_ns``; None before the first reading,
        or if the last one is more than ``gap_factor`` typical intervals old."""
        i = bisect.bisect_right(self.ts, t_ns) - 1
        if i < 0:
            return None
        step = self.interval_ns
        if step and t_ns - self.ts[i] > gap_factor * step:
            return None
        return self.values[i]


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path
    format: Format
    series: Mapping[str, Series]
    rows: int
    """Rows read (good ones: each gave at least one value)."""
    skipped: tuple[SkippedRow, ...] = ()
    columns: tuple[str, ...] = field(default=())

    @property
    def points(self) -> int:
        return sum(len(s.ts) for s in self.series.values())

    @property
    def start_ns(self) -> int:
        return min(s.ts[0] for s in self.series.values())

    @property
    def end_ns(self) -> int:
        return max(s.ts[-1] for s in self.series.values())

    def samples(self) -> Iterator[Sample]:
        """Every point of every series, in time order (ties by sensor)."""
        def points(s: Series) -> Iterator[tuple[int, str, float | None]]:
            for t, v in zip(s.ts, s.values, strict=True):
                yield t, s.sensor, v

        merged = heapq.merge(*(points(s) for _, s in sorted(self.series.items())),
                             key=lambda p: (p[0], p[1]))
        for t, sensor, v in merged:
            yield Sample(sensor, t, v)

    def describe(self) -> str:
        span = (self.end_ns - self.start_ns) / 1e9
        text = (f"{self.path}: {self.format}, {self.rows} rows, {self.points} values of "
                f"{len(self.series)} sensor(s) over {span:g} s")
        if self.skipped:
            text += f"; {len(self.skipped)} row(s) skipped"
        return text


# --------------------------------------------------------------------------- parsing


def parse_time(text: str) -> int:
    """Epoch ns from ISO 8601 (no zone: UTC) or an epoch number in s, ms, µs or ns."""
    text = text.strip()
    if not text:
        raise ValueError("no time")
    if text.isdigit():
        return from_epoch(int(text))  # whole numbers exactly, whatever their unit
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"time {text!r} is not a moment after 1970")
        return from_epoch(number)
    try:
        return from_iso(text)
    except ValueError:
        raise ValueError(f"time {text!r} is neither ISO 8601 nor an epoch number") from None


def parse_value(text: str) -> float | None:
    """A number, or None for an empty cell (a missing reading)."""
    text = text.strip()
    if not text or text.lower() in ("null", "nan", "none", "na"):
        return None
    if text.lower() in ("true", "false"):
        return 1.0 if text.lower() == "true" else 0.0
    v = float(text.rstrip("i"))  # InfluxDB integers may carry their 'i'
    if not math.isfinite(v):
        raise ValueError(f"value {text!r} is not finite")
    return v


Point = tuple[str, int, float | None]


class _Reader:
    """Turns the rows of one file into (key, ns, value) points and skipped rows."""

    def __init__(self, path: Path, *, value_field: str | None) -> None:
        self.path = path
        self.value_field = value_field
        self.points: list[Point] = []
        self.skipped: list[SkippedRow] = []
        self.rows = 0
        self.format: Format = "logger"
        self.columns: tuple[str, ...] = ()

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"

    def skip(self, line: int, reason: str) -> None:
        self.skipped.append(SkippedRow(line, reason))

    def read(self, rows: Iterator[tuple[int, list[str]]], columns: Seq[str] | None) -> None:
        first = next(((n, r) for n, r in rows if any(c.strip() for c in r)), None)
        if first is None:
            raise ReplayError(f"{self.path}: no rows")
        line, row = first
        if columns is not None:
            header = [c.strip() for c in columns]
            self.format = "logger"
            self._logger(header, _chain(first, rows), line)
        elif row[0].startswith("#"):
            self.format = "influx-v2"
            self._v2(_chain(first, rows))
        else:
            header = [c.strip() for c in row]
            if header[:2] == ["name", "time"] or header[:3] == ["name", "tags", "time"]:
                self.format = "influx-v1"
                self._v1(header, rows, line)
            else:
                self.format = "logger"
                if _is_time(header[0]):
                    raise ReplayError(f"{self.where(line)}: the first row is data, not a "
                                      "header; name the columns (columns=...)")
                self._logger(header, rows, line)

    # InfluxDB 1.x --------------------------------------------------------------
    def _v1(self, header: list[str], rows: Iterator[tuple[int, list[str]]], line: int) -> None:
        self.columns = tuple(header)
        for n, row in rows:
            if not any(c.strip() for c in row):
                continue
            cells = [c.strip() for c in row]
            if cells[:2] == ["name", "time"] or cells[:3] == ["name", "tags", "time"]:
                header = cells  # the CLI repeats the header before each series
                continue
            if len(cells) != len(header):
                self.skip(n, f"{len(cells)} cells, the header at line {line} has "
                             f"{len(header)}")
                continue
            rec = dict(zip(header, cells, strict=True))
            tags = dict(_tag_pairs(rec.get("tags", "")))
            tags.update({k: v for k, v in rec.items() if k in ("sensor", "agent")})
            try:
                ts = parse_time(rec["time"])
            except ValueError as exc:
                self.skip(n, str(exc))
                continue
            fields = ([self.value_field] if self.value_field else
                      [c for c in header if c not in NOT_VALUES_V1 and c not in tags])
            if self.value_field and self.value_field not in rec:
                raise ReplayError(f"{self.where(n)}: no column {self.value_field!r} "
                                  f"(columns: {', '.join(header)})")
            self._values(n, ts, fields, rec, tags.get("sensor"))

    # InfluxDB 2.x annotated CSV ------------------------------------------------
    def _v2(self, rows: Iterator[tuple[int, list[str]]]) -> None:
        header: list[str] | None = None
        for n, row in rows:
            if not any(c.strip() for c in row):
                header = None  # a blank line ends a table; the next may bring its own
                continue
            if row[0].startswith("#"):
                header = None
                continue
            cells = [c.strip() for c in row]
            if header is None:
                header = cells
                self.columns = tuple(header)
                if "_time" not in header or "_value" not in header:
                    raise ReplayError(f"{self.where(n)}: annotated CSV without _time and "
                                      f"_value columns (columns: {', '.join(header)})")
                continue
            if len(cells) != len(header):
                self.skip(n, f"{len(cells)} cells, its table's header has {len(header)}")
                continue
            rec = dict(zip(header, cells, strict=True))
            try:
                ts = parse_time(rec["_time"])
            except ValueError as exc:
                self.skip(n, str(exc))
                continue
            if self.value_field and rec.get("_field") != self.value_field:
                continue
            field_ = rec.get("_field", "_value")
            sensor = rec.get("sensor") or None
            key = sensor or (field_ if not rec.get("_measurement") else
                             f"{rec['_measurement']}.{field_}")
            try:
                value = parse_value(rec["_value"])
            except ValueError as exc:
                self.skip(n, f"_value: {exc}")
                continue
            self.rows += 1
            self.points.append((key, ts, value))

    # a data logger -------------------------------------------------------------
    def _logger(self, header: list[str], rows: Iterator[tuple[int, list[str]]],
                line: int) -> None:
        self.columns = tuple(header)
        lowered = [h.lower() for h in header]
        time_col = next((header[lowered.index(n)] for n in TIME_NAMES if n in lowered), None)
        if time_col is None:
            # no named time column: the first one, if its first cell reads as a time
            time_col = header[0]
        values = [h for h in header if h != time_col and h not in ("__name__",)]
        if not values:
            raise ReplayError(f"{self.where(line)}: only a time column ({time_col!r}); "
                              "a recording needs at least one value column")
        named = "__name__" in header
        for n, row in rows:
            if not any(c.strip() for c in row):
                continue
            cells = [c.strip() for c in row]
            if len(cells) != len(header):
                self.skip(n, f"{len(cells)} cells, the header has {len(header)}")
                continue
            rec = dict(zip(header, cells, strict=True))
            try:
                ts = parse_time(rec[time_col])
            except ValueError as exc:
                self.skip(n, f"{time_col}: {exc}")
                continue
            if named:  # VictoriaMetrics: a metric name column and label columns
                sensor = rec.get("sensor") or rec["__name__"]
                value_col = "__value__" if "__value__" in rec else "value"
                self._values(n, ts, [value_col], rec, sensor)
            else:
                self._values(n, ts, values, rec, None)

    def _values(self, n: int, ts: int, columns: Seq[str], rec: Mapping[str, str],
                sensor: str | None) -> None:
        got: list[Point] = []
        bad: list[str] = []
        for col in columns:
            try:
                v = parse_value(rec.get(col, ""))
            except ValueError as exc:
                bad.append(f"{col}: {exc}")
                continue
            if v is None and len(columns) > 1:
                continue  # an empty cell in a wide file: that column has no reading now
            key = sensor if sensor and len(columns) == 1 else (
                f"{sensor}.{col}" if sensor else col)
            got.append((key, ts, v))
        if bad:
            self.skip(n, "; ".join(bad))
            return  # a row with a bad cell is skipped whole: nothing half-read plays
        if got:
            self.rows += 1
            self.points.extend(got)


def _chain(first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]
           ) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


def _is_time(text: str) -> bool:
    try:
        parse_time(text)
    except ValueError:
        return False
    return True


def _tag_pairs(text: str) -> Iterator[tuple[str, str]]:
    for part in text.split(","):
        if "=" in part:
            k, _, v = part.partition("=")
            yield k.strip(), v.strip()


def read_recording(path: Path | str, *, mapping: Mapping[str, str] | None = None,
                   sensors: Collection[str] | None = None, value_field: str | None = None,
                   columns: Seq[str] | None = None, encoding: str = "utf-8-sig",
                   strict: bool = False) -> Recording:
    """Read a recorded CSV (see the module docstring). ``strict``: a bad row is an error
    instead of being skipped."""
    path = Path(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ReplayError(f"{path}: unknown encoding {encoding!r}") from None
    reader = _Reader(path, value_field=value_field)
    try:
        with path.open(encoding=encoding, newline="") as handle:
            lines = csv.reader(handle)
            # line_num: the file line a row ends on (a quoted cell may hold newlines)
            reader.read(((lines.line_num, row) for row in lines), columns)
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ReplayError(f"{path}: not {encoding} text ({exc.reason} at byte "
                          f"{exc.start})") from None
    except csv.Error as exc:
        raise ReplayError(f"{path}: not CSV: {exc}") from None
    if strict and reader.skipped:
        raise ReplayError(reader.skipped[0].describe(path))
    if not reader.points:
        first = f"; first: {reader.skipped[0].describe(path)}" if reader.skipped else ""
        raise ReplayError(f"{path}: no readable values in {reader.rows + len(reader.skipped)}"
                          f" row(s){first}")
    mapping = dict(mapping or {})
    by_sensor: dict[str, list[tuple[int, float | None]]] = {}
    for key, ts, v in reader.points:
        by_sensor.setdefault(mapping.get(key, key), []).append((ts, v))
    if sensors is not None:
        unknown = sorted(k for k in by_sensor if k not in sensors)
        if unknown:
            hints = []
            for k in unknown[:5]:
                near = difflib.get_close_matches(k, list(sensors), n=1)
                hints.append(f"{k!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ReplayError(
                f"{path}: column(s)/series not mapped to a sensor of the config: "
                f"{', '.join(hints)}{more}; map them (column=sensor-id) or drop them")
    series = {}
    for sensor, pts in by_sensor.items():
        pts.sort(key=lambda p: p[0])  # stable: equal times keep the file's order
        series[sensor] = Series(sensor, tuple(p[0] for p in pts), tuple(p[1] for p in pts))
    return Recording(path, reader.format, series, reader.rows, tuple(reader.skipped),
                     reader.columns)


# --------------------------------------------------------------------------- playing


Sleep = Callable[[float], Awaitable[None]]


class ReplaySource:
    """An edge agent source that plays a recording (``samples()``, like SimulatedSource).

    The recording's first reading is played at the clock's time when ``samples()`` starts
    (or at ``start_ns``); later ones follow at their recorded distance divided by
    ``speed``, stamped with the time they are played, so a week recorded at 5 s
    intervals plays in an hour at ``speed=168`` and the hub sees a consistent stream.
    ``keep_time=True`` stamps the recorded times instead (a backfill). ``sensors``
    restricts it to some of the series (an agent's own). After the last reading it
    idles, like a field source, unless ``then_idle=False``."""

    def __init__(self, recording: Recording, *, clock: Clock, speed: float = 1.0,
                 sensors: Collection[str] | None = None, start_ns: int | None = None,
                 keep_time: bool = False, then_idle: bool = True,
                 sleep: Sleep = asyncio.sleep) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.recording = recording
        self.clock = clock
        self.speed = speed
        self.sensors = None if sensors is None else frozenset(sensors)
        self.start_ns = start_ns
        self.keep_time = keep_time
        self.then_idle = then_idle
        self.sleep = sleep
        self.played = 0
        self.done = asyncio.Event()

    async def samples(self) -> AsyncIterator[Sample]:
        start = self.clock() if self.start_ns is None else self.start_ns
        rec0 = self.recording.start_ns
        for s in self.recording.samples():
            if self.sensors is not None and s.sensor not in self.sensors:
                continue
            due = start + round((s.ts - rec0) / self.speed)
            while (now := self.clock()) < due:
                await self.sleep((due - now) / 1e9)
            self.played += 1
            yield Sample(s.sensor, s.ts if self.keep_time else due, s.value)
        self.done.set()
        if self.then_idle:
            await asyncio.Event().wait()  # a field source never ends; the agent's stop does


class RecordedStream:
    """A sensor's recorded series as a stream: ``value(t)`` (POSIX s) is the recorded
    value at ``offset`` into the recording, where the recording's first reading lies at
    ``start`` (POSIX s) and time runs ``speed`` times faster; None before, after and in
    recorded gaps."""

    __slots__ = ("series", "speed", "start", "t0")

    def __init__(self, series: Series, *, start: float, speed: float = 1.0,
                 recording_start_ns: int | None = None) -> None:
        self.series = series
        self.start = start
        self.speed = speed
        self.t0 = series.ts[0] if recording_start_ns is None else recording_start_ns

    @property
    def end(self) -> float:
        return self.start + (self.series.ts[-1] - self.t0) / 1e9 / self.speed

    def covers(self, t: float) -> bool:
        return self.start <= t <= self.end

    def value(self, t: float) -> float | None:
        if not self.covers(t):
            return None
        return self.series.at(self.t0 + round((t - self.start) * self.speed * 1e9))
