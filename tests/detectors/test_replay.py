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
    assert list(rows[0]) == ["time", "level", "flow", "anomaly_score", "alert", "event",
                             "moved"]
    assert rows[500]["alert"] == rows[500]["event"] == "1"
    assert "1 with a missing value" in result.output  # the row with an empty flow value


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
    assert [r["event"] for r in written].count("1") == summary.episodes
    assert [r["alert"] for r in written].count("1") == summary.anomalous
    assert [r["anomaly_score"] for r in written].count("") == summary.unscored
    assert written[350]["alert"] == written[350]["event"] == "1"
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
    assert out.read_text(encoding="utf-8").startswith(
        "time,level,anomaly_score,alert,event\n")


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
    assert out.read_text().splitlines()[0] == (
        "time\tlevel\tflow\tanomaly_score\talert\tevent")


def test_the_output_keeps_the_input_separator_and_newline_line_ends(tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, recorded(5), sep=";")
    result = detect(str(src), "--time-column", "time", "--columns", "level,flow", "--sep",
                    ";", "--out", str(out))
    assert result.exit_code == 0, result.output
    written = out.read_bytes()
    assert written.startswith(b"time;level;flow;anomaly_score;alert;event;moved\n")
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


def planted(n: int = 1000, *, blip: int | None = None, step: int = 600,
            lasts: int = 10, blip_size: float = 4.0) -> list[list[object]]:
    """A cold-room log, one row a minute, with a +15 degC step of ``lasts`` rows at row
    ``step`` and, at ``blip``, a smaller excursion of ``blip_size`` the detector also
    alerts on. The file is shorter than a day, the default detector's novelty learning
    period, in which an outlier must be as far out as a new extreme (``extreme_z``) to
    alert: at the product's extreme_z 8 that takes +8 degC rather than +4."""
    rows: list[list[object]] = [["time", "temp", "current"]]
    for i in range(n):
        temp = 4 + math.sin(i / 15) + 0.05 * ((i * 7919) % 13)
        current = 2 * temp + 0.1 * ((i * 104729) % 7)
        if i == blip:
            temp += blip_size
        if step <= i < step + lasts:
            temp += 15
        rows.append([1_782_864_000 + 60 * i, f"{temp:.3f}", f"{current:.3f}"])
    return rows


def scored(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(newline="")))


def flags(rows: list[dict[str, str]], column: str) -> list[int]:
    return [i for i, r in enumerate(rows) if r[column] == "1"]


def episodes_are_well_formed(rows: list[dict[str, str]], *, cooldown: int) -> None:
    """Every row scored anomalous is an alert row, every event is an alert row, and
    without a cooldown each run of alert rows opens with an event (a far stronger score
    inside the run may publish another)."""
    alert, event = flags(rows, "alert"), flags(rows, "event")
    held = [i for i, r in enumerate(rows)
            if r["anomaly_score"] and float(r["anomaly_score"]) >= 0.9]
    assert set(held) <= set(alert)
    assert set(event) <= set(alert)
    if cooldown == 0:
        run_starts = [i for i in alert if i - 1 not in alert]
        assert set(run_starts) <= set(event)


