"""``gridcall demo`` end to end, with nothing installed: embedded broker and store; a
store that is down ends the run within its bound and fails it truthfully; mistakes in the
options are one clear line and an exit code, never a traceback."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from gridcall.cli import app
from gridcall.config import ConfigSet
from tests.servers import unused_tcp_port


def assert_clean_exit(result: Result, code: int) -> None:
    """Exited with ``code`` through typer (no exception escaped) and printed no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def test_demo_stores_every_reading_and_alerts_in_several_tiers(tmp_path: Path) -> None:
    summary_file = tmp_path / "s.json"
    result = CliRunner().invoke(
        app, ["demo", "--duration", "20", "--summary-json", str(summary_file)])
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["readings_published"] > 0
    assert summary["readings_stored"] == summary["readings_published"]
    assert summary["malformed_messages"] == 0
    assert sum(1 for n in summary["alerts_by_tier"].values() if n > 0) >= 3
    assert set(summary["alerts_by_tier"]) == {"A", "B", "C", "D"}
    assert summary["alerts_delivered"] == sum(summary["alerts_by_tier"].values())
    assert summary["anomaly_events"] >= len(summary["injected_anomalies"])
    assert summary["board"] == summary["api"] + "/board"
    assert f"board {summary['board']}#token=gct_" in result.output
    # quoted, so that zsh (macOS's shell) does not take the ? for a glob: "no matches found"
    assert f"'{summary['api']}/v1/alerts?open=true'" in result.output


def test_demo_on_a_fast_clock_escalates_and_reports_every_unit_that_held_an_alert(
        tmp_path: Path) -> None:
    summary_file = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["demo", "--duration", "30", "--clock-speed", "600",
                                      "--summary-json", str(summary_file)])
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["readings_stored"] == summary["readings_published"] > 0
    assert summary["desk_hours"] >= 30 * 600 / 3600
    assert summary["escalations"] > 0
    assert f"{summary['escalations']} escalations" in result.output
    # The done-when: escalations of sensor-caused matters, not of device faults.
    devices = {"SENSOR-FAULT", "EDGE-OFFLINE"}
    assert set(summary["escalations_by_matter"]) - devices
    # What the tier counts count is said, and every count adds up to the same alerts.
    opened = summary["alerts_opened"]
    assert sum(summary["tiers_at_opening"].values()) == opened
    assert sum(summary["tiers_now"].values()) == opened
    assert sum(summary["alerts_by_matter"].values()) == opened
    assert sum(summary["escalations_by_matter"].values()) == summary["escalations"]
    assert set(summary["escalations_by_matter"]) <= set(summary["alerts_by_matter"])
    tiers = " ".join(f"{t} {n}" for t, n in summary["tiers_now"].items())
    assert f"now {tiers})" in " ".join(result.output.split())
    # The last frame of the live view says what the final line says.
    published = summary["readings_published"]
    assert f"{published} / {summary['readings_stored']}" in result.output
    # The issue: all 50 escalations of the fast demo were EDGE-OFFLINE, raised because
    # the roster judged real heartbeats on the accelerated clock. No agent was taken
    # offline: no outage, and no more alerts than anomaly episodes.
    assert summary["agents_taken_offline"] == summary["agent_outages"] == 0
    assert "EDGE-OFFLINE" not in summary["alerts_by_matter"]
    assert opened <= summary["anomaly_events"]
    assert summary["overdue_pages"] >= summary["alerts_overdue"]
    held = set(summary["alerts_by_unit"])  # where alerts opened; escalations add more
    assert held
    assert held <= set(summary["indicators"])
    assert all(row["calls"] >= 1 for row in summary["indicators"].values())


def test_demo_takes_an_agent_offline_on_purpose_and_raises_one_alert_for_it(
        tmp_path: Path) -> None:
    """--take-offline cuts one agent's uplink (a real last will) and says so; the hub
    raises exactly one EDGE-OFFLINE for that outage, and every reading still arrives."""
    from tests.private_servers import PrivateMosquitto

    summary_file = tmp_path / "s.json"
    agent = "edge-fenghuang"
    with PrivateMosquitto(tmp_path / "broker") as broker:
        result = CliRunner().invoke(app, [
            "demo", "--duration", "20", "--clock-speed", "600", "--broker", broker.url,
            "--take-offline", agent, "--api", "off", "--summary-json", str(summary_file)])
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["agents_taken_offline"] == summary["agent_outages"] == 1
    assert summary["alerts_by_matter"]["EDGE-OFFLINE"] == 1
    assert summary["alerts_opened"] <= summary["anomaly_events"] + 1
    assert summary["readings_stored"] == summary["readings_published"] > 0
    assert f"{agent} taken offline on purpose" in result.output


