"""MQTT topics of the wire contract, version 1.

::

    gridcall/v1/readings/{agent}                      ReadingBatch, QoS 1
    gridcall/v1/events/{agent}                        AnomalyEvent, QoS 1
    gridcall/v1/status/{agent}                        AgentStatus, QoS 1, retained, last will
    gridcall/v1/alerts/{district}/{town}/{community}/{grid}/{alert_id}
                                                      RiskAlert, QoS 1
    gridcall/v1/external/{system}                     a department's system's event
                                                      (JSON, hub/desk/external.py), QoS 1

An alert topic always has four unit levels; the levels below the responsible unit are
``_``. So a unit subscribes to everything addressed to it *and its whole subtree* with one
wildcard: a town uses ``gridcall/v1/alerts/{district}/{town}/#``, a grid
``gridcall/v1/alerts/{district}/{town}/{community}/{grid}/+``.
"""

from __future__ import annotations

from collections.abc import Sequence

PREFIX = "gridcall/v1"
PLACEHOLDER = "_"
FORBIDDEN = frozenset("/+#\x00")

READINGS = f"{PREFIX}/readings/+"
EVENTS = f"{PREFIX}/events/+"
STATUS = f"{PREFIX}/status/+"
ALERTS = f"{PREFIX}/alerts/#"
EXTERNAL = f"{PREFIX}/external/+"


def _level(value: str, what: str) -> str:
    if not value or FORBIDDEN.intersection(value) or value == PLACEHOLDER:
        raise ValueError(f"{what} {value!r} cannot be an MQTT topic level")
    return value


def readings_topic(agent: str) -> str:
    return f"{PREFIX}/readings/{_level(agent, 'agent id')}"


def events_topic(agent: str) -> str:
    return f"{PREFIX}/events/{_level(agent, 'agent id')}"


def status_topic(agent: str) -> str:
    return f"{PREFIX}/status/{_level(agent, 'agent id')}"


def external_topic(system: str) -> str:
    """Where a department's business system (external.yaml) publishes its events."""
    return f"{PREFIX}/external/{_level(system, 'system id')}"


def unit_levels(unit_path: Sequence[str]) -> str:
    """``district/town/community/grid`` for a unit path of 1 to 4 ids, padded with ``_``."""
    if not 1 <= len(unit_path) <= 4:
        raise ValueError(f"a unit path has 1 to 4 levels, got {list(unit_path)!r}")
    levels = [_level(u, "unit id") for u in unit_path]
    levels += [PLACEHOLDER] * (4 - len(levels))
    return "/".join(levels)


def alert_topic(unit_path: Sequence[str], alert_id: str) -> str:
    return f"{PREFIX}/alerts/{unit_levels(unit_path)}/{_level(alert_id, 'alert id')}"


def unit_subscription(unit_path: Sequence[str]) -> str:
    """The one wildcard filter that gives a unit its own alerts and its subtree's."""
    if len(unit_path) == 4:
        return f"{PREFIX}/alerts/{unit_levels(unit_path)}/+"
    return f"{PREFIX}/alerts/{'/'.join(_level(u, 'unit id') for u in unit_path)}/#"


def agent_of(topic: str, kind: str) -> str:
    """The agent id in ``gridcall/v1/{kind}/{agent}``; ValueError naming the topic if not."""
    head = f"{PREFIX}/{kind}/"
    if not topic.startswith(head) or "/" in topic[len(head):] or len(topic) == len(head):
        raise ValueError(f"topic {topic!r} is not {head}{{agent}}")
    return topic[len(head):]
