"""``gridcall detect``: technicians try the detectors on data they recorded."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from typer.testing import CliRunner

from gridcall.cli import app


def write_csv(path: Path, rows: list[list[object]], sep: str = ",") -> None:
    with path.open("w", newline="") as fh:
        csv.writer(fh, delimiter=sep).writerows(rows)


def recorded(n: int = 600) -> list[list[object]]:
    rows: list[list[object]] = [["time", "level", "flow"]]
    for i in range(n):
        level = 10 + math.sin(i / 15) + 0.05 * ((i * 7919) % 13)
        flow = 2 * level + 0.1 * ((i * 104729) % 7)
        if i == 500:
            level = 60.0
        stamp = f"2026-07-01T{i // 60 % 24:02d}:{i % 60:02d}:00Z" if i < 1440 else i
        rows.append([stamp if i < 60 else 1_782_864_000 + 60 * i, f"{level:.3f}",
                     "" if i == 300 else f"{flow:.3f}"])
    return rows


def test_scores_each_row_and_flags_the_spike(tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, recorded(), sep=";")
    result = CliRunner().invoke(app, ["detect", str(src), "--time-column", "time",
                                      "--columns", "level,flow", "--sep", ";",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 600
    assert list(rows[0]) == ["time", "level", "flow", "anomaly_score", "alert"]
    assert rows[500]["alert"] == "1"
    assert "1 skipped" in result.output  # the row with an empty flow value


def test_a_missing_column_is_named_with_the_header(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    write_csv(src, recorded(5))
    result = CliRunner().invoke(app, ["detect", str(src), "--time-column", "time",
                                      "--columns", "level,presure", "--out",
                                      str(tmp_path / "o.csv")])
    assert result.exit_code == 1
    assert "no column 'presure'" in result.output
    assert "'time', 'level', 'flow'" in result.output
    assert "Traceback" not in result.output


def test_an_unreadable_timestamp_names_the_row(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    write_csv(src, [["time", "v"], ["2026-07-01 00:00:00", "1"], ["yesterday", "2"]])
    result = CliRunner().invoke(app, ["detect", str(src), "--time-column", "time",
                                      "--columns", "v", "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 1
    assert "in.csv:3: column 'time': 'yesterday' is not a timestamp" in result.output


def test_replay_csv_directly_counts_unparsable_values_and_reads_epoch_seconds(
        tmp_path: Path) -> None:
    from detectors.replay import ReplaySummary, replay_csv

    rows: list[list[object]] = [["t", "v"]]
    for i in range(400):
        value: object = f"{10 + math.sin(i / 9):.3f}"
        if i in (100, 101):
            value = "n/a" if i == 100 else ""
        rows.append([1_782_864_000 + 60 * i, 90.0 if i == 350 else value])
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, rows)
    summary = replay_csv(src, time_column="t", columns=["v"], out=out)
    assert isinstance(summary, ReplaySummary)
    assert (summary.rows, summary.skipped) == (400, 2)
    written = list(csv.DictReader(out.open()))
    assert [r["alert"] for r in written].count("1") == summary.alerts
    assert written[350]["alert"] == "1"
    assert all(r["anomaly_score"] == "" or 0.0 <= float(r["anomaly_score"]) <= 1.0
               for r in written)


def test_replay_csv_errors_name_the_file_and_reason(tmp_path: Path) -> None:
    import pytest

    from detectors import ReplayInputError
    from detectors.replay import replay_csv

    with pytest.raises(ReplayInputError, match=r"nope\.csv: cannot open"):
        replay_csv(tmp_path / "nope.csv", time_column="t", columns=["v"],
                   out=tmp_path / "o.csv")
    src = tmp_path / "in.csv"
    write_csv(src, [["t", "v"], ["2026-07-01T00:00:00+08:00", "1"], ["", "2"]])
    with pytest.raises(ReplayInputError, match=r"in\.csv:3: column 't'"):
        replay_csv(src, time_column="t", columns=["v"], out=tmp_path / "o.csv")
    assert issubclass(ReplayInputError, ValueError)
