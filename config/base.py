"""The building blocks every config model shares: ids, durations, the frozen ``Model``,
and broker settings with credentials named by environment variable.

The bottom of :mod:`gridcall.config`: :mod:`gridcall.config.models` and the source and
board models (:mod:`gridcall.config.sources`, :mod:`gridcall.config.local_mqtt`,
:mod:`gridcall.config.boards`) build on it, and it imports none of them, so the package
loads in one direction.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""Ids end up in MQTT topic levels and InfluxDB tags, so they stay plain ASCII."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def _parse_duration(value: Any) -> Any:
    """``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``, ``"1h30m"`` or a number of seconds."""
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration like '90s', '30m', '2h', '1d'")
        return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration), AfterValidator(_positive)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerSettings(Model):
    """Where the MQTT broker is; credentials are *names* of environment variables."""

    url: Annotated[str, StringConstraints(pattern=r"^mqtts?://[^/\s]+(:\d+)?/?$")] = (
        "mqtt://127.0.0.1:1883"
    )
    username_env: str | None = None
    password_env: str | None = None
    keepalive: Duration = timedelta(seconds=30)

    def credentials(self) -> tuple[str | None, str | None]:
        """Username and password from the environment; KeyError naming a missing variable."""
        return _env(self.username_env), _env(self.password_env)

    def unset_env(self) -> list[str]:
        """``field: VARIABLE`` for each credential variable named here but not set."""
        return _unset(self, ("username_env", "password_env"))


def _env(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return os.environ[name]
    except KeyError:
        raise KeyError(f"environment variable {name} (named in the config) is not set") from None


def _unset(settings: BaseModel, fields: tuple[str, ...]) -> list[str]:
    names = ((f, getattr(settings, f)) for f in fields)
    return [f"{f}: {name}" for f, name in names if name is not None and name not in os.environ]
