"""The validated shape of a gridcall config set: frozen pydantic models, unknown keys refused.

A config set is a folder of YAML files:

- ``topology.yaml``: the district → towns → communities → grids ladder, and departments;
- ``sensors.yaml``: sensor kinds with their defaults, and every sensor;
- ``agents.yaml``: edge agents and their settings;
- ``matters.yaml``: the matter catalog (事项清单) with tiers, owners and deadlines;
- ``hub.yaml``: the hub's settings;
- ``notify.yaml`` (:mod:`gridcall.config.notify`) and ``roster.yaml``
  (:mod:`gridcall.config.duty`): who is told, and who is on duty.

These models check each file on its own; :mod:`gridcall.config.loader` checks the references
between files and turns every problem into a message with file, key path and reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from gridcall.config.base import (
    BrokerSettings,
    Duration,
    Id,
    Model,
    Name,
    ReadableFile,
    TlsFiles,
    read_env,
    unset_envs,
)
from gridcall.config.boards import BoardSettings
from gridcall.config.calendars import Deadline, WorkSpan, check_order
from gridcall.config.plans import Plan
from gridcall.config.reports import ReportSettings
from gridcall.config.sources import SimulatedSettings, SourceSettings
from gridcall.wire.clock import ns
from gridcall.wire.codec import TsWindow
from gridcall.wire.https import HttpsSettings
from gridcall.wire.ladder import Tier

MatterType = Literal["patrol", "emergency", "daily"]
AnomalyKind = Literal[
    "out_of_limits", "spike", "level_shift", "stuck", "dropout", "drift", "multivariate",
    "fault",
]
SiteTag = Literal[
    "school", "elderly_home", "hazardous_goods", "hospital", "market", "flood_point",
    "bridge", "residential", "restaurant", "construction_site",
]

Lon = Annotated[float, Field(ge=-180, le=180)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Coordinates = tuple[Lon, Lat]
"""``[longitude, latitude]`` in WGS 84, the GeoJSON order."""


class Location(Model):
    """A point, or a GeoJSON polygon (list of rings of ``[lon, lat]``), exactly one of them."""

    point: Coordinates | None = None
    polygon: tuple[tuple[Coordinates, ...], ...] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Location:
        if (self.point is None) == (self.polygon is None):
            raise ValueError("give exactly one of 'point' or 'polygon'")
        for ring in self.polygon or ():
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise ValueError("a polygon ring needs at least 4 positions, first == last")
        return self

    def centre(self) -> Coordinates:
        if self.point is not None:
            return self.point
        ring = self.polygon[0][:-1] if self.polygon else ()
        return (sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring))


# --------------------------------------------------------------------------- topology


class Grid(Model):
    id: Id
    name: Name
    location: Location
    tags: tuple[SiteTag, ...] = ()
    neighbours: tuple[Id, ...] = ()
    """Grids that border this one (either side may say it): anomalies of one matter in
    neighbouring grids join one incident (``incidents`` in matters.yaml)."""


class Community(Model):
    id: Id
    name: Name
    location: Location
    grids: tuple[Grid, ...] = Field(min_length=1)


class Town(Model):
    id: Id
    name: Name
    location: Location
    communities: tuple[Community, ...] = Field(min_length=1)


class District(Model):
    id: Id
    name: Name
    location: Location
    towns: tuple[Town, ...] = Field(min_length=1)


class Department(Model):
    """A district department (城管, 公安, 消防安全...) or a town branch of one (a 派出所, a
    城管中队): an actor of its own (吹哨报到). Its persons and duty shifts are in
    roster.yaml and its channels in notify.yaml, as a unit's."""

    id: Id
    name: Name
    towns: tuple[Id, ...] = ()
    """Its area of action: the towns it acts in (a town branch); empty: the whole
    district. It is dispatched, sees and acts on alerts in its area only."""
    arrival: Duration = timedelta(minutes=30)
    """Its promised arrival after a whistle (a dispatch naming it): 30 minutes by default
    (北京吹哨报到). Missed, the district command centre supervises it (督办)."""
    report_in: Duration | None = None
    """By when it must report in (报到) after a whistle; default: its promised arrival."""
    remind_before: Duration | Literal["off", False] | None = None
    """How long before its promised arrival its person on duty is reminded, if it is not
    on site by then (:mod:`gridcall.hub.desk.arrival_reminders`); default: a third of
    the promise (10 minutes before a 30-minute promise); ``off``: no reminder."""

    @property
    def reminder_lead(self) -> timedelta | None:
        """How long before the promised arrival the reminder goes (None: none)."""
        if isinstance(self.remind_before, timedelta):
            return self.remind_before
        return self.arrival / 3 if self.remind_before is None else None  # "off"

    def in_area(self, place: tuple[str, ...]) -> bool:
        """Whether a place (district, town, community, grid path) is in its area."""
        return not self.towns or (len(place) > 1 and place[1] in self.towns)

    @model_validator(mode="after")
    def _report_before_arrival(self) -> Department:
        if self.report_in is not None and self.report_in > self.arrival:
            raise ValueError("report_in must not come after the promised arrival")
        if isinstance(self.remind_before, timedelta) and self.remind_before >= self.arrival:
            raise ValueError(f"remind_before ({self.remind_before.total_seconds():g} s) must "
                             f"be shorter than the promised arrival "
                             f"({self.arrival.total_seconds():g} s): the reminder goes "
                             "after the whistle")
        return self


