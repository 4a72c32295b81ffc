"""Golden cases for the alert desk: each folder of tests/golden/ holds

- ``config.yaml`` (optional): overrides for the sample district's ``matters.yaml``;
  top-level keys replace the sample's (``rules``, ``grouping``, ``tier_deadlines``...),
  except ``matters``, whose entries replace the sample's matter of the same code;
- ``input.yaml``: what happens, in order, each step at a time after the start (``at``):
  an anomaly ``event`` (sensor, severity, kind, phase, agent, seq: an agent's numbering,
  so a repeated seq is a redelivery), a ``call`` no sensor raised (source, seq, kind,
  matter, grid or point, actor, severity, tier: :meth:`Desk.call`), a unit's ``act``
  (alert, action, unit, reason, departments), a ``tick`` (the timer looks at the
  clock), a ``silence`` (scope, id, ``for`` a duration or ``until`` a time after the
  start, optional ``start``, unit, reason), a ``lift`` (silence, unit) or an ``agent``
  going ``offline`` or back (``{id: edge-x, offline: false}``: what the roster tells the
  desk's inhibitor);
- ``expected.yaml``: every alert afterwards, with its history as
  ``"<at> <action> <tier> <unit> [by <actor>] [: reason]"``, refused actions, and every
  silence with its steps (``"<at> <action> [by <unit>] [: note]"``), and the anomalies
  inhibition held back (``"<at> <sensor> <matter> <kind>: why"``), and every incident
  with its alerts, lead and steps (``"<at> <action> <alerts> lead <unit>: why"``).

``GRIDCALL_GOLDEN_UPDATE=1 pytest tests/test_golden.py`` rewrites ``expected.yaml`` from
what the desk does now; read the diff before committing it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridcall.config import SAMPLE_DISTRICT, load_config
from gridcall.config.base import parse_duration
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.intake import Call, locate
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.desk.silence import Scope, SilenceStep
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.yaml").exists())
T0 = 1_800_000_000_000_000_000
NS = 10**9


def offset(value: object) -> int:
    return int(parse_duration(str(value)).total_seconds() * NS) if value not in (0, "0") else 0


def span(ns: int) -> str:
    s = ns // NS
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out or "0m"


def configure(case: Path, into: Path) -> Path:
    target = into / "district"
    shutil.copytree(SAMPLE_DISTRICT, target)
    overrides_file = case / "config.yaml"
    if overrides_file.exists():
        overrides = yaml.safe_load(overrides_file.read_text(encoding="utf-8")) or {}
        matters_path = target / "matters.yaml"
        matters = yaml.safe_load(matters_path.read_text(encoding="utf-8"))
        for key, value in overrides.items():
            if key == "matters":
                by_code = {m["code"]: m for m in value}
                matters["matters"] = [by_code.pop(m["code"], m) for m in matters["matters"]]
                matters["matters"] += list(by_code.values())
            else:
                matters[key] = value
        matters_path.write_text(yaml.safe_dump(matters, allow_unicode=True, sort_keys=False),
                                encoding="utf-8")
    return target


def silence_line(s: SilenceStep) -> str:
    text = f"{span(s.at - T0)} {s.action}"
    if s.actor != "hub":
        text += f" by {s.actor}"
    note = f"{s.sensor} {s.matter}" if s.action == "mute" else s.note
    return f"{text}: {note}" if note else text


def line(t: Transition) -> str:
    text = f"{span(t.at - T0)} {t.action} {t.tier} {t.unit}"
    if t.actor != "hub":
        text += f" by {t.actor}"
    if t.reason:
        text += f": {t.reason}"
    return text


async def play(case: Path, tmp_path: Path) -> dict[str, Any]:
    cfg = load_config(configure(case, tmp_path))
    steps = yaml.safe_load((case / "input.yaml").read_text(encoding="utf-8"))["steps"]
    refused: list[str] = []
    seqs: dict[str, int] = {}
    async with Store(":memory:") as store:
        desk = Desk(cfg, Ledger(store))
        offline: set[str] = set()
        desk.inhibitor.offline = offline.__contains__
        await desk.start()
        for step in steps:
            now = T0 + offset(step["at"])
            if "event" in step:
                e = step["event"]
                sensor = cfg.sensors[e["sensor"]]
                agent = e.get("agent", sensor.agent)
                seq = e.get("seq", seqs.get(agent, 0) + 1)
                seqs[agent] = max(seqs.get(agent, 0), seq)
                await desk.on_event(AnomalyEvent(
                    agent=agent, seq=seq, sensor=sensor.id, kind=e.get("kind", "out_of_limits"),
                    phase=e.get("phase", "start"), severity=e.get("severity", "major"),
                    score=0.9, value=1.0, ts=now), now)
            elif "act" in step:
                a = step["act"]
                try:
                    await desk.act(a["alert"], a["action"], a["unit"], now=now,
                                   reason=a.get("reason", ""),
                                   departments=a.get("departments", ()))
                except (ValueError, LookupError, PermissionError) as exc:
                    refused.append(f"{span(now - T0)} {a['action']} by {a['unit']}: {exc}")
            elif "call" in step:  # a call no sensor raised (hub/desk/intake.py)
                c = step["call"]
                point = c.get("point")
                try:
                    await desk.call(Call(
                        source=c.get("source", "reports"), seq=c["seq"],
                        kind=c.get("kind", "report"), matter=c["matter"],
                        grid=c.get("grid") or locate(cfg, point=tuple(point)).id,
                        note=c.get("note", ""), at=now, severity=c.get("severity", "minor"),
                        tier=c.get("tier"), point=tuple(point) if point else None,
                        actor=c.get("actor", "")), now)
                except (ValueError, LookupError) as exc:
                    refused.append(f"{span(now - T0)} call {c['seq']}: {exc}")
            elif "tick" in step:
                await desk.tick(now)
            elif "silence" in step:
                si = step["silence"]
                start = T0 + offset(si.get("start", step["at"]))
                end = (T0 + offset(si["until"]) if "until" in si
                       else start + offset(si["for"]))
                try:
                    await desk.add_silence(Scope(si["scope"], si["id"]), start=start,
                                           end=end, reason=si.get("reason", "maintenance"),
                                           author=si["unit"], now=now)
                except (ValueError, LookupError) as exc:
                    refused.append(f"{span(now - T0)} silence by {si['unit']}: {exc}")
            elif "agent" in step:
                ag = step["agent"]
                (offline.add if ag["offline"] else offline.discard)(ag["id"])
            elif "lift" in step:
                li = step["lift"]
                try:
                    await desk.lift_silence(li["silence"], li["unit"], now=now)
                except (ValueError, LookupError) as exc:
                    refused.append(f"{span(now - T0)} lift by {li['unit']}: {exc}")
            else:
                raise ValueError(f"{case.name}: a step needs event, call, act, tick, "
                                 f"silence, lift or agent: {step}")
        alerts = []
        for state in (await desk.listing())[1]:  # those closed long ago too
            a = state.alert
            alerts.append({
                "alert": state.alert_id, "matter": a.matter, "grid": a.grid,
                "state": state.state, "tier": state.tier, "unit": state.unit,
                "departments": list(state.departments), "evidence": state.evidence,
                "history": [line(t) for t in await desk.history(state.alert_id)],
            })
        silences = [{
            "silence": s.silence_id, "scope": f"{s.scope}", "by": s.author,
            "muted": s.muted, "history": [silence_line(x) for x in
                                          await desk.silence_history(s.silence_id)],
        } for s in desk.silences.all()]
        incidents = [{
            "incident": i.incident_id, "matter": i.matter, "lead": i.lead,
            "alerts": list(i.alerts), "grids": list(i.grids),
            "history": [f"{span(x.at - T0)} {x.action} {' '.join(x.alerts)} lead {x.lead}: "
                        f"{x.reason}" for x in await desk.incident_history(i.incident_id)],
        } for i in desk.incidents.all()]
    out: dict[str, Any] = {"alerts": alerts}
    if silences:
        out["silences"] = silences
    if incidents:
        out["incidents"] = incidents
    if desk.held:
        out["held"] = [f"{span(h.at - T0)} {h.sensor} {h.matter} {h.anomaly_kind}: {h.why}"
                       for h in desk.held]
    if refused:
        out["refused"] = refused
    return out


@pytest.mark.parametrize("case", CASES)
async def test_golden(case: str, tmp_path: Path) -> None:
    folder = GOLDEN / case
    got = await play(folder, tmp_path)
    expected_file = folder / "expected.yaml"
    if os.environ.get("GRIDCALL_GOLDEN_UPDATE") == "1":
        expected_file.write_text(yaml.safe_dump(got, allow_unicode=True, sort_keys=False,
                                                width=100), encoding="utf-8")
    expected = yaml.safe_load(expected_file.read_text(encoding="utf-8"))
    assert got == expected
