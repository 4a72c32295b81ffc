"""The agent roster on an injected clock: last wills and silence are outages (reported
once), a clean stop is not, a retained status sets the state but is not news, and sensor
health comes from the agent while it is online."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gridcall.config import SAMPLE_DISTRICT, ConfigError, ConfigSet, load_config
from gridcall.hub.desk.roster import Roster, UnknownAgent
from gridcall.wire import AgentStatus, Decoder, SensorHealth, encode, topics

T0 = 1_800_000_000_000_000_000
S = 10**9
AGENT = "edge-dongyuan"


def status(ts: int, state: str = "online", **kw: object) -> AgentStatus:
    return AgentStatus(agent=AGENT, state=state, ts=ts, heartbeat_s=30.0,  # type: ignore[arg-type]
                       **kw)  # type: ignore[arg-type]


WILL = AgentStatus(agent=AGENT, state="offline", ts=0)


def test_a_last_will_is_an_outage_and_the_next_online_status_ends_it(cfg: ConfigSet) -> None:
    roster = Roster(cfg)
    assert roster.observe(status(T0), T0) == []
    assert roster.view(AGENT, T0).state == "online"
    (down,) = roster.observe(WILL, T0 + 5 * S)
    assert (down.agent, down.kind, down.state, down.at) == (AGENT, "down", "lost", T0 + 5 * S)
    assert "last will" in down.reason
    assert roster.observe(WILL, T0 + 6 * S) == []  # the same outage is reported once
    view = roster.view(AGENT, T0 + 6 * S)
    assert (view.state, view.online) == ("lost", False)
    (up,) = roster.observe(status(T0 + 60 * S), T0 + 60 * S)
    assert (up.kind, up.state) == ("up", "online")
    assert roster.counters.outages == roster.counters.recoveries == 1


def test_an_agent_silent_for_three_heartbeats_is_an_outage_once(cfg: ConfigSet) -> None:
    roster = Roster(cfg)
    roster.observe(status(T0), T0)
    assert roster.check(T0 + 90 * S) == []  # exactly three heartbeats: not yet
    (down,) = roster.check(T0 + 91 * S)
    assert (down.kind, down.state) == ("down", "silent")
    assert "3 heartbeats of 30 s" in down.reason
    assert roster.check(T0 + 200 * S) == []
    assert roster.view(AGENT, T0 + 200 * S).state == "silent"
    (up,) = roster.observe(status(T0 + 201 * S), T0 + 201 * S)
    assert up.kind == "up"


def test_the_silence_threshold_is_a_setting(cfg: ConfigSet) -> None:
    roster = Roster(cfg, silent_after=1.5)
    roster.observe(status(T0), T0)
    assert [e.state for e in roster.check(T0 + 46 * S)] == ["silent"]
    with pytest.raises(ValueError, match="heartbeats > 0"):
        Roster(cfg, silent_after=0)


def test_a_clean_stop_is_shown_offline_but_is_no_outage(cfg: ConfigSet) -> None:
    roster = Roster(cfg)
    roster.observe(status(T0), T0)
    assert roster.observe(status(T0 + S, "offline"), T0 + S) == []
    assert roster.check(T0 + 3600 * S) == []
    view = roster.view(AGENT, T0 + 3600 * S)
    assert (view.state, view.online) == ("stopped", False)


def test_a_hub_that_starts_fresh_finds_an_agent_already_dead_from_the_retained_copy(
        cfg: ConfigSet) -> None:
    """Issue 17 item 4: a will the broker kept (the agent died while no hub listened) is
    the outage, raised as it would have been live; a retained "online" status is watched
    from when the hub got it, so a live agent has a whole silence window to speak."""
    roster = Roster(cfg)
    (down,) = roster.observe(WILL, T0, retained=True)
    assert (down.kind, down.state, down.retained) == ("down", "lost", True)
    assert "retained" in down.reason
    assert roster.view(AGENT, T0).state == "lost"
    assert roster.observe(WILL, T0 + S, retained=True) == []  # the same outage, once
    other = "edge-jiufo"
    old = AgentStatus(agent=other, state="online", ts=T0 - 3600 * S, heartbeat_s=30.0)
    assert roster.observe(old, T0, retained=True) == []
    assert roster.view(other, T0).state == "silent"  # shown by its ts
    assert roster.check(T0 + 90 * S) == []  # the hub has not waited 3 heartbeats yet
    (silent,) = roster.check(T0 + 91 * S)
    assert (silent.agent, silent.state, silent.retained) == (other, "silent", True)
    # an agent alive behind its retained copy speaks within the window: no outage
    alive = "edge-longhu"
    roster.observe(AgentStatus(agent=alive, state="online", ts=T0 - 3600 * S,
                               heartbeat_s=30.0), T0, retained=True)
    roster.observe(AgentStatus(agent=alive, state="online", ts=T0 + 20 * S,
                               heartbeat_s=30.0), T0 + 20 * S)
    assert [e.agent for e in roster.check(T0 + 100 * S)] == []


def test_a_gateway_that_restarts_with_its_clock_behind_is_online_again(
        cfg: ConfigSet) -> None:
    roster = Roster(cfg)
    roster.observe(status(T0 + 3600 * S, outbox_messages=3), T0)
    roster.observe(WILL, T0 + S)
    (up,) = roster.observe(status(T0, outbox_messages=9), T0 + 2 * S)  # its clock reset
    assert up.kind == "up"
    assert roster.view(AGENT, T0 + 2 * S).outbox_depth == 9


def test_a_status_of_an_agent_not_in_the_config_is_refused(cfg: ConfigSet) -> None:
    roster = Roster(cfg)
    with pytest.raises(UnknownAgent, match=r"'edge-nowhere'.*not in the config"):
        roster.observe(AgentStatus(agent="edge-nowhere", state="online", ts=T0), T0)
    assert roster.counters.unknown_agents == 1
    assert [v.agent for v in roster.views(T0)] == list(cfg.agents)


def test_sensor_health_and_outbox_come_from_the_agent_while_it_is_online(
        cfg: ConfigSet) -> None:
    roster = Roster(cfg)
    sensors = [s.id for s in cfg.agents[AGENT].sensors]
    health = {sensors[0]: SensorHealth(state="stuck"), sensors[1]: SensorHealth(state="ok"),
              sensors[2]: SensorHealth(state="missing"), sensors[3]: SensorHealth(state="fault")}
    sent = status(T0, sensor_health=health, outbox_messages=7, outbox_oldest_age_s=12.5,
                  dropped={"readings_age": 4, "events_size": 1})
    # as the hub receives it: every health state the agent may report decodes
    roster.observe(Decoder().status(topics.status_topic(AGENT), encode(sent)), T0)
    view = roster.view(AGENT, T0 + 2 * S)
    assert [view.sensors[s] for s in sensors[:5]] == ["stuck", "ok", "missing", "fault",
                                                      "unknown"]
    assert (view.outbox_depth, view.outbox_age_s, view.dropped) == (7, 12.5, 5)
    assert view.last_seen_s == 2.0
    assert view.unhealthy == len(sensors) - 1
    roster.observe(WILL, T0 + 3 * S)
    assert set(roster.view(AGENT, T0 + 3 * S).sensors.values()) == {"unknown"}


def test_the_grids_of_an_agent_are_where_its_sensors_are(cfg: ConfigSet) -> None:
    grids = Roster(cfg).grids_of(AGENT)
    assert list(grids) == sorted({s.grid for s in cfg.agents[AGENT].sensors},
                                 key=[s.grid for s in cfg.agents[AGENT].sensors].index)
    assert all(cfg.sensors[sensor].grid == grid for grid, sensor in grids.items())


def test_silence_runs_on_the_hubs_clock_not_the_gateways(cfg: ConfigSet) -> None:
    """A gateway whose clock is a day behind (no RTC battery) is online while it speaks."""
    roster = Roster(cfg)
    day = 86_400 * S
    roster.observe(status(T0 - day), T0)
    assert roster.view(AGENT, T0 + 60 * S).state == "online"
    assert roster.check(T0 + 60 * S) == []
    roster.observe(status(T0 - day + 60 * S), T0 + 60 * S)
    assert roster.view(AGENT, T0 + 100 * S).last_seen_s == 40.0
    assert [e.state for e in roster.check(T0 + 151 * S)] == ["silent"]


def test_board_settings_are_checked_with_the_rest_of_the_config(tmp_path: Path) -> None:
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    (folder / "hub.yaml").write_text(
        "hub:\n  boards: {interval: 0s, silent_after: -1, offline_matter: 'no way'}\n",
        encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(folder)
    problems = {p.path: p.reason for p in caught.value.problems}
    assert "longer than zero" in problems["hub.boards.interval"]
    assert "greater than 0" in problems["hub.boards.silent_after"]
    assert "hub.boards.offline_matter" in problems
    assert all(p.file == "hub.yaml" and p.line == 2 for p in caught.value.problems)
