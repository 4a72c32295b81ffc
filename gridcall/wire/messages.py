"""Message types of the gridcall wire contract, version 1.

Every payload is a JSON object encoded with msgspec. The types below are the single
source of truth for both runtimes (``edge_agent`` and ``hub``); docs/protocol.md shows
examples of each. Timestamps are integer nanoseconds since the Unix epoch, so they go
into InfluxDB exactly as measured.

Readings are decoded batch-wise into array-like structs (``["s1", ts, value]``), which is
what keeps the hub's hot path free of per-reading dict or pydantic objects.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gridcall.wire.ladder import Tier, UnitLevel

WIRE_VERSION = 1

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
"""Identifier of an agent, sensor or unit, as config allows: ids become MQTT topic levels
and InfluxDB tags, so a ``/``, ``#``, space or comma in one is refused at decoding."""
SensorRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
"""A sensor id inside a reading. Same rule as :data:`Id`, but :class:`wire.Decoder`
checks it once per distinct id rather than per reading: a regex per reading cut batch
decoding from about 5 to 1.3 million readings/s."""

AnomalyKind = Literal[
    "out_of_limits", "spike", "level_shift", "stuck", "dropout", "drift", "multivariate",
    "fault",
]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = (
    "out_of_limits", "spike", "level_shift", "stuck", "dropout", "drift", "multivariate",
    "fault",
)
"""``fault``: not a detector's; the agent's, for a value outside the sensor kind's physical
range (gridcall.edge_agent.faults)."""
Severity = Literal["minor", "major", "critical"]
HealthState = Literal["ok", "stuck", "missing", "fault", "offline"]
"""A sensor's health as its agent reports it (:class:`SensorHealth` defines each)."""
HEALTH_STATES: tuple[HealthState, ...] = ("ok", "stuck", "missing", "fault", "offline")
Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
INT64_END = 2**63
"""Every integer on the wire is below this: SQLite's INTEGER and InfluxDB's timestamps and
integer fields are signed 64-bit, so a larger number that passed decoding would only fail
later, in the store (an ``OverflowError`` that once stopped the hub)."""
INT64_MAX = INT64_END - 1
Nanos = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
"""A batch or event sequence number: 0 up to (not including) 2**63."""
Count = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]


class Reading(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True,
              gc=False):
    """One measurement: exactly ``[sensor, ts_ns, value]`` on the wire (a fourth element
    is refused: it would be a new protocol version, not something to drop silently).

    ``gc=False``: a reading holds only a str, an int and a float, so it can be in no
    reference cycle; untracked, the hundreds of thousands a second an ingest worker
    decodes no longer set off the collector's youngest generation every 700 (about 11 %
    of the worker's own path, bench/ingest_worker_cpu.py)."""

    sensor: SensorRef
    ts: Nanos
    value: float


class ReadingBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Readings one agent sends in one MQTT message.

    ``seq`` grows by one per batch and never goes back for an agent, across restarts too;
    the hub stores a batch once per ``(agent, seq)`` however often it is delivered.
    """

    v: Literal[1] = 1
    agent: Id
    seq: Seq
    sent_at: Nanos
    readings: list[Reading]


class AnomalyEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A detector's verdict on one sensor: an anomaly episode starts (or ends).

    ``seq`` is the agent's event sequence number (separate from the batch sequence);
    ``(agent, seq)`` identifies the event, so redelivery never duplicates an alert.
    """

    v: Literal[1] = 1
    agent: Id
    seq: Seq
    sensor: Id
    kind: AnomalyKind
    phase: Literal["start", "end"] = "start"
    severity: Severity
    score: Score
    value: float | None
    ts: Nanos
    detector: str = "default"


