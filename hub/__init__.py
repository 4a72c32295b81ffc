"""The hub: readings into the time-series database, anomaly events into alerts.

Five wings, each a package whose ``__init__`` says what it owns and may import:
``ingest`` (readings from the broker into InfluxDB), ``desk`` (events to alerts: grouping,
the policy, timers, the ledger, the roster), ``notify`` (telling people), ``board`` (what
the command centre sees) and ``api`` (HTTP). Beside them: ``store`` (the SQLite store),
``pgstore`` (the desk's store on PostgreSQL, the same interface), ``lease`` (the advisory
lock that makes one of two hubs on one PostgreSQL the active desk),
``deadletter`` (messages that decoded but could not be handled, kept for people),
``metrics`` (the Prometheus collector over the hub's counters),
``service`` (:class:`~gridcall.hub.service.Hub`, composing the desk runtime, an ingest
worker and the board writers) and ``compose`` (wiring the notifier, the API and the board
around a hub). tests/test_hub_wings.py and tests/test_import_graph.py hold the arrows.
"""
