"""Who may publish and read which topic, one login per party (docs/security.md).

- **an agent** (login = its id): publishes its readings, events and status (retained, and
  its last will) on its own topics, and nothing else;
- **the hub** (login = ``hub.client_id``, for the desk, its readings connection and every
  ``gridcall hub ingest`` worker): reads every agent's readings, events and status, and
  publishes the alerts (retained);
- **a unit's app** (login ``app-<unit id>``): reads the alerts of its subtree, the same
  filter :func:`gridcall.wire.topics.unit_subscription` gives it; publishes nothing.

Nobody else may do anything: no anonymous login, no other topic, and only the hub writes
(or erases, with an empty retained message) an alert topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gridcall.config import ConfigSet
from gridcall.wire import topics

Access = Literal["read", "write"]
Role = Literal["agent", "hub", "app"]
APP_PREFIX = "app-"


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
        Grant("write", topics.ALERTS),
    ), "the hub: desk, readings connection and ingest workers")


def app_user(unit: str) -> str:
    return f"{APP_PREFIX}{unit}"


def app_principal(unit_path: tuple[str, ...], name: str) -> Principal:
    unit = unit_path[-1]
    return Principal(app_user(unit), "app", (
        Grant("read", topics.unit_subscription(unit_path)),
    ), f"the app of {name} ({unit}): alerts of its subtree")


def policy(config: ConfigSet) -> tuple[Principal, ...]:
    """Every login the config set implies: the hub, each agent, each unit's app."""
    users: dict[str, Principal] = {}
    hub = hub_principal(config.hub.client_id)
    parties = [hub, *(agent_principal(a) for a in sorted(config.agents)),
               *(app_principal(u.path, u.name)
                 for u in sorted(config.units.values(), key=lambda u: u.path))]
    for p in parties:
        if p.user in users:
            raise ValueError(f"broker login {p.user!r} would be both {users[p.user].about} "
                             f"and {p.about}: rename one (logins are agent ids, "
                             f"hub.client_id, and {APP_PREFIX}<unit id>)")
        users[p.user] = p
    return tuple(parties)