class SensorHealth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One sensor as its agent sees it (docs/protocol.md defines each state).

    ``ok``: values arrive. ``missing``: no usable value for longer than 5 of the sensor's
    configured intervals (since the last one, or since the agent started). ``stuck``: the
    sensor's detector has an open ``stuck`` episode (the same value far longer than this
    sensor ever held one). ``fault``: the last value the sensor gave was one it cannot
    produce: a fault code of its device (a register's sentinel such as 0xFFFF) or a value
    outside its kind's physical range; none of those is published as a reading.
    ``offline``: the sensor's device (or the bridge it reports through) said it is offline
    (a Tasmota last will, a Zigbee2MQTT availability message...), until it says online.
    ``last_ts``: time of the last usable value (ns), if any.
    """

    state: HealthState
    last_ts: Nanos | None = None


class AgentStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Retained on the agent's status topic; the broker publishes ``state="offline"`` as
    the agent's last will when the connection drops without a goodbye.

    Sent at connect and then every ``heartbeat_s`` seconds (the heartbeat), so a status
    whose ``ts`` is much older than that, with ``state="online"``, means a silent agent.
    Fields after ``events_sent`` were added later with defaults, so old and new agents
    and hubs read each other's messages (unknown fields are ignored)."""

    v: Literal[1] = 1
    agent: Id
    state: Literal["online", "offline"]
    ts: Nanos
    sensors: Count = 0
    batches_sent: Count = 0
    readings_sent: Count = 0
    events_sent: Count = 0
    heartbeat_s: float = 0.0
    uptime_s: float = 0.0
    samples: Count = 0
    outbox_messages: Count = 0
    """Messages waiting for the broker's PUBACK (durably stored), events included."""
    outbox_events: Count = 0
    outbox_readings: Count = 0
    outbox_bytes: Count = 0
    outbox_oldest_age_s: float | None = None
    dropped: dict[str, Count] = {}
    """What the outbox dropped at its bounds, totals across restarts:
    ``readings_size``, ``readings_age``, ``batches_*``, ``events_*``, ``outbox_corrupt``."""
    source_counters: dict[str, Count] = {}
    """The source's own counters (bad frames by reason, reconnects), if it keeps any."""
    faults: dict[str, Count] = {}
    """Values not published because the sensor cannot produce them, by reason, since the
    agent started: ``sentinel`` (a device's fault code), ``out_of_range`` (outside the
    sensor kind's physical range)."""
    sensor_health: dict[str, SensorHealth] = {}
    publishes_refused: dict[str, Count] = {}
    """Publishes the broker refused since the agent started, by reason
    (``not_authorized``...): its MQTT v5 PUBACK said so (docs/security.md)."""
    refused_by_broker: str | None = None
    """Set while the agent holds its outbox because the broker refused a publish: the topic
    and the reason (``gridcall/v1/readings/edge-x: Not authorized (0x87)``). The refused
    messages stay in the outbox and are tried again every minute."""


class Deadlines(msgspec.Struct, frozen=True, kw_only=True):
    """Absolute deadlines (ns) for response (acknowledge), arrival on site and disposal."""

    response: Nanos
    arrival: Nanos
    disposal: Nanos


class Departments(msgspec.Struct, frozen=True, kw_only=True):
    lead: Id
    co: list[Id] = []


CallKind = Literal["report", "external"]
"""What opened an alert that no sensor raised: a person's report (``POST /v1/reports``), or
a department's business system (``POST /v1/events/external``). It stands in a
:class:`RiskAlert`'s ``anomaly_kind`` where a sensor alert has its anomaly's kind."""
CALL_KINDS: tuple[CallKind, ...] = ("report", "external")

AlertStatus = Literal["opened", "dispatched", "acknowledged", "on_site", "resolved",
                      "false_alarm"]
AlertAction = Literal["open", "evidence", "dispatch", "acknowledge", "arrive", "resolve",
                      "false_alarm", "escalate", "reopen", "report_in", "dept_arrive",
                      "dept_dispose", "supervise", "note", "rate",
                      # closure control and audits (hub/desk/audits.py)
                      "request_close", "reject_close", "sample", "audit", "plan_step"]
"""``report_in``, ``dept_arrive``, ``dept_dispose`` and ``supervise`` are departments' steps
(吹哨报到): a dispatched department reports in, arrives, reports disposal; ``supervise`` is
the hub's 督办 when it misses its promised arrival. They leave the alert's state as it is.
``note``: a note (with photos) on the record, in any state, changing nothing else;
``rate``: a reporter's rating of the handling of a closed alert (issue 18).
``request_close``, ``reject_close``, ``sample``, ``audit``: closure control and audits
(docs/desk.md): a close awaiting approval, its rejection, a closing drawn into the audit
queue, an auditor's verdict; they leave the state as it is too.
``plan_step``: a step of the alert's plan ticked off (一事一预案)."""


class PlanStepItem(msgspec.Struct, frozen=True, kw_only=True):
    """One step of an alert's plan: what is done and by whom (a level, ``responsible``
    or a department id)."""

    id: Id
    text: str
    role: str


class PlanDispatchItem(msgspec.Struct, frozen=True, kw_only=True):
    """A department the plan calls in, and when: tier -> ``always`` or a condition text
    (``"at school/market"``, ``"if critical"``)."""

    department: Id
    when: dict[str, str] = {}


class PlanContactItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    phone: str = ""
    department: str = ""
    note: str = ""


class PlanResourceItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    note: str = ""


class AlertPlan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The matter's plan (一事一预案) as the alert was given it when it opened."""

    summary: str = ""
    steps: list[PlanStepItem] = []
    dispatch: list[PlanDispatchItem] = []
    resources: list[PlanResourceItem] = []
    contacts: list[PlanContactItem] = []


class PlanTick(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A step of the plan ticked off: which, when (ns, hub clock), by which unit or
    department, and the person if a person's token did it."""

    step: Id
    at: Nanos
    by: str
    person: str = ""


class RiskAlert(msgspec.Struct, frozen=True, kw_only=True):
    """A risk early-warning pushed to the unit that must act (see wire.topics.alert_topic).

    Published retained with its *current* state after every transition (``n`` counts them,
    so a subscriber keeps the highest); the fields after ``event_seq`` were added with the
    alert desk and have defaults, so an alert of the first version still decodes.
    """

    v: Literal[1] = 1
    alert_id: Id
    state: AlertStatus
    matter: Id
    matter_name: str
    matter_type: Literal["patrol", "emergency", "daily"]
    tier: Tier
    unit: Id
    unit_level: UnitLevel
    unit_path: list[Id]
    departments: Departments
    sensor: Id
    sensor_kind: str
    grid: Id
    anomaly_kind: AnomalyKind | CallKind
    """The anomaly's kind; for a call from a person or a system (:data:`CallKind`),
    ``report`` or ``external``: its ``sensor`` and ``agent`` then name the caller's
    source (the desk's intake, :meth:`gridcall.hub.desk.desk.Desk.call`)."""
    severity: Severity
    score: Score
    value: float | None
    detected_at: Nanos
    opened_at: Nanos
    deadlines: Deadlines
    agent: Id
    event_seq: Seq
    place: list[Id] = []
    """The sensor's grid path (district, town, community, grid): whose subtree it is in."""
    n: Count = 1
    """How many transitions the alert has had; the retained copy with the highest wins."""
    updated_at: Nanos = 0
    last_action: AlertAction = "open"
    reason: str = ""
    """Why the alert has its tier and unit: the rules that raised it on opening, or the
    reason of its latest escalation ("response deadline passed", a unit's call upward)."""
    escalations: Count = 0
    grids: list[Id] = []
    overdue: str = ""
    """The deadline (``response``, ``arrival``, ``disposal``) that passed where the alert
    can go no higher (tier A at the district, or a device fault at its top tier): it is
    overdue there and the unit's duty leader was paged. Empty once a step moves it on."""
    """Every grid the alert concerns when it is more than its own ``grid``: an edge
    agent's outage is one alert listing each grid its sensors are in. Empty otherwise."""
    point: list[float] = []
    """``[lon, lat]`` of a call that gave a GPS point (a report); empty otherwise (a
    sensor alert's point is its sensor's, in the config)."""
    plan: AlertPlan | None = None
    """The matter's plan as the alert opened with it; None when the catalog gives none
    (or the alert is older than plans)."""
    plan_done: list[PlanTick] = []
    """The plan's steps ticked off so far, first first (``plan_step`` steps)."""
