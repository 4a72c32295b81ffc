"""Replay a recorded CSV through the default detectors (``gridcall detect``).

Univariate: one value column, one default detector. Several columns: one default
detector per column plus the multivariate default (Mahalanobis) over the whole row, and
a row's score is the highest of them. ``alert`` is 1 where an anomaly episode starts, as
an edge agent would report it, with the refractory period benchmarked on NAB (at most one
alert per 100 rows). Timestamps may be ISO 8601 or epoch seconds.

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
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from gridcall.detectors import Episodes, Mahalanobis, ReplayInputError, default_detector
from gridcall.detectors.episodes import REFRACTORY

TAB_SPELLINGS = {"\\t": "\t", "tab": "\t", "TAB": "\t"}
"""How a tab separator can be typed on a command line: ``\\t`` (backslash, t) or ``tab``."""


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    rows: int
    skipped: int
    alerts: int


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
               encoding: str = "utf-8-sig", out: Path) -> ReplaySummary:
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
                                  columns=columns, sep=sep, encoding=encoding)
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
            columns: Sequence[str], sep: str, encoding: str) -> ReplaySummary:
    reader = csv.DictReader(handle, delimiter=sep)
    try:
        return _score_rows(path, reader, sink, time_column=time_column, columns=columns,
                           sep=sep)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, encoding, exc) from None
    except csv.Error as exc:
        raise ReplayInputError(f"{path}:{reader.line_num}: {exc}") from None


def _score_rows(path: Path, reader: csv.DictReader[str], sink: IO[str], *, time_column: str,
                columns: Sequence[str], sep: str) -> ReplaySummary:
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
    detectors = {c: default_detector() for c in columns}
    joint = Mahalanobis() if len(columns) > 1 else None
    episodes = Episodes(threshold=0.9, refractory=REFRACTORY)
    writer = csv.writer(sink, delimiter=sep, lineterminator="\n")
    writer.writerow([*header, "anomaly_score", "alert"])
    rows = skipped = alerts = 0
    for row in reader:
        try:
            ts = parse_time(row[time_column] or "")
        except ValueError as exc:
            raise ReplayInputError(
                f"{path}:{reader.line_num}: column {time_column!r}: {row[time_column]!r} is "
                "not a timestamp (ISO 8601 or epoch seconds)") from exc
        rows += 1
        values = {c: _value(row[c]) for c in columns}
        scores = [detectors[c].score_one(ts, values[c]) for c in columns]
        if None in values.values():
            skipped += 1
        if joint is not None:
            scores.append(joint.score_one(ts, values))
        known = [s for s in scores if s is not None]
        score = max(known) if known else None
        alert = int(episodes.step(score) == "start")
        alerts += alert
        writer.writerow([*(row[h] for h in header),
                         "" if score is None else f"{score:.6f}", alert])
    return ReplaySummary(rows, skipped, alerts)