def test_demo_refuses_to_take_offline_an_agent_it_does_not_have() -> None:
    result = CliRunner().invoke(app, ["demo", "--duration", "5", "--take-offline", "edge-x"])
    assert_clean_exit(result, 2)
    assert "--take-offline" in result.stderr
    assert "edge-dongyuan" in result.stderr  # the agents it does have


def test_demo_with_influx_down_ends_and_does_not_claim_the_readings_stored(
    tmp_path: Path,
) -> None:
    summary_file = tmp_path / "s.json"
    influx = f"http://127.0.0.1:{unused_tcp_port()}"
    result = CliRunner().invoke(app, [
        "demo", "--duration", "5", "--influx", influx, "--drain-timeout", "1",
        "--summary-json", str(summary_file)])
    assert_clean_exit(result, 1)
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["readings_published"] > 0
    assert summary["readings_stored"] == 0
    assert summary["readings_unwritten"] == summary["readings_published"]
    assert summary["readings_received"] == summary["readings_published"]
    assert influx in summary["sink"]
    n = summary["readings_published"]
    assert f"{n} of {n} readings were not stored" in result.stderr
    assert f"{n} not written within --drain-timeout 1s" in result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--broker", "notaurl"], ["--broker", "'notaurl'", "mqtt://host[:port]"]),
    (["--broker", "http://127.0.0.1:1883"], ["--broker", "mqtt://host[:port]"]),
    (["--influx", "notaurl"], ["--influx", "'notaurl'", "http(s)://host[:port]"]),
    (["--influx", "http://127.0.0.1:1", "--influx-api", "2"], ["--influx", "INFLUX_TOKEN"]),
])
def test_demo_refuses_a_bad_url_with_one_line_and_exit_2(
    args: list[str], says: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFLUX_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["demo", "--duration", "5", *args])
    assert_clean_exit(result, 2)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for text in says:
        assert text in result.stderr


def test_demo_says_the_broker_is_unreachable_and_exits_1() -> None:
    broker = f"mqtt://127.0.0.1:{unused_tcp_port()}"
    result = CliRunner().invoke(app, ["demo", "--duration", "5", "--broker", broker])
    assert_clean_exit(result, 1)
    assert f"broker {broker} unreachable" in result.stderr
    assert "--broker" in result.stderr  # and what to do about it


async def busy_desk(cfg: ConfigSet) -> tuple[Any, list[Any], int]:
    """A desk with alerts of several tiers, some escalated: (desk, its steps, now)."""
    from gridcall.hub.desk.desk import Desk
    from gridcall.hub.desk.ledger import Ledger
    from gridcall.hub.store import Store
    from gridcall.wire import AnomalyEvent

    minute = 60 * 10**9
    t0 = time.time_ns() - 602 * minute  # the demo's clock reads the real time
    store = Store(":memory:")
    await store.__aenter__()
    desk = Desk(cfg, Ledger(store))
    await desk.start()
    sensors = ["dasha-dong-g1-noise-1", "dasha-dong-g1-manholetilt-1",
               "dasha-dong-g2-manholetilt-1"]
    for seq, sensor in enumerate(sensors, 1):
        await desk.on_event(AnomalyEvent(
            agent="edge-dasha-dong", seq=seq, sensor=sensor, kind="out_of_limits",
            severity="critical", score=0.9, value=80.0, ts=t0, phase="start"), t0)
    await desk.tick(t0 + 600 * minute)  # unanswered: up the ladder
    noisy = [s.id for s in cfg.sensors.values() if s.kind in ("noise", "pm25")]
    for seq, sensor in enumerate(noisy, 10):  # many tier-D alerts opened after the A ones
        await desk.on_event(AnomalyEvent(
            agent="edge-dasha-dong", seq=seq, sensor=sensor, kind="out_of_limits",
            severity="minor", score=0.9, value=80.0, ts=t0, phase="start"), t0 + 601 * minute)
    return desk, await desk.transitions(), t0 + 602 * minute


