"""Where the hub writes readings: InfluxDB through its v1 or v2 write API.

A sink is an async context manager whose ``write(batches)`` stores every reading or
raises a classified :class:`SinkError` (see :mod:`gridcall.hub.ingest.sinks.base`); it never
retries.
:class:`LineEncoder` turns batches into line protocol for both InfluxDB sinks.
"""

from gridcall.hub.ingest.sinks.base import (
    BatchTooLargeError,
    ReadingSink,
    RejectedPointsError,
    RetryableSinkError,
    SinkAuthError,
    SinkConfigError,
    SinkError,
)
from gridcall.hub.ingest.sinks.influx import InfluxV1Sink, InfluxV2Sink
from gridcall.hub.ingest.sinks.lineproto import LineEncoder

__all__ = [
    "BatchTooLargeError",
    "InfluxV1Sink",
    "InfluxV2Sink",
    "LineEncoder",
    "ReadingSink",
    "RejectedPointsError",
    "RetryableSinkError",
    "SinkAuthError",
    "SinkConfigError",
    "SinkError",
]
