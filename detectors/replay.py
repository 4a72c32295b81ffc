"""Replay a recorded CSV through the default detectors (``gridcall detect``).

Univariate: one value column, one default detector. Several columns: one default
detector per column plus the multivariate default (Mahalanobis) over the whole row, and
a row's score is the highest of them. ``alert`` is 1 where an anomaly episode starts, as
an edge agent would report it, with the refractory period benchmarked on NAB (at most one
alert per 100 rows). Timestamps may be ISO 8601 or epoch seconds.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from detectors import Episodes, Mahalanobis, ReplayInputError, default_detector
from detectors.episodes import REFRACTORY


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


def replay_csv(path: Path, *, time_column: str, columns: Sequence[str], sep: str = ",",
               out: Path) -> ReplaySummary:
    if not columns:
        raise ReplayInputError(f"{path}: give at least one value column")
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ReplayInputError(f"{path}: cannot open: {exc.strerror}") from exc
    with handle, out.open("w", newline="", encoding="utf-8") as sink:
        reader = csv.DictReader(handle, delimiter=sep)
        header = reader.fieldnames or []
        missing = [c for c in (time_column, *columns) if c not in header]
        if missing:
            raise ReplayInputError(
                f"{path}: no column {', '.join(map(repr, missing))}; the header has "
                f"{', '.join(map(repr, header))} (separator {sep!r})")
        detectors = {c: default_detector() for c in columns}
        joint = Mahalanobis() if len(columns) > 1 else None
        episodes = Episodes(threshold=0.9, refractory=REFRACTORY)
        writer = csv.writer(sink)
        writer.writerow([*header, "anomaly_score", "alert"])
        rows = skipped = alerts = 0
        for line, row in enumerate(reader, start=2):
            try:
                ts = parse_time(row[time_column] or "")
            except ValueError as exc:
                raise ReplayInputError(
                    f"{path}:{line}: column {time_column!r}: {row[time_column]!r} is not a "
                    "timestamp (ISO 8601 or epoch seconds)") from exc
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