async def test_the_live_tables_read_in_an_80_column_terminal(cfg: ConfigSet) -> None:
    """Unit and matter names whole (no "huang…", "respo…"): short headers with a legend."""
    from rich.console import Console

    from gridcall.demo import alerts_table, indicator_board, tier_line, unit_figures

    desk, steps, now = await busy_desk(cfg)
    states = desk.alerts(open_only=True)
    console = Console(width=80, record=True, color_system=None)
    console.print(tier_line({"A": 2, "B": 1}, {"A": 3}))
    console.print(alerts_table(states, cfg, now))
    console.print(indicator_board(unit_figures(steps, steps[0].at, now)))
    text = console.export_text()
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    for state in states:
        assert state.alert.matter in text
        assert state.alert_id in text
        assert cfg.units[state.place[-1]].name in text
    for unit in {t.unit for t in steps}:
        assert unit in text
    assert "resp/arr/disp: share of responses" in text
    await desk.ledger.store.__aexit__(None, None, None)


async def test_the_live_view_keeps_the_board_and_the_most_severe_alerts_in_80x24(
        cfg: ConfigSet) -> None:
    """The issue's complaint: the newest six alerts were shown, so a tier-A alert dropped
    off behind tier-D noise, and the board's URL scrolled away at 80x24."""
    from rich.console import Console

    from gridcall.demo import Frame, ScaledClock, most_severe, view
    from gridcall.wire.ladder import TIERS

    desk, steps, _now = await busy_desk(cfg)
    open_alerts = desk.alerts(open_only=True)
    assert len(open_alerts) > 12  # more than 80x24 can show
    tiers = {t: sum(1 for s in desk.alerts() if s.tier == t) for t in TIERS}
    frame = Frame(elapsed_s=30, readings_per_s=10.0, published=5, stored=5,
                  anomaly_events=3, malformed=0, alerts_opened=len(desk.alerts()),
                  escalations=desk.counters.escalations, tiers_at_opening=tiers,
                  tiers_now=tiers)
    board = "http://127.0.0.1:8123/board"
    console = Console(width=80, height=24, record=True, color_system=None)
    console.print(view(desk, frame, 60, ScaledClock(1, origin=steps[0].at), steps,
                       delivered=3, board=board, token="gct_" + "x" * 43, height=24))
    lines = console.export_text().rstrip("\n").splitlines()
    assert len(lines) <= 24, "\n".join(lines)
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert any(board in line for line in lines[:3])
    ordered = most_severe(open_alerts)
    assert [TIERS.index(s.tier) for s in ordered] == sorted(TIERS.index(s.tier)
                                                            for s in ordered)
    shown = [s for s in ordered if any(s.alert_id in line for line in lines)]
    assert shown == ordered[:len(shown)]  # a prefix: the most severe are never left out
    assert ordered[0].tier == "A"
    assert ordered[0] in shown
    await desk.ledger.store.__aexit__(None, None, None)


def test_python_m_gridcall_runs_the_cli_from_a_checkout() -> None:
    """``python -m gridcall`` and ``python -m gridcall.cli`` are the command, not a silent
    no-op (how a worktree runs its own code rather than the installed one)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    for module in ("gridcall", "gridcall.cli"):
        done = subprocess.run([sys.executable, "-m", module, "config", "check",
                               str(root / "config/examples/huangpu")], cwd=root,
                              capture_output=True, text=True, check=False,
                              env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin",
                                   "COLUMNS": "200"})
        assert done.returncode == 0, done.stderr
        assert "27 grids" in done.stdout


def test_the_last_frame_shows_the_runs_mean_rate_not_zero() -> None:
    from gridcall.demo import final_frame
    from gridcall.wire.ladder import TIERS

    none = dict.fromkeys(TIERS, 0)
    summary = {"readings_published": 1995, "readings_stored": 1995, "anomaly_events": 8,
               "malformed_messages": 0, "alerts_opened": 8, "escalations": 0,
               "tiers_at_opening": none, "tiers_now": none}
    frame = final_frame(summary, 60.0)
    assert frame.readings_per_s == 1995 / 60
    assert frame.final
