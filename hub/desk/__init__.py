"""The desk wing: from anomaly events to alerts with owners and deadlines.

Owns grouping and commits (``desk``), the alert lifecycle (``lifecycle``), the ledger
(``ledger``), tiering and routing (``alerts``, ``tiering``), the agent roster and its
outages (``roster``) and the indicators folded from the ledger (``indicators``).

May import: ``gridcall.wire``, ``gridcall.config``, ``gridcall.hub.store`` and the line
protocol escapes of ``gridcall.hub.ingest.sinks``. Never notify, board or api.
"""
