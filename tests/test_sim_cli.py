"""``gridcall sim run|list``: scenarios played on the simulated district, their reports,
the whole library's detection figures, rain and replayed recordings in scenarios."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gridcall.cli import app
from gridcall.cli.sim import library
from gridcall.simulators.scenario import load_scenario, scenario_from_data
from gridcall.simulators.sim import SimDistrict
from gridcall.simulators.truth import compare

runner = CliRunner()
KEYS = ["injected", "detected", "missed", "false_alerts", "median_delay_s"]


def run_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["sim", *args], catch_exceptions=False)
    return result.exit_code, result.output


def report_of(name: str, tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    code, text = run_cli("run", name, "--report-json", str(out), *extra)
    assert code == 0, text
    assert "ground truth against alerts" in text
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return doc


def test_sim_list_shows_the_library() -> None:
    code, text = run_cli("list")
    assert code == 0
    names = {p.stem for p in library()}
    assert len(names) >= 8
    for name in names:
        assert name in text


def test_a_scenario_with_problems_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("config: huangpu\nduration: 1h\ntimeline:\n"
                   "  - at: '00:10'\n    anomaly: {sensor: dongyuan-g3-gas-9, to: 2x}\n",
                   encoding="utf-8")
    code, text = run_cli("run", str(bad))
    assert code == 2
    assert "bad.yaml:5" in text
    assert "dongyuan-g3-gas-9" in text
    code, text = run_cli("run", "no-such-scenario")
    assert code == 2
    assert "no-such-scenario" in text


def test_a_near_miss_names_the_library_scenarios_it_may_mean() -> None:
    code, text = run_cli("run", "gas-leak")
    assert code == 2
    leaks = sorted(p.stem for p in library() if p.stem.startswith("gas-leak"))
    assert len(leaks) >= 2
    assert f"did you mean {', '.join(leaks)}?" in " ".join(text.split())
    code, text = run_cli("run", "stuck-sensr")  # a typo, not a part of the name
    assert code == 2
    assert "did you mean stuck-sensor?" in " ".join(text.split())


def test_a_run_reports_ground_truth_against_the_alerts(tmp_path: Path) -> None:
    doc = report_of("manhole-opened", tmp_path)
    assert list(doc)[1:6] == KEYS
    (truth,) = doc["injections"]
    assert truth["label"] == "manhole cover pried open"
    assert truth["detected"] is True
    assert truth["matter"] == "MANHOLE-DISPLACED"
    assert doc["median_delay_s"] == truth["delay_s"]
    assert truth["delay_s"] >= 0
    assert (doc["injected"], doc["detected"], doc["missed"]) == (1, 1, 0)


def test_a_run_paced_to_real_time_gives_the_same_report(tmp_path: Path) -> None:
    fast = report_of("manhole-opened", tmp_path)
    paced = report_of("manhole-opened", tmp_path, "--speed", "100000")  # 5 h in ~0.2 s
    assert {k: paced[k] for k in KEYS} == {k: fast[k] for k in KEYS}


def test_the_same_scenario_gives_the_same_report_on_the_shared_mosquitto(
        tmp_path: Path, mqtt_url: str) -> None:
    embedded = report_of("manhole-opened", tmp_path)
    real = report_of("manhole-opened", tmp_path, "--broker", mqtt_url)
    assert real["broker"] == mqtt_url
    assert {k: real[k] for k in KEYS} == {k: embedded[k] for k in KEYS}

    def found(doc: dict[str, Any]) -> list[tuple[Any, ...]]:  # alert ids may differ: others'
        return [(d["label"], d["detected"], d["matter"], d["tier"], d["delay_s"])  # events
                for d in doc["injections"]]                     # on the shared broker
    assert found(real) == found(embedded)


@pytest.mark.timeout(1200)
def test_the_library_detects_95_percent_with_at_most_one_false_alert_each(
        tmp_path: Path) -> None:
    """Every shipped scenario through ``gridcall sim run``, judged on its real report, at
    the product's one setting (no scenario changes its detectors' settings)."""
    reports = {p.stem: report_of(p.stem, tmp_path) for p in library()}
    injected = sum(r["injected"] for r in reports.values())
    detected = sum(r["detected"] for r in reports.values())
    figures = {n: (r["injected"], r["detected"], r["false_alerts"], r["median_delay_s"])
               for n, r in reports.items()}
    assert injected >= len(reports), figures  # every scenario has ground truth
    assert detected / injected >= 0.95, figures
    assert all(r["false_alerts"] <= 1 for r in reports.values()), figures
    assert reports["gas-leak-restaurant"]["false_alerts"] == 0, figures
    # embedded: nothing else publishes, so no alert may be set aside as foreign
    assert all(r["foreign_alerts"] == [] for r in reports.values()), figures


async def test_rain_floods_the_low_point_in_its_area_only() -> None:
    scenario = load_scenario("flood-low-point")
    async with SimDistrict(scenario, warmup_s=3600) as district:
        run = await district.run()
    labels = {i.sensor: i for i in run.injections if i.shape == "rain"}
    # the storm cell is over Huangpu village: its gauge and its low point, not Anle's
    assert set(labels) == {"huangpu-cun-g1-rain-1", "huangpu-cun-g1-waterlevel-1"}
    assert labels["huangpu-cun-g1-waterlevel-1"].start > labels["huangpu-cun-g1-rain-1"].start
    report = compare(run.injections, run)
    assert report.detected == 2
    assert {a.grid for a in run.alerts.values()} == {"huangpu-cun-g1"}


async def test_a_recording_replayed_in_a_scenario_drives_its_sensor(tmp_path: Path) -> None:
    """A data logger's file (a temperature log with a cold-room failure in it) plays on
    the sensor it is mapped to; the alert opens when the recorded value crosses 8 degC."""
    def logged(m: int, s: int) -> float:  # the compressor's wobble, then the failure
        wobble = 0.1 * ((m * 12 + s // 5) % 4)
        return round(3.4 + wobble + (m - 19 if m >= 20 else 0), 1)

    rows = ["time,CR-1"] + [f"2026-01-01T00:{m:02d}:{s:02d}Z,{logged(m, s)}"
                            for m in range(40) for s in range(0, 60, 5)]
    rows.insert(30, "2026-01-01T00:02:30Z,not-a-number")  # a bad row: skipped, the rest plays
    (tmp_path / "coldroom.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    scenario = scenario_from_data({
        "config": "huangpu", "duration": "1h", "warmup": "1h",
        "sensors": ["dongyuan-g3-temperature-1"],
        "timeline": [{"at": "00:05", "replay": {
            "file": "coldroom.csv", "map": {"CR-1": "dongyuan-g3-temperature-1"}}}],
    }, base=tmp_path)
    (replay,) = scenario.replays
    assert [s.line for s in replay.recording.skipped] == [31]
    async with SimDistrict(scenario) as district:
        run = await district.run()
    opened = [t for t in run.transitions if t.action == "open"]
    assert [t.alert.matter for t in opened if t.alert] == ["COLD-CHAIN-TEMP"]
    # the recorded failure starts at 00:20 and passes 8 degC at 00:24; the replay
    # starts at +00:05: the alert opens in between (the detector may see the rise early)
    offset = (opened[0].at - scenario.start_ns) / 1e9
    assert 5 * 60 + 20 * 60 <= offset <= 5 * 60 + 24 * 60 + 5


def test_sim_replay_plays_a_logger_file_as_an_agent_to_a_broker(tmp_path: Path) -> None:
    """A data logger's file through the real edge agent to a broker (a private
    mosquitto: the sample agent's topics are also used by others' tests on the shared
    one); a bad row is reported and the rest all arrives."""
    import asyncio
    import threading

    import aiomqtt

    from gridcall.wire import Decoder, topics
    from tests.private_servers import PrivateMosquitto

    gas = "dongyuan-g3-gas-1"
    rows = ["Timestamp,GAS_A"] + [f"{1767225600 + 2 * i},{1.5 + (i % 5) / 10}"
                                   for i in range(30)]
    rows.insert(10, "1767225618,broken")
    csv = tmp_path / "logger.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    seen: list[float | None] = []
    ready = threading.Event()

    async def listen(url: str, stop: asyncio.Event) -> None:
        decoder = Decoder()
        async with aiomqtt.Client("127.0.0.1", int(url.rsplit(":", 1)[1])) as client:
            await client.subscribe(topics.readings_topic("edge-dongyuan"), qos=1)
            ready.set()
            async for msg in client.messages:
                payload = msg.payload if isinstance(msg.payload, bytes) else b""
                seen.extend(r.value for r in decoder.readings(str(msg.topic),
                                                              payload).readings)
                if len(seen) >= 30 or stop.is_set():
                    return

    with PrivateMosquitto(tmp_path / "mosquitto") as broker:
        stop = asyncio.Event()
        thread = threading.Thread(target=lambda: asyncio.run(listen(broker.url, stop)))
        thread.start()
        assert ready.wait(30)
        code, text = run_cli("replay", str(csv), "--agent", "edge-dongyuan",
                             "--broker", broker.url, "--speed", "20", "--map", f"GAS_A={gas}")
        thread.join(30)
    assert code == 0, text
    assert "logger.csv:11" in text
    assert "played 30 readings of 1 sensor(s) as edge-dongyuan: 30 sent" in text
    assert sorted(v or 0.0 for v in seen) == sorted(1.5 + (i % 5) / 10 for i in range(30))


def test_sim_replay_names_an_unmapped_column(tmp_path: Path) -> None:
    csv = tmp_path / "logger.csv"
    csv.write_text("time,GAS_A\n1767225600,1.5\n", encoding="utf-8")
    code, text = run_cli("replay", str(csv), "--agent", "edge-dongyuan")
    assert code == 2
    assert "GAS_A" in text
    assert "map them" in text
