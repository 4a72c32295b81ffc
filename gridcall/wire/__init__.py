"""The wire contract shared by ``edge_agent`` and ``hub``: message types, topics, codec.

A leaf: it imports nothing of gridcall's, so both runtimes can depend on it without
depending on each other.
"""

from gridcall.wire.codec import Decoder, MalformedMessage, TsWindow, encode
from gridcall.wire.ladder import Tier, UnitLevel
from gridcall.wire.messages import (
    ANOMALY_KINDS,
    CALL_KINDS,
    HEALTH_STATES,
    WIRE_VERSION,
    AgentStatus,
    AlertAction,
    AlertStatus,
    AnomalyEvent,
    AnomalyKind,
    CallKind,
    Deadlines,
    Departments,
    HealthState,
    Reading,
    ReadingBatch,
    RiskAlert,
    SensorHealth,
    Severity,
)

__all__ = [
    "ANOMALY_KINDS",
    "CALL_KINDS",
    "HEALTH_STATES",
    "WIRE_VERSION",
    "AgentStatus",
    "AlertAction",
    "AlertStatus",
    "AnomalyEvent",
    "AnomalyKind",
    "CallKind",
    "Deadlines",
    "Decoder",
    "Departments",
    "HealthState",
    "MalformedMessage",
    "Reading",
    "ReadingBatch",
    "RiskAlert",
    "SensorHealth",
    "Severity",
    "Tier",
    "TsWindow",
    "UnitLevel",
    "encode",
]
