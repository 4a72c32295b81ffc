"""One message per incident (:mod:`gridcall.hub.desk.incidents`), not one per alert.

The desk hands a batch hook every change one of its calls made (an event with the tier
raises it caused, a tick with its escalations). :func:`incident_notices` groups the
notified steps (open, escalate, reopen, dispatch) of alerts that are in an incident by
incident: one :class:`IncidentNotice` each, addressed to the incident's lead and to every
unit that holds one of its alerts or just passed one on, saying what changed for each
alert. :func:`incident_hook` queues them on the notifier and, with an outbox, records
every step it covered as notified once the deliveries are done. Steps of alerts outside
incidents stay with :func:`gridcall.hub.notify.notifier.desk_hook`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from gridcall.hub.desk.desk import Change
from gridcall.hub.desk.incidents import Incident
from gridcall.hub.notify.notifier import NOTIFIED_ACTIONS, Notifier, Outbox
from gridcall.wire import RiskAlert
from gridcall.wire.clock import Clock, utc_text


@dataclass(frozen=True, slots=True)
class IncidentNotice:
    incident: Incident
    alert: RiskAlert
    """The alert of the first change (the channels that need one alert get this one)."""
    units: tuple[str, ...]
    """The lead first, then the units of the changes and of the incident's other alerts;
    but the unit of ``person`` first when the lead has none on duty in the changes (the
    notifier reaches the person instead of the *first* unit's channels)."""
    title: str
    text: str
    body: str
    """JSON: the incident and the alerts that changed."""
    person: str
    steps: tuple[tuple[str, int], ...]
    """``(alert_id, n)`` of every step the notice covers."""


def incident_notices(changes: Sequence[Change], units_of: Callable[[str], str]
                     ) -> list[IncidentNotice]:
    """One notice per incident among the notified ``changes`` (in order of first change).
    ``units_of``: an alert id's responsible unit now."""
    groups: dict[str, list[Change]] = {}
    for change in changes:
        if (change.incident is not None and change.transition.action in NOTIFIED_ACTIONS
                and change.transition.action != "supervise"):  # the desk hook's own
            groups.setdefault(change.incident.incident_id, []).append(change)
    out: list[IncidentNotice] = []
    for group in groups.values():
        incident = group[-1].incident
        if incident is None:  # grouped on it above
            continue
        first = group[0].alert.alert
        # The person on duty at a unit the changes hand an alert to, the lead's if it is
        # one of them: they replace that unit's channels only, so that unit goes first.
        handed = [c.transition for c in group if c.transition.on_duty]
        duty = next((t for t in handed if t.unit == incident.lead),
                    handed[0] if handed else None)
        person, first_unit = (duty.on_duty, duty.unit) if duty else ("", incident.lead)
        units = dict.fromkeys([first_unit, incident.lead,
                               *(u for c in group for u in c.units),
                               *(units_of(a) for a in incident.alerts)])
        top = min(c.alert.tier for c in group)
        title = (f"[{top}] {first.matter_name} · incident {incident.incident_id} · "
                 f"{len(incident.alerts)} alerts in {len(incident.grids)} grids "
                 f"(lead {incident.lead})")
        lines = [f"Incident {incident.incident_id}: {first.matter_name} ({incident.matter}) "
                 f"in grids {', '.join(incident.grids)}; lead: {incident.lead_level} "
                 f"{incident.lead}; alerts {', '.join(incident.alerts)}"]
        for c in group:
            a, t = c.alert.alert, c.transition
            why = " · ".join(x for x in (t.reason, t.note) if x)
            lines.append(f"- {a.alert_id} {t.action}: grid {a.grid}, tier {a.tier}, "
                         f"{a.state}, {a.unit}; respond by {utc_text(a.deadlines.response)}"
                         + (f" ({why})" if why else ""))
        body = json.dumps({
            "incident": msgspec.to_builtins(incident),
            "alerts": [msgspec.to_builtins(c.alert.alert) for c in group],
        }, ensure_ascii=False)
        out.append(IncidentNotice(
            incident=incident, alert=first, units=tuple(units), title=title,
            text="\n".join(lines), body=body, person=person,
            steps=tuple((c.transition.alert_id, c.transition.n) for c in group)))
    return out


def incident_hook(notifier: Notifier, units_of: Callable[[str], str],
                  outbox: Outbox | None = None, clock: Clock | None = None, *,
                  prefetch: Callable[[list[str]], Awaitable[Mapping[str, str]]] | None = None
                  ) -> Callable[[list[Change]], Awaitable[None]]:
    """A :meth:`gridcall.hub.desk.desk.Desk.add_batch_hook` hook: one message per incident.
    ``prefetch``: the responsible units of these alerts, read first (an incident's alert
    the desk no longer holds in memory is read from its store); ``units_of`` answers
    the others."""

    async def hook(changes: list[Change]) -> None:
        lookup = units_of
        if prefetch is not None:
            found = await prefetch([a for c in changes if c.incident is not None
                                    for a in c.incident.alerts])

            def lookup(alert_id: str) -> str:
                return found[alert_id] if alert_id in found else units_of(alert_id)
        for notice in incident_notices(changes, lookup):
            on_done = None
            if outbox is not None:
                async def on_done(notice: IncidentNotice = notice) -> None:
                    for alert_id, n in notice.steps:
                        at = clock() if clock else notice.incident.updated_at
                        await outbox.done(alert_id, n, at)
            # the lead department (one matter, one) hears of it too when notify.yaml
            # gives it channels, as of an alert outside incidents (notifier.desk_hook)
            lead = notice.alert.departments.lead
            units = (*notice.units, *((lead,) if notifier.channels_of(lead) else ()))
            notifier.notify(notice.alert, units, on_done=on_done,
                            person=notice.person, title=notice.title, text=notice.text,
                            body=notice.body)
    return hook


__all__ = ["IncidentNotice", "incident_hook", "incident_notices"]