class Topology(Model):
    district: District
    departments: tuple[Department, ...] = Field(min_length=1)


# --------------------------------------------------------------------------- sensors


class Limits(Model):
    """Physical range (readings outside it are faults) and alarm limits, in the kind's unit."""

    physical_min: float | None = None
    physical_max: float | None = None
    alarm_low: float | None = None
    alarm_high: float | None = None
    hysteresis: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        values = [
            v for v in (self.physical_min, self.alarm_low, self.alarm_high, self.physical_max)
            if v is not None
        ]
        if any(not math.isfinite(v) for v in values):
            raise ValueError("limits must be finite numbers")
        if values != sorted(values):
            raise ValueError("limits must satisfy physical_min <= alarm_low <= alarm_high <= "
                             "physical_max")
        return self


PRODUCT_SENSITIVITY = 0.0
"""The ``default`` detector's sensitivity for the product (0..1; the detector's own
default, 0.5, is where it is scored on NAB)."""
PRODUCT_PARAMS: Mapping[str, float | int | str | bool] = MappingProxyType({"extreme_z": 8})
"""The ``default`` detector's parameters for the product, under any a sensor gives."""


class DetectorSettings(Model):
    """Which detector (a name from the detectors registry), its sensitivity and extra
    parameters; ``refractory`` is how many readings after an alert must pass before the
    same sensor may raise the next (0: report every episode, the hub groups them).

    The defaults are the product's one setting, which the sample config, the scenario
    library, the demo and ``gridcall detect`` all run: the ``default`` detector at
    :data:`PRODUCT_SENSITIVITY` with :data:`PRODUCT_PARAMS` (a parameter a sensor gives
    wins over the product's). It was chosen on the simulated streams for at most 0.01
    false anomalies per sensor-hour (docs/benchmarks.md, bench/sim_false_rate.py).

    >>> DetectorSettings().params, DetectorSettings(params={"warmup": 300}).params
    ({'extreme_z': 8}, {'warmup': 300, 'extreme_z': 8})
    >>> DetectorSettings(name="limits").params
    {}
    """

    name: str = "default"
    sensitivity: float = Field(default=PRODUCT_SENSITIVITY, ge=0, le=1)
    refractory: int = Field(default=0, ge=0)
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _product_params(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name", "default") == "default":
            given = data.get("params")
            if given is None or isinstance(given, dict):
                given = given or {}
                product = {k: v for k, v in PRODUCT_PARAMS.items() if k not in given}
                data = {**data, "params": {**given, **product}}
        return data


class SensorKind(Model):
    unit: Name
    interval: Duration = timedelta(seconds=5)
    limits: Limits = Limits()
    detector: DetectorSettings = DetectorSettings()
    description: str = ""


class Sensor(Model):
    id: Id
    kind: Id
    grid: Id
    agent: Id
    coordinates: Coordinates
    unit: Name | None = None
    interval: Duration | None = None
    limits: Limits | None = None
    detector: DetectorSettings | None = None
    tags: tuple[SiteTag, ...] = ()
    name: str = ""


class SensorsFile(Model):
    kinds: dict[Id, SensorKind] = Field(min_length=1)
    sensors: tuple[Sensor, ...] = Field(min_length=1)


# --------------------------------------------------------------------------- agents and hub


HostPort = Annotated[str, StringConstraints(
    pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):[0-9]{1,5}$")]
"""``host:port``, or ``[ipv6]:port``."""


class AgentSettings(Model):
    broker: BrokerSettings = BrokerSettings()
    batch_max_readings: int = Field(default=500, ge=1, le=10_000)
    """Seal a batch once this many readings are pending (else every ``batch_interval``).
    Each sealed batch is one outbox commit (an fsync with ``outbox_sync: full``) and one
    MQTT message, so below 500 readings/s a batch is sealed by time, once a second; the cap
    only bites on the busiest agents, where it keeps a message near 25 KB and the fsyncs
    to a few a second (at 50, an agent reading 1,000 values/s fsynced 20 times a second,
    wearing an SD card, and spent 1.7 times the CPU it does at 500: docs/benchmarks.md).
    Telegraf's ``metric_batch_size`` defaults to 1,000."""
    batch_interval: Duration = timedelta(seconds=1)
    status_interval: Duration = timedelta(seconds=30)
    state_dir: str = "var/agent"
    # the durable outbox and checkpoints under state_dir (see edge_agent/outbox.py)
    outbox_max_bytes: int = Field(default=256 * 2**20, ge=2**16)
    outbox_max_age: Duration = timedelta(days=7)
    outbox_drop_events: bool = False
    outbox_sync: Literal["full", "normal"] = "full"
    checkpoint_interval: Duration = timedelta(minutes=5)
    metrics: HostPort | None = None
    """``HOST:PORT`` to serve this agent's Prometheus metrics on (``GET /metrics``; needs
    ``pip install 'gridcall[metrics]'``); unset: none (the default: a listening socket on
    a cabinet's Pi is the operator's decision)."""


# --------------------------------------------------------------------------- agents
# Source models live in their own modules (config/sources.py, config/local_mqtt.py);
# they build on config/base.py, not on this module.


class Agent(Model):
    id: Id
    name: str = ""
    grid: Id
    source: SourceSettings = SimulatedSettings()
    """``simulated``, or a mapping with ``type``: ``serial``, ``modbus``
    (:mod:`gridcall.config.sources`), ``mqtt`` (:mod:`gridcall.config.local_mqtt`)."""
    sensors: tuple[Id, ...] | None = None
    settings: AgentSettings | None = None


class AgentsFile(Model):
    defaults: AgentSettings = AgentSettings()
    agents: tuple[Agent, ...] = Field(min_length=1)


PointLayout = Literal["lean", "rich"]
"""hub.yaml ``influx.points``: what each stored reading carries (gridcall/sinks.py)."""


class InfluxSettings(Model):
    """InfluxDB: ``api: 1`` writes ``/write`` (database, retention policy, user/password);
    ``api: 2`` writes through influxdb-client (org, bucket, token). 3.x accepts both."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    api: Literal[1, 2] = 1
    database: str = "gridcall"
    retention_policy: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    org: str = "gridcall"
    bucket: str = "gridcall"
    token_env: str | None = None
    measurement: Id = "reading"
    points: PointLayout = "lean"
    """The stored reading: ``lean`` is ``reading,agent=..,sensor=.. value=.. <ts>``;
    ``rich`` adds tags ``kind``, ``town``, ``community``, ``grid`` and the batch's ``seq``
    as a field, as before issue 20, for a town whose own queries read them (InfluxDB
    takes about half as many of those points per second; docs/architecture.md)."""
    batch_max_points: int = Field(default=5000, ge=1, le=100_000)
    flush_interval: Duration = timedelta(seconds=1)
    tls: InfluxTls | None = None
    """For an ``https://`` url: CA file, verify on/off, client certificate."""

    def credentials(self) -> tuple[str | None, str | None]:
        """v1 username and password from the environment; KeyError naming a missing one."""
        return read_env(self.username_env), read_env(self.password_env)

    def token(self) -> str | None:
        """The v2 token from the environment; KeyError naming a missing variable."""
        return read_env(self.token_env)

    def unset_env(self) -> list[str]:
        """``field: VARIABLE`` for each variable this API needs that is named but not set."""
        fields = ("username_env", "password_env") if self.api == 1 else ("token_env",)
        return unset_envs(self, fields)

    @model_validator(mode="after")
    def _api_fields(self) -> InfluxSettings:
        if self.api == 2 and self.token_env is None:
            raise ValueError("api 2 needs token_env: the environment variable with the token")
        if self.tls is not None and not self.url.startswith("https://"):
            raise ValueError(f"tls is set but the url {self.url!r} is plain http://: use "
                             "https:// (or remove tls)")
        return self

    def https(self) -> HttpsSettings | None:
        """The TLS settings the sinks take, or None for the defaults."""
        if self.tls is None:
            return None
        return HttpsSettings(ca_file=self.tls.ca_file, verify=self.tls.verify,
                             certfile=self.tls.certfile, keyfile=self.tls.keyfile)


class TsWindowSettings(Model):
    """How far a reading's or event's ``ts`` may lie from the hub's clock; outside it the
    message is refused (``ts_window``) and kept in the dead-letter store for a replay.

    30 days back: an agent replays its whole outbox after an outage (``outbox_max_age``,
    7 days by default), and a Pi without a real-time clock that has just synced sends
    what it stamped before the sync with fake-hwclock's time, the last shutdown (days or
    weeks back); a Pi that never had the time stamps 1970, which is no time at all and
    is refused. 1 hour ahead: clocks synced by NTP differ by far less; a device sending
    local time as UTC (8 h ahead in China) is refused and counted rather than stored at
    the wrong hour."""

    past: Duration = timedelta(days=30)
    future: Duration = timedelta(hours=1)

    def window(self) -> TsWindow:
        return TsWindow(past=ns(self.past), future=ns(self.future))


class InfluxTls(TlsFiles):
    """``influx.tls``: the CA an ``https://`` InfluxDB's certificate must chain to
    (``ca_file``, else the system's), a client certificate for a proxy that asks for one,
    and ``verify: false`` to skip the check (logged as a warning each time a sink opens:
    anyone on the path can then read and change what is written)."""

    ca_file: ReadableFile | None = None
    verify: bool = True


class ApiTls(Model):
    """``api.tls``: the API's certificate (chain) and key, PEM: it then serves HTTPS."""

    certfile: ReadableFile
    keyfile: ReadableFile | None = None
    """May be left out when ``certfile`` holds the key too."""


class ApiSettings(Model):
    """How ``gridcall hub run --api HOST:PORT`` serves (the address stays a command-line
    choice, off unless given)."""

    tls: ApiTls | None = None
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 2**20)
    """A request body over this is refused (413) before it is read (hub/api/guard.py)."""


class DeskStoreSettings(Model):
    """The desk's durable state (events, the ledgers, the reminder log, the notify outbox)
    in PostgreSQL (hub/pgstore.py) instead of SQLite at ``store_path``; two hubs on one
    database are active and standby (docs/operations.md)."""

    url_env: str
    """The environment variable holding the database's URL,
    ``postgresql://user:password@host:port/database`` (libpq's form)."""

    def url(self) -> str:
        """The URL from the environment; KeyError naming the variable if unset."""
        value = read_env(self.url_env)
        if value is None:  # url_env is required, so read_env always looks it up
            raise KeyError(f"environment variable {self.url_env} is not set")
        return value

    def unset_env(self) -> list[str]:
        return unset_envs(self, ("url_env",))


class HubSettings(Model):
    broker: BrokerSettings = BrokerSettings()
    api: ApiSettings = ApiSettings()
    client_id: Id = "gridcall-hub"
    influx: InfluxSettings | None = None
    store_path: str = "var/hub.sqlite"
    desk_store: DeskStoreSettings | None = None
    """The desk's state in PostgreSQL; None: in SQLite at ``store_path`` (the default)."""
    deadletter_path: str = "var/hub-deadletter.sqlite"
    """Messages that decoded but could not be handled (hub/deadletter.py), kept for
    ``gridcall hub deadletter list|replay``; shared by the hub and its ingest workers."""
    deadletter_max_entries: int = Field(default=100_000, ge=1)
    """Dead letters kept at most; past it the oldest are deleted, counted and logged."""
    spool_dir: str = "var/hub-spool"
    """Where ingest keeps readings the sink cannot take now (one subfolder per worker)."""
    ingest_share_group: Id = "gridcall-ingest"
    """The MQTT shared-subscription group ingest workers join (``$share/<group>/...``)."""
    ingest_receive_maximum: int | None = Field(default=1000, ge=1, le=65_535)
    """Unacknowledged readings messages the broker may have in flight to one ingest
    worker: its MQTT v5 Receive Maximum, in place of the broker's own window (mosquitto's
    default, 20, starves a worker that acknowledges after writing). ``null``: speak MQTT
    3.1.1 and take the broker's window, for a broker without v5."""
    max_batch_readings: int = Field(default=10_000, ge=1, le=1_000_000)
    """Readings one batch may carry; a longer batch is refused whole (counted as
    ``too_many_readings``). The default takes any agent's batch (an agent's
    ``batch_max_readings`` is at most 10,000)."""
    boards: BoardSettings = BoardSettings()
    """Board data in InfluxDB and the agent roster (config/boards.py)."""
    reports: ReportSettings = ReportSettings()
    """Calls from people: photos, triage, the public intake (config/reports.py)."""
    ts_window: TsWindowSettings | None = TsWindowSettings()
    """Readings and events stamped outside it are refused; ``null``: only the contract's
    own bounds (0 <= ts < 2**63)."""

    def decoder_window(self) -> TsWindow | None:
        return self.ts_window.window() if self.ts_window is not None else None


class HubFile(Model):
    hub: HubSettings = HubSettings()


# --------------------------------------------------------------------------- matters


class Responsibility(Model):
    """The responsibility list (权责清单): one lead department plus co-handlers."""

    lead: Id | None = None
    co: tuple[Id, ...] = ()


class MatterDeadlines(Model):
    """Response, arrival and disposal limits: plain durations (``30m``, ``2h``, ``7d``) or
    working time (``5 working hours``, ``15 working days``) in ``calendar``
    (:mod:`gridcall.config.calendars`; None: calendars.yaml's default)."""

    response: Deadline
    arrival: Deadline
    disposal: Deadline
    calendar: Id | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MatterDeadlines:
        why = check_order(self.spans())
        if why is not None:
            raise ValueError(f"deadlines must satisfy response <= arrival <= disposal: {why}")
        return self

    def spans(self) -> list[tuple[str, timedelta | WorkSpan]]:
        return [("response", self.response), ("arrival", self.arrival),
                ("disposal", self.disposal)]

    def in_working_time(self) -> bool:
        return any(isinstance(s, WorkSpan) for _, s in self.spans())


class Trigger(Model):
    """Which anomalies make this matter: sensor kinds (``"*"`` for any) × anomaly kinds."""

    sensor_kinds: tuple[Id | Literal["*"], ...] = Field(min_length=1)
    anomaly_kinds: tuple[AnomalyKind, ...] = (
        "out_of_limits", "spike", "level_shift", "drift", "multivariate",
    )


class Matter(Model):
    code: Id
    name: Name
    type: MatterType
    base_tier: Tier
    departments: Responsibility = Responsibility()
    deadlines: MatterDeadlines | None = None
    triggers: tuple[Trigger, ...] = ()
    plan: Plan = Plan()
    """The matter's plan (一事一预案, :mod:`gridcall.config.plans`); a plain string is its
    summary."""


class MattersFile(Model):
    default_deadlines: dict[MatterType, MatterDeadlines]
    matters: tuple[Matter, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _every_type(self) -> MattersFile:
        missing = {"patrol", "emergency", "daily"} - set(self.default_deadlines)
        if missing:
            raise ValueError(f"default_deadlines lacks {sorted(missing)}")
        return self
