"""``gridcall detect``: technicians try the detectors on data they recorded."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from click.testing import Result
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
    rows = list(csv.DictReader(out.open(newline=""), delimiter=";"))
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
    from gridcall.detectors.replay import ReplaySummary, replay_csv

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
    from gridcall.detectors import ReplayInputError
    from gridcall.detectors.replay import replay_csv

    with pytest.raises(ReplayInputError, match=r"nope\.csv: cannot open"):
        replay_csv(tmp_path / "nope.csv", time_column="t", columns=["v"],
                   out=tmp_path / "o.csv")
    src = tmp_path / "in.csv"
    write_csv(src, [["t", "v"], ["2026-07-01T00:00:00+08:00", "1"], ["", "2"]])
    with pytest.raises(ReplayInputError, match=r"in\.csv:3: column 't'"):
        replay_csv(src, time_column="t", columns=["v"], out=tmp_path / "o.csv")
    assert issubclass(ReplayInputError, ValueError)


def detect(*args: str) -> Result:
    return CliRunner().invoke(app, ["detect", *args])


def refused(result: Result, message: str) -> None:
    """Exit 1 with one clear line naming the problem, and no traceback."""
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0, result.output


def test_a_gbk_file_is_refused_with_its_line_and_a_hint_and_read_with_encoding_gbk(
        tmp_path: Path) -> None:
    src, out = tmp_path / "gbk.csv", tmp_path / "out.csv"
    lines = ["time,level,note"] + [f"{1_782_864_000 + 60 * i},{10 + i % 3},ok"
                                   for i in range(600)]
    lines[500] = lines[500].replace("ok", "水位正常")  # beyond the first 8 KB read
    src.write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    args = [str(src), "--time-column", "time", "--columns", "level", "--out", str(out)]

    refused(detect(*args), "gbk.csv:501: not valid utf-8-sig at byte")
    assert "--encoding gbk" in detect(*args).output
    assert not out.exists()

    result = detect(*args, "--encoding", "gbk")
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").splitlines()[500].startswith(lines[500] + ",")
    assert "水位正常" in lines[500]


def test_an_unknown_encoding_is_named(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    write_csv(src, recorded(5))
    refused(detect(str(src), "--time-column", "time", "--columns", "level", "--out",
                   str(tmp_path / "o.csv"), "--encoding", "gbkk"),
            "--encoding 'gbkk': unknown encoding")


def test_a_utf8_header_with_a_byte_order_mark_is_read_by_default(tmp_path: Path) -> None:
    src, out = tmp_path / "excel.csv", tmp_path / "out.csv"
    src.write_text("time,level\n1782864000,10\n1782864060,11\n", encoding="utf-8-sig")
    result = detect(str(src), "--time-column", "time", "--columns", "level", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("time,level,anomaly_score,alert\n")


def test_out_into_a_folder_that_does_not_exist_names_the_folder(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    write_csv(src, recorded(5))
    missing = tmp_path / "results"
    refused(detect(str(src), "--time-column", "time", "--columns", "level", "--out",
                   str(missing / "out.csv")),
            f"cannot write: the folder {missing} does not exist")
    assert not missing.exists()


@pytest.mark.parametrize("sep", [";;", "", '"'])
def test_a_separator_must_be_one_character(tmp_path: Path, sep: str) -> None:
    src = tmp_path / "in.csv"
    write_csv(src, recorded(5))
    refused(detect(str(src), "--time-column", "time", "--columns", "level", "--sep", sep,
                   "--out", str(tmp_path / "o.csv")),
            f"--sep {sep!r}: the separator must be one character")


@pytest.mark.parametrize("spelling", ["\\t", "tab", "\t"])
def test_a_tab_separator_can_be_typed_as_backslash_t_or_tab(tmp_path: Path,
                                                            spelling: str) -> None:
    src, out = tmp_path / "in.tsv", tmp_path / "out.tsv"
    write_csv(src, recorded(5), sep="\t")
    result = detect(str(src), "--time-column", "time", "--columns", "level", "--sep",
                    spelling, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "time\tlevel\tflow\tanomaly_score\talert"


def test_the_output_keeps_the_input_separator_and_newline_line_ends(tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, recorded(5), sep=";")
    result = detect(str(src), "--time-column", "time", "--columns", "level,flow", "--sep",
                    ";", "--out", str(out))
    assert result.exit_code == 0, result.output
    written = out.read_bytes()
    assert written.startswith(b"time;level;flow;anomaly_score;alert\n")
    assert b"\r" not in written
    assert written.count(b"\n") == 6


def test_a_run_that_stops_on_a_bad_row_leaves_the_previous_output_untouched(
        tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    rows = recorded(600)
    rows[550][0] = "yesterday"
    write_csv(src, rows)
    out.write_text("the previous run's scores\n")
    refused(detect(str(src), "--time-column", "time", "--columns", "level", "--out",
                   str(out)),
            "in.csv:551: column 'time': 'yesterday' is not a timestamp")
    assert out.read_text() == "the previous run's scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_a_run_that_stops_on_a_bad_row_writes_no_output(tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, [["time", "v"], ["1782864000", "1"], ["soon", "2"]])
    refused(detect(str(src), "--time-column", "time", "--columns", "v", "--out", str(out)),
            "in.csv:3: column 'time'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
