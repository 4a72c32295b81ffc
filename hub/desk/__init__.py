"""The desk wing: from anomaly events to alerts with owners and deadlines.

Owns grouping and commits (``desk``), the pure policy that decides every alert's tier,
route and deadlines (``policy``), the memory of recent sightings it counts spread from
(``spread``), the deadline timers (``timers``), the alert lifecycle (``lifecycle``), the
ledger (``ledger``), the agent roster and its outages (``roster``), who is on duty
(``duty``, over roster.yaml), the reminders of the escalation policies (``reminders``,
logged in ``reminder_log``), the reminders to departments before their promised
arrival (``arrival_reminders``, with their own log), a unit's hand-over at a shift
change (``handover``),
maintenance windows (``silence``, their steps in ``silence_ledger``), what an offline
agent holds back (``inhibit``), alerts that are one incident (``incidents``, their steps
in ``incident_ledger``), the append-only log those logs are built on (``appendlog``), the
indicators folded from the ledger (``indicators``) and the desk in service: its MQTT
connection, outages, retained publishing and timer loop
(``runtime``).

May import: ``gridcall.wire`` (the tier ladder is :mod:`gridcall.wire.ladder`),
``gridcall.config``, ``gridcall.hub.store``, ``gridcall.hub.deadletter`` (events that
failed are kept there) and the line protocol escapes of ``gridcall.hub.ingest.sinks``.
Never notify, board or api.
"""
