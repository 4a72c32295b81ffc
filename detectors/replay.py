"""Replay a recorded CSV through the detectors (``gridcall detect``).

One value column: the default detector (:mod:`detectors.default`). Several columns: the
multivariate detector that learns normal in a baseline and keeps it
(:class:`detectors.LearnedNormal`), over the whole row. Timestamps may be ISO 8601 or
epoch seconds.

Three columns are added:

* ``anomaly_score`` in [0, 1], empty where the row was not scored (the warm-up or
  baseline, and rows with a missing value);
* ``alert``: 1 on every row the detector holds to be anomalous, the state an operator
  reads: from the row where an episode starts until ``clear_after`` scores in a row are
  normal again (no cooldown: a second incident inside a cooldown is still marked);
* ``event``: 1 on the row where an episode starts, which is what an edge agent would
  publish; after an event, the next may start only ``cooldown`` scored rows later
  unless it is far stronger (:class:`detectors.Episodes`).

With several columns a fourth, ``moved``, is added: on each event row, the sensors
whose share of that row's abnormality is at least ``MOVED_SHARE``, largest first, as
``name:share`` (:meth:`detectors.LearnedNormal.contributions`), so a technician sees
which sensor moved; empty on other rows.

A :class:`Baseline` (rows, or a duration from the first row) is the commissioning
window: the detectors learn from it and score nothing in it. For one column it is the
default detector's warm-up (``warmup`` rows, 200 unless told; a duration is at least
that warm-up); for several, the multivariate detector's baseline (400 rows unless told;
a duration is at least 12 rows). :class:`ReplaySettings` carries the detector settings,
the cooldown and the baseline; ``gridcall detect`` passes the product's defaults (the
config's ``DetectorSettings``), so the replay does what an edge agent would.

The input is read in ``encoding`` (default ``utf-8-sig``: UTF-8 with or without a
byte-order mark); the output is UTF-8 with the input's separator and ``\n`` line ends.
It is written to a temporary file next to ``out`` and renamed only when the whole file
was scored, so a run that stops on a bad row leaves any earlier ``out`` as it was.
Everything that can be wrong with the input or ``out`` is a :class:`ReplayInputError`
naming the file (and line) and the reason.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import inspect
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from gridcall.detectors import Detector, Episodes, ReplayInputError, default_detector
from gridcall.detectors.default import DefaultDetector
from gridcall.detectors.episodes import REFRACTORY
from gridcall.detectors.learned import MIN_BASELINE_ROWS, LearnedNormal

TAB_SPELLINGS = {"\\t": "\t", "tab": "\t", "TAB": "\t"}
"""How a tab separator can be typed on a command line: ``\\t`` (backslash, t) or ``tab``."""


WARMUP: int = inspect.signature(DefaultDetector).parameters["warmup"].default
"""Rows the default detector learns from before it scores (its ``warmup``)."""
BASELINE: int = inspect.signature(LearnedNormal).parameters["baseline"].default
"""Rows the multivariate detector learns normal from (its commissioning window) unless
told otherwise."""
CLEAR_AFTER = 3
"""Normal scores in a row that end an episode, as in an edge agent's watch."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(min|d|h|m|s)")
_SECONDS = {"d": 86_400.0, "h": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0}


@dataclass(frozen=True, slots=True)
class Baseline:
    """The commissioning window: the first ``rows`` rows, or the rows of the first
    ``seconds`` from the first row's timestamp.

    >>> Baseline.parse("500"), Baseline.parse("2h30m"), Baseline.parse("90s")
    (Baseline(rows=500, seconds=None), Baseline(rows=None, seconds=9000.0), \
Baseline(rows=None, seconds=90.0))
    >>> Baseline.parse("10min") == Baseline.parse("10m")  # as an operator types it
    True
    """

    rows: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str) -> Baseline:
        text = text.strip()
        if text.isdigit():
            rows = int(text)
            if rows < 2:
                raise ReplayInputError(f"--baseline {text!r}: needs at least 2 rows")
            return cls(rows=rows)
        parts = _DURATION.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            seconds = sum(float(n) * _SECONDS[u] for n, u in parts)
            if seconds > 0:
                return cls(seconds=seconds)
        raise ReplayInputError(
            f"--baseline {text!r}: give a number of rows (e.g. 400) or a duration from the "
            "first row (e.g. 90s, 30m or 30min, 2h, 1d, 1h30m)")

    def describe(self, warmup: int) -> str:
        if self.rows is not None:
            return f"baseline {self.rows} rows"
        seconds = self.seconds or 0.0
        return f"baseline {seconds:g} s from the first row (at least {warmup} rows)"


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """The detector settings, episode rules and baseline a replay scores with."""

    sensitivity: float = 0.5
    params: Mapping[str, float | int | str | bool] = field(
        default_factory=lambda: MappingProxyType({}))
    """Extra parameters of the default detector (as a sensor's ``detector.params``)."""
    cooldown: int = REFRACTORY
    """Scored rows after an event before the next may start (``detector.refractory``)."""
    clear_after: int = CLEAR_AFTER
    baseline: Baseline | None = None


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    rows: int
    skipped: int
    """Rows with a missing or unreadable value in a value column (not scored)."""
    episodes: int
    """Runs of rows with ``alert`` 1: the episodes an operator sees."""
    events: int
    """Rows with ``event`` 1: one per episode, plus any far stronger score inside one
    (:class:`detectors.Episodes` re-raises) and less any a cooldown withheld."""
    anomalous: int
    """Rows with ``alert`` 1."""
    unscored: int
    """Rows with no ``anomaly_score``: the warm-up or baseline and the skipped rows."""
    warmup: str
    """The warm-up or baseline, in words."""
    cooldown: int


def parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _value(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


MOVED_SHARE = 0.1
"""A sensor is named in ``moved`` when its share of the row's abnormality is at least
this (the largest is always named)."""


def moved_sensors(shares: Mapping[str, float]) -> str:
    """The sensors that moved, largest share first, as ``name:share`` separated by spaces.

    >>> moved_sensors({"vibration": 0.81, "current": 0.15, "flow": 0.04})
    'vibration:0.81 current:0.15'
    >>> moved_sensors({})
    ''
    """
    ranked = sorted(shares.items(), key=lambda p: -p[1])
    named = [p for i, p in enumerate(ranked) if i == 0 or p[1] >= MOVED_SHARE]
    return " ".join(f"{name}:{share:.2f}" for name, share in named)


def separator(text: str) -> str:
    r"""The field separator for ``text``: one character, or a tab spelled ``\t`` or ``tab``.

    >>> separator(";"), separator(r"\t"), separator("tab"), separator("\t")
    (';', '\t', '\t', '\t')
    """
    sep = TAB_SPELLINGS.get(text, text)
    if len(sep) != 1 or sep in "\"\r\n":
        raise ReplayInputError(
            f"--sep {text!r}: the separator must be one character other than a quote or "
            "a line break (for a tab, write '\\t' or 'tab')")
    return sep


def _check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ReplayInputError(f"--encoding {encoding!r}: unknown encoding (e.g. utf-8-sig, "
                               "gbk, latin-1)") from None


def _decode_error(path: Path, encoding: str, exc: UnicodeDecodeError) -> ReplayInputError:
    """Where decoding failed: the offsets in ``exc`` are within the chunk being read, not
    the file, so decode the file again to find the first bad byte and its line."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as whole:
        exc = whole
    line = data[:exc.start].decode(encoding, errors="replace").count("\n") + 1
    bad = data[exc.start:exc.end].hex(" ")
    if codecs.lookup(encoding).name == "gbk":
        hint = "e.g. --encoding utf-8-sig"
    else:
        hint = "e.g. --encoding gbk for a CSV saved by Chinese Excel"
    return ReplayInputError(
        f"{path}:{line}: not valid {encoding} at byte {exc.start} (0x{bad}); give the "
        f"file's encoding with --encoding, {hint}")


def _open_output(out: Path, source: Path) -> tuple[Path, IO[str]]:
    """A new temporary file next to ``out``, to be renamed over it on success."""
    if not out.parent.is_dir():
        raise ReplayInputError(f"{out}: cannot write: the folder {out.parent} does not exist")
    if out.is_dir():
        raise ReplayInputError(f"{out}: is a folder; --out needs a file name")
    with contextlib.suppress(OSError):
        if out.exists() and out.samefile(source):
            raise ReplayInputError(f"{out}: is the input file; write the scores elsewhere")
    for attempt in range(100):
        tmp = out.with_name(f".{out.name}.{os.getpid()}-{attempt}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ReplayInputError(f"{out}: cannot write: {exc.strerror}") from exc
        return tmp, os.fdopen(fd, "w", newline="", encoding="utf-8")
    raise ReplayInputError(f"{out}: cannot write: too many stale temporary files beside it")


def replay_csv(path: Path, *, time_column: str, columns: Sequence[str], sep: str = ",",
               encoding: str = "utf-8-sig", out: Path,
               settings: ReplaySettings | None = None) -> ReplaySummary:
    if not columns:
        raise ReplayInputError(f"{path}: give at least one value column")
    sep = separator(sep)
    _check_encoding(encoding)
    try:
        handle = path.open(newline="", encoding=encoding)
    except OSError as exc:
        raise ReplayInputError(f"{path}: cannot open: {exc.strerror}") from exc
    with handle:
        tmp, sink = _open_output(out, path)
        done = False
        try:
            with sink:
                summary = _replay(path, handle, sink, time_column=time_column,
                                  columns=columns, sep=sep, encoding=encoding,
                                  settings=settings or ReplaySettings())
            if out.exists():
                with contextlib.suppress(OSError):
                    shutil.copymode(out, tmp)
            try:
                tmp.replace(out)
            except OSError as exc:
                raise ReplayInputError(f"{out}: cannot write: {exc.strerror}") from exc
            done = True
        finally:
            if not done:
                tmp.unlink(missing_ok=True)
    return summary


def _replay(path: Path, handle: IO[str], sink: IO[str], *, time_column: str,
            columns: Sequence[str], sep: str, encoding: str,
            settings: ReplaySettings) -> ReplaySummary:
    reader = csv.DictReader(handle, delimiter=sep)
    try:
        return _score_rows(path, reader, sink, time_column=time_column, columns=columns,
                           sep=sep, settings=settings)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, encoding, exc) from None
    except csv.Error as exc:
        raise ReplayInputError(f"{path}:{reader.line_num}: {exc}") from None


def _detectors(columns: Sequence[str], settings: ReplaySettings, baseline: Baseline
               ) -> tuple[dict[str, Detector], LearnedNormal | None, int]:
    """One default detector for one column, or the multivariate detector for several;
    and the rows learned before scoring (without a time baseline)."""
    if len(columns) > 1:
        try:
            joint = LearnedNormal(baseline=baseline.rows or BASELINE,
                                  baseline_s=baseline.seconds)
        except ValueError as exc:
            raise ReplayInputError(f"--baseline: {exc}") from None
        return {}, joint, joint.baseline
    params: dict[str, Any] = dict(settings.params)
    if baseline.rows is not None:
        params["warmup"] = baseline.rows
    try:
        detector = default_detector(sensitivity=settings.sensitivity, **params)
    except (TypeError, ValueError) as exc:
        raise ReplayInputError(f"detector settings {params}: {exc}") from None
    return {columns[0]: detector}, None, int(params.get("warmup", WARMUP))


def _score_rows(path: Path, reader: csv.DictReader[str], sink: IO[str], *, time_column: str,
                columns: Sequence[str], sep: str, settings: ReplaySettings) -> ReplaySummary:
    header = reader.fieldnames
    if header is None:
        raise ReplayInputError(f"{path}: the file is empty; expected a header row")
    header = list(header)
    missing = [c for c in (time_column, *columns) if c not in header]
    if missing:
        bom = (" (the header starts with a byte-order mark: use --encoding utf-8-sig)"
               if header and header[0].startswith("\ufeff") else "")
        raise ReplayInputError(
            f"{path}: no column {', '.join(map(repr, missing))}; the header has "
            f"{', '.join(map(repr, header))} (separator {sep!r}){bom}")
    baseline = settings.baseline or Baseline()
    univariate, joint, warmup = _detectors(columns, settings, baseline)
    threshold = joint.threshold if joint is not None else univariate[columns[0]].threshold
    state = Episodes(threshold=threshold, clear_after=settings.clear_after)
    events = Episodes(threshold=threshold, clear_after=settings.clear_after,
                      refractory=settings.cooldown)
    writer = csv.writer(sink, delimiter=sep, lineterminator="\n")
    writer.writerow([*header, "anomaly_score", "alert", "event",
                     *(["moved"] if joint is not None else [])])
    rows = skipped = episodes = published = anomalous = unscored = 0
    was_alert = False
    learn_until: float | None = None
    for row in reader:
        try:
            ts = parse_time(row[time_column] or "")
        except ValueError as exc:
            raise ReplayInputError(
                f"{path}:{reader.line_num}: column {time_column!r}: {row[time_column]!r} is "
                "not a timestamp (ISO 8601 or epoch seconds)") from exc
        rows += 1
        values = {c: _value(row[c]) for c in columns}
        if None in values.values():
            skipped += 1
        if joint is not None:
            score = joint.score_one(ts, values)
        else:
            (column,) = columns
            score = univariate[column].score_one(ts, values[column])
        if baseline.seconds is not None and joint is None:
            if learn_until is None:
                learn_until = ts + baseline.seconds
            if ts < learn_until:
                score = None  # the commissioning window: learned from, not scored
        event = int(events.step(score) == "start")
        state.step(score)
        alert = int(state.active)
        published += event
        episodes += alert and not was_alert
        was_alert = bool(alert)
        anomalous += alert
        unscored += score is None
        moved = [] if joint is None else [moved_sensors(joint.contributions()) if event
                                           else ""]
        writer.writerow([*(row[h] for h in header),
                         "" if score is None else f"{score:.6f}", alert, event, *moved])
    described = (f"{'warm-up' if joint is None else 'baseline'} {warmup} rows"
                 if settings.baseline is None
                 else baseline.describe(warmup if joint is None else MIN_BASELINE_ROWS))
    return ReplaySummary(rows=rows, skipped=skipped, episodes=episodes, events=published,
                         anomalous=anomalous,
                         unscored=unscored, warmup=described, cooldown=settings.cooldown)