def test_a_planted_step_is_an_alert_and_one_event_at_the_product_defaults(
        tmp_path: Path) -> None:
    """The issue's failure: a small alert 97 rows before a +15 degC step used to take
    the only alert (alert was 1 on episode starts only) and its cooldown hid the step."""
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, planted(blip=503, blip_size=8.0))
    result = detect(str(src), "--time-column", "time", "--columns", "temp", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = scored(out)
    assert list(rows[0])[-3:] == ["anomaly_score", "alert", "event"]
    assert rows[503]["alert"] == rows[503]["event"] == "1"  # the planted small alert
    assert rows[600]["alert"] == rows[600]["event"] == "1"  # the step: seen and published
    episodes_are_well_formed(rows, cooldown=0)
    alert, event = flags(rows, "alert"), flags(rows, "event")
    unscored = sum(r["anomaly_score"] == "" for r in rows)
    assert unscored == 200  # the warm-up
    runs = sum(1 for i in alert if i - 1 not in alert)
    assert (f"1000 rows → {out}: {runs} episodes, {len(event)} events (event), "
            f"{len(alert)} anomalous rows "
            f"(alert), {unscored} unscored (warm-up 200 rows; 0 with a missing value); "
            "cooldown 0 rows") in " ".join(result.output.split())


def test_a_cooldown_limits_events_but_never_hides_the_alert_state(tmp_path: Path) -> None:
    from gridcall.detectors.replay import ReplaySettings, replay_csv

    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, planted(blip=503))
    # novelty counted from the start (no learning period): this file is shorter than a
    # day, and its novel transitions give the events a cooldown withholds
    learnt = {"novel_learn": 0.0}
    summary = replay_csv(src, time_column="time", columns=["temp"], out=out,
                         settings=ReplaySettings(cooldown=100, params=learnt))
    rows = scored(out)
    assert rows[503]["event"] == "1"
    assert rows[600]["alert"] == "1"  # inside the blip's cooldown, still held anomalous
    episodes_are_well_formed(rows, cooldown=100)
    assert summary.cooldown == 100
    assert summary.events == len(flags(rows, "event"))
    alert = flags(rows, "alert")
    assert summary.episodes == sum(1 for i in alert if i - 1 not in alert)  # alert runs
    assert summary.anomalous == len(flags(rows, "alert"))
    # without the cooldown the same rows are alerts; only the events differ
    plain = tmp_path / "plain.csv"
    replay_csv(src, time_column="time", columns=["temp"], out=plain,
               settings=ReplaySettings(cooldown=0, params=learnt))
    assert flags(scored(plain), "alert") == flags(rows, "alert")
    assert len(flags(scored(plain), "event")) > summary.events


def test_a_fault_in_several_columns_is_held_for_its_whole_length(tmp_path: Path) -> None:
    """Several columns: the multivariate detector learns normal in the baseline and
    keeps it, so every row of a 10-row fault is an alert and the fault is one event."""
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, planted(blip=None))
    result = detect(str(src), "--time-column", "time", "--columns", "temp,current",
                    "--baseline", "300", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = scored(out)
    assert all(r["anomaly_score"] == "" for r in rows[:300])
    assert all(r["anomaly_score"] != "" for r in rows[300:])
    assert all(r["alert"] == "1" for r in rows[600:610])
    assert flags(rows, "event") == [600]
    assert list(rows[0])[-4:] == ["anomaly_score", "alert", "event", "moved"]
    # the event names the sensor that moved (the step is in temp; current did not move)
    assert rows[600]["moved"].split()[0].startswith("temp:"), rows[600]["moved"]
    assert not any(r["moved"] for i, r in enumerate(rows) if i != 600)
    assert not any(r["alert"] == "1" for r in rows[300:600])
    episodes_are_well_formed(rows, cooldown=0)
    assert "300 unscored (baseline 300 rows; 0 with a missing value)" in " ".join(
        result.output.split())


def test_a_baseline_as_a_duration_is_learned_from_and_not_scored(tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(src, planted(blip=None))
    result = detect(str(src), "--time-column", "time", "--columns", "temp",
                    "--baseline", "5h", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = scored(out)
    # 5 h of one-minute rows: rows 0-299 learn, row 300 is the first scored
    assert [i for i, r in enumerate(rows) if r["anomaly_score"] == ""] == list(range(300))
    assert rows[600]["alert"] == rows[600]["event"] == "1"
    refused(detect(str(src), "--time-column", "time", "--columns", "temp", "--baseline",
                   "a while", "--out", str(out)),
            "--baseline 'a while': give a number of rows (e.g. 400) or a duration")


def test_help_states_the_warm_up_baseline_and_cooldown_the_command_uses() -> None:
    from gridcall.config.models import DetectorSettings
    from gridcall.detectors.replay import BASELINE, WARMUP

    output = CliRunner().invoke(app, ["detect", "--help"]).output
    text = " ".join(output.replace("│", " ").split())  # the options table's borders
    assert f"the first {WARMUP} rows, {BASELINE} for several columns" in text
    assert f"the warm-up, {WARMUP} rows (one column), a baseline of {BASELINE} rows" in text
    assert f"detector.refractory, {DetectorSettings().refractory} rows" in text
