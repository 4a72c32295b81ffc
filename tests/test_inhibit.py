"""Inhibition in service (hub/desk/inhibit.py): the desk runtime points the desk's
inhibitor at its roster, so an agent whose last will arrived holds back its own sensors'
stuck and dropout faults until its status says online again, while its outage alert and
its sensors' real anomalies still open. The rule by itself is the golden case
tests/golden/inhibition-offline-agent; its config checks are here too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config
from gridcall.hub.desk.runtime import DeskRuntime
from gridcall.hub.store import Store
from gridcall.simulators.clock import SimClock
from gridcall.wire import AgentStatus, AnomalyEvent, AnomalyKind, encode, topics
from gridcall.wire.broker import BrokerAddress

T0 = 1_800_000_000_000_000_000
AGENT = "edge-dongyuan"
SENSOR = "dongyuan-g1-pm25-1"


async def status(rt: DeskRuntime, state: str, ts: int) -> None:
    message = AgentStatus(agent=AGENT, state=state, ts=ts, heartbeat_s=30.0)  # type: ignore[arg-type]
    await rt.handle(topics.status_topic(AGENT), encode(message))


async def anomaly(rt: DeskRuntime, seq: int, kind: AnomalyKind, sensor: str = SENSOR) -> None:
    event = AnomalyEvent(agent=AGENT, seq=seq, sensor=sensor, kind=kind, severity="major",
                         score=0.9, value=1.0, ts=rt.clock())
    await rt.handle(topics.events_topic(AGENT), encode(event))


def matters(rt: DeskRuntime) -> list[str]:
    """The matters of the alerts opened, but the outage's own (one, or one per grid)."""
    return [s.alert.matter for s in rt.desk.alerts() if s.alert.matter != "EDGE-OFFLINE"]


def outages(rt: DeskRuntime) -> int:
    return sum(s.alert.matter == "EDGE-OFFLINE" for s in rt.desk.alerts())


async def test_an_offline_agent_holds_back_its_sensors_faults_until_it_is_back(
        cfg: ConfigSet) -> None:
    clock = SimClock(T0)
    async with Store(":memory:") as store:
        rt = DeskRuntime(cfg, store, address=BrokerAddress.parse("mqtt://127.0.0.1:1"),
                         client_id="inhibit-test", clock=clock, agent_clock=clock)
        await rt.start()
        await status(rt, "online", clock())
        clock.advance(10)
        await status(rt, "offline", 0)  # the broker's last will: lost
        raised = outages(rt)
        assert raised >= 1
        assert matters(rt) == []
        clock.advance(10)
        await anomaly(rt, 1, "stuck")
        await anomaly(rt, 2, "dropout", "dongyuan-g2-noise-1")
        assert matters(rt) == []
        assert rt.desk.counters.inhibited == 2
        assert [h.why for h in rt.desk.held] == [f"edge agent {AGENT} is offline"] * 2
        await anomaly(rt, 3, "out_of_limits", "dongyuan-g1-smoke-1")
        assert matters(rt) == ["FIRE-SMOKE"]
        clock.advance(10)
        await status(rt, "online", clock())
        await anomaly(rt, 4, "stuck")
        assert matters(rt) == ["FIRE-SMOKE", "SENSOR-FAULT"]
        assert outages(rt) == raised


def with_matters(tmp_path: Path, **changes: object) -> Path:
    target = tmp_path / "district"
    target.mkdir()
    for f in SAMPLE_DISTRICT.glob("*.yaml"):
        (target / f.name).write_bytes(f.read_bytes())
    data = yaml.safe_load((target / "matters.yaml").read_text(encoding="utf-8"))
    data.update(changes)
    (target / "matters.yaml").write_text(yaml.safe_dump(data, allow_unicode=True),
                                         encoding="utf-8")
    return target


def test_inhibit_rules_name_matters_of_the_catalog(tmp_path: Path) -> None:
    folder = with_matters(tmp_path, inhibit=[{"matters": ["SENSOR-FALT"]}, {}])
    with pytest.raises(ConfigError) as caught:
        load_config(folder)
    text = str(caught.value)
    assert "inhibit[0].matters[0]" in text
    assert "SENSOR-FALT" in text
    assert "inhibit[1]" in text
    assert "needs matters or anomaly_kinds" in text


def test_inhibit_can_be_turned_off(tmp_path: Path) -> None:
    assert load_config(with_matters(tmp_path, inhibit=[])).matters.inhibit == ()
