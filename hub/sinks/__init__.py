"""Where the hub writes readings: InfluxDB v1, InfluxDB v2/v3, or the embedded store."""

from hub.sinks.base import (
    BatchTooLargeError,
    ReadingSink,
    RejectedPointsError,
    RetryableSinkError,
    SinkAuthError,
    SinkConfigError,
    SinkError,
)
from hub.sinks.influx import InfluxV1Sink, InfluxV2Sink
from hub.sinks.lineproto import LineEncoder

__all__ = ["BatchTooLargeError", "InfluxV1Sink", "InfluxV2Sink", "LineEncoder",
           "ReadingSink", "RejectedPointsError", "RetryableSinkError", "SinkAuthError",
           "SinkConfigError", "SinkError"]
