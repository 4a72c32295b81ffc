"""The desk wing: from anomaly events and calls to alerts with owners and deadlines.

Its rooms, one line each ("pure": no I/O, no clock):

- ``desk``: the one writer of alerts: grouping, commits, hooks, the door for every call.
- ``policy``: what an alert becomes: tier, route and deadlines (pure).
- ``spread``: where a matter was seen lately, for the policy to count spread.
- ``lifecycle``: an alert as the fold of its transitions (pure).
- ``ledger``: the alert ledger, every transition append-only in the desk store.
- ``appendlog``: the append-only log the logs beside the ledger are built on.
- ``closed_alerts``: each closed alert's state as a table, so memory holds only the recent.
- ``snapshots``: the desk's state every so many ledger rows, so a restart replays the tail.
- ``timers``: the deadline (and reminder) heap (pure).
- ``intake``: a call no sensor raised (a person's report, a system's event) and where (pure).
- ``reports``: reports from people as their own record (pure).
- ``report_ledger``: the steps of reports, append-only.
- ``reporting``: filing, following and rating reports through the desk.
- ``photos``: photos checked by their content, kept in the desk store.
- ``external``: a department's system's event mapped onto matter, grid and tier (pure).
- ``external_log``: the number each system's event got, durable.
- ``external_intake``: map, number and call a system's event.
- ``plans``: a matter's plan on an alert: departments dispatched, steps ticked off (pure).
- ``whistle``: departments called to an alert and how each answers (吹哨报到, pure).
- ``audits``: closure control and audits: who approves a close, the audit draw (pure).
- ``silence``: maintenance windows (pure).
- ``silence_ledger``: the steps of silences, append-only.
- ``inhibit``: what an offline agent holds back (pure).
- ``incidents``: alerts that are one incident, and its lead (pure).
- ``incident_ledger``: the steps of incidents, append-only.
- ``roster``: the edge agents heard from, online, silent or lost, and outages (pure).
- ``duty``: who is on duty for a unit at a moment, over roster.yaml (pure).
- ``reminders``: the escalation policies' reminders (pure).
- ``reminder_log``: the reminders sent, append-only.
- ``arrival_reminders``: reminders to departments before their promised arrival.
- ``handover``: a unit's hand-over at a shift change (pure).
- ``indicators``: assessment indicators folded from the ledger (pure).
- ``runtime``: the desk in service: MQTT connection, outages, retained publishing, timers.

May import: ``gridcall.wire`` (the tier ladder is :mod:`gridcall.wire.ladder`),
``gridcall.config``, ``gridcall.hub.store``, ``gridcall.hub.deadletter`` (events that
failed are kept there) and the line protocol escapes of ``gridcall.hub.ingest.sinks``.
Never notify, board or api.
"""
