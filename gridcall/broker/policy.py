"""Who may publish and read which topic, one login per party (docs/security.md).

- **an agent** (login = its id): publishes its readings, events and status (retained, and
  its last will) on its own topics, and nothing else;
- **the hub** (login = ``hub.client_id``, for the desk, its readings connection and every
  ``gridcall hub ingest`` worker): reads every agent's readings, events and status, and
  publishes the alerts (retained);
- **a unit's app** (login ``app-<unit id>``): reads the alerts of its subtree, the same
  filter :func:`gridcall.wire.topics.unit_subscription` gives it; publishes nothing;
- **a department's business system** (external.yaml; login ``ext-<system id>``):
  publishes its events on its own topic, ``gridcall/v1/external/<system id>``, and
  nothing else; the hub reads them all.

Nobody else may do anything: no anonymous login, no other topic, and only the hub writes
(or erases, with an empty retained message) an alert topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gridcall.config import ConfigSet
from gridcall.wire import topics

Access = Literal["read", "write"]
Role = Literal["agent", "hub", "app", "system"]
APP_PREFIX = "app-"
SYSTEM_PREFIX = "ext-"


@dataclass(frozen=True, slots=True)
class Grant:
    access: Access
    topic: str
    """A topic filter (``+``, ``#`` as in MQTT); ``read`` also allows subscribing to it."""


@dataclass(frozen=True, slots=True)
class Principal:
    """One broker login and what it may do."""

    user: str
    role: Role
    grants: tuple[Grant, ...]
    about: str
    """Who this is, for the generated files' comments."""


def agent_principal(agent: str) -> Principal:
    return Principal(agent, "agent", (
        Grant("write", topics.readings_topic(agent)),
        Grant("write", topics.events_topic(agent)),
        Grant("write", topics.status_topic(agent)),  # its heartbeat and its last will
    ), f"edge agent {agent}")


def hub_principal(user: str) -> Principal:
    return Principal(user, "hub", (
        Grant("read", topics.READINGS),
        Grant("read", topics.EVENTS),
        Grant("read", topics.STATUS),
        Grant("read", topics.EXTERNAL),
        Grant("write", topics.ALERTS),
    ), "the hub: desk, readings connection and ingest workers")


def app_user(unit: str) -> str:
    return f"{APP_PREFIX}{unit}"


def app_principal(unit_path: tuple[str, ...], name: str) -> Principal:
    unit = unit_path[-1]
    return Principal(app_user(unit), "app", (
        Grant("read", topics.unit_subscription(unit_path)),
    ), f"the app of {name} ({unit}): alerts of its subtree")


def system_user(system: str) -> str:
    return f"{SYSTEM_PREFIX}{system}"


def system_principal(system: str, name: str) -> Principal:
    return Principal(system_user(system), "system", (
        Grant("write", topics.external_topic(system)),
    ), f"the business system {name} ({system}): its own events")


def policy(config: ConfigSet) -> tuple[Principal, ...]:
    """Every login the config set implies: the hub, each agent, each unit's app, each
    department's system."""
    users: dict[str, Principal] = {}
    hub = hub_principal(config.hub.client_id)
    parties = [hub, *(agent_principal(a) for a in sorted(config.agents)),
               *(app_principal(u.path, u.name)
                 for u in sorted(config.units.values(), key=lambda u: u.path)),
               *(system_principal(s.id, s.name) for s in config.external.systems)]
    for p in parties:
        if p.user in users:
            raise ValueError(f"broker login {p.user!r} would be both {users[p.user].about} "
                             f"and {p.about}: rename one (logins are agent ids, "
                             f"hub.client_id, {APP_PREFIX}<unit id> and "
                             f"{SYSTEM_PREFIX}<system id>)")
        users[p.user] = p
    return tuple(parties)
