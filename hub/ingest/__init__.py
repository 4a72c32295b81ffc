"""The ingest wing: readings from the broker into the time-series database.

Owns the readings consumer (``consumer``), the batching runner (``runner``), the
on-disk spool (``spool``), the worker that runs them together (``worker``) and the
sinks (``sinks``: InfluxDB v1/v2, line protocol).

May import: ``gridcall.wire``, ``gridcall.config``, ``gridcall.hub.deadletter`` (where
batches the sink can never take are kept) and its own modules. Never the other wings
(desk, notify, board, api).
"""
