"""The building blocks every config model shares: ids, durations, time zone names, the
frozen ``Model``, and broker settings with credentials named by environment variable.

The bottom of :mod:`gridcall.config`: :mod:`gridcall.config.models` and the source and
board models (:mod:`gridcall.config.sources`, :mod:`gridcall.config.local_mqtt`,
:mod:`gridcall.config.boards`) build on it, and it imports none of them, so the package
loads in one direction.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    field_validator,
    model_validator,
)

from gridcall.wire.broker import BrokerAddress, TlsSettings

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""Ids end up in MQTT topic levels and InfluxDB tags, so they stay plain ASCII."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: Any) -> Any:
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


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone name like 'Asia/Shanghai' or "
                         "'UTC'") from None
    return value


TimeZone = Annotated[str, AfterValidator(_time_zone)]
"""An IANA time zone name (``Asia/Shanghai``, ``UTC``), checked against the zone database."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Loc = tuple[str | int, ...]
"""A key path inside a config file, as in the problems :mod:`gridcall.config.resolve` reports."""


class SourceSettingsModel(Model):
    """What every agent source's settings (``source:`` in agents.yaml) answer, so nothing
    outside its own model asks "which kind of source is this?".

    A new kind of source subclasses this with a ``type: Literal[...]`` field, joins the
    union in :mod:`gridcall.config.sources`, and overrides what applies to it.
    """

    map_item: ClassVar[str | None] = None
    """What one entry of the source's map is called (``channel``, ``register``) when every
    sensor of the agent must be read by one; None if the source checks that itself."""

    def mapped_sensors(self) -> Iterator[tuple[Loc, str]]:
        """Each sensor id the source's map names, with its key path under ``source``."""
        return iter(())

    def map_problems(self) -> Iterator[tuple[Loc, str]]:
        """What is inconsistent in the map itself (key path under ``source``, reason); by
        default a sensor read twice."""
        seen: dict[str, Loc] = {}
        for loc, sensor in self.mapped_sensors():
            if sensor in seen:
                yield loc, f"sensor {sensor!r} is already read at source.{key_path(seen[sensor])}"
            else:
                seen[sensor] = loc

    def agent_problems(self, units: Mapping[str, str]) -> list[tuple[Loc, str]]:
        """Problems against the agent's own sensors (``units``: sensor id → unit), for a
        source that checks its map itself (``map_item`` None)."""
        return []

    def unset_env(self) -> list[str]:
        """``key.path: VARIABLE`` for each credential variable the source names but the
        environment lacks."""
        return []


def key_path(loc: Loc) -> str:
    """``devices[0].channels.3``: a key path as a person reads it."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _readable_file(value: Path) -> Path:
    """A file that exists and can be read now; the error names the path. Relative paths
    are taken from the working directory, as ``hub.store_path`` is."""
    if not value.exists():
        raise ValueError(f"file {value} does not exist")
    if not value.is_file():
        raise ValueError(f"{value} is not a file")
    if not os.access(value, os.R_OK):
        raise ValueError(f"file {value} cannot be read (permissions)")
    return value


ReadableFile = Annotated[Path, AfterValidator(_readable_file)]
"""A PEM file named in the config (a CA, a certificate, a key): checked when loaded."""

_HOST_NAME = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"


class TlsFiles(Model):
    """A client certificate and its key (PEM): ``keyfile`` may be left out when
    ``certfile`` holds both."""

    certfile: ReadableFile | None = None
    keyfile: ReadableFile | None = None

    @model_validator(mode="after")
    def _key_needs_certificate(self) -> TlsFiles:
        if self.keyfile is not None and self.certfile is None:
            raise ValueError(f"keyfile {self.keyfile} is given without certfile: name the "
                             "client certificate it belongs to")
        return self


class BrokerTls(TlsFiles):
    """``broker.tls``: how an ``mqtts://`` connection checks the broker (``ca_file``, else
    the system's CAs; ``server_name`` when the certificate does not name the URL's host)
    and proves who we are (``certfile``, ``keyfile``: mutual TLS)."""

    ca_file: ReadableFile | None = None
    min_version: Literal["1.2", "1.3"] = "1.2"
    server_name: Annotated[str, StringConstraints(pattern=_HOST_NAME)] | None = None

    def settings(self) -> TlsSettings:
        return TlsSettings(ca_file=self.ca_file, certfile=self.certfile,
                           keyfile=self.keyfile, min_version=self.min_version,
                           server_name=self.server_name)


class BrokerSettings(Model):
    """Where the MQTT broker is; credentials are *names* of environment variables."""

    url: Annotated[str, StringConstraints(pattern=r"^mqtts?://[^/\s]+(:\d+)?/?$")] = (
        "mqtt://127.0.0.1:1883"
    )
    username_env: str | None = None
    password_env: str | None = None
    keepalive: Duration = timedelta(seconds=30)
    tls: BrokerTls | None = None
    """Transport security for an ``mqtts://`` URL; None: the system's CAs, no client
    certificate."""
    mqtt_version: Literal["5", "3.1.1"] = "5"
    """The protocol the edge agent's uplink and the hub's desk speak: MQTT v5 (the
    broker's PUBACK then says when it refuses a publish, and the client logs it:
    docs/security.md), or ``"3.1.1"`` for a broker without v5 (mosquitto before 1.6); a
    YAML number ``5`` is taken as ``"5"``. The local MQTT source subscribes with 3.1.1
    whatever this says, and the embedded demo broker is always spoken to in 3.1.1."""

    @field_validator("mqtt_version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _tls_needs_mqtts(self) -> BrokerSettings:
        if self.tls is not None and not self.url.startswith("mqtts://"):
            raise ValueError(f"tls is set but the url {self.url!r} is plain mqtt://: use "
                             "mqtts:// (or remove tls)")
        return self

    def address(self, url: str | None = None) -> BrokerAddress:
        """The broker to dial: ``url`` (a command-line override) or the configured one,
        with this config's TLS settings; ValueError naming a bad URL."""
        tls = self.tls.settings() if self.tls is not None else None
        return BrokerAddress.parse(url or self.url, tls)

    def credentials(self) -> tuple[str | None, str | None]:
        """Username and password from the environment; KeyError naming a missing variable."""
        return read_env(self.username_env), read_env(self.password_env)

    def unset_env(self) -> list[str]:
        """``field: VARIABLE`` for each credential variable named here but not set."""
        return unset_envs(self, ("username_env", "password_env"))


def read_env(name: str | None) -> str | None:
    """The value of the environment variable ``name`` (None for no name); KeyError
    naming the variable, and that the config named it, if it is not set."""
    if name is None:
        return None
    try:
        return os.environ[name]
    except KeyError:
        raise KeyError(f"environment variable {name} (named in the config) is not set") from None


def unset_envs(settings: BaseModel, fields: tuple[str, ...]) -> list[str]:
    """``field: VARIABLE`` for each of ``fields`` that names a variable the environment
    lacks."""
    names = ((f, getattr(settings, f)) for f in fields)
    return [f"{f}: {name}" for f, name in names if name is not None and name not in os.environ]
