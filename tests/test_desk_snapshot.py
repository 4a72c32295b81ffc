"""A desk restored from a snapshot and the ledger's tail is the desk a fold of the whole
ledger gives: the same image, and the same steps from then on."""

from __future__ import annotations

import contextlib
import random
import shutil
from pathlib import Path

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import Desk, IllegalTransition
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.silence import Scope
from gridcall.hub.desk.snapshots import decode, encode, encode_stepwise
from gridcall.hub.store import Store
from gridcall.wire import AnomalyEvent
from tests.desk_stores import DeskStores

T0 = 1_800_000_000_000_000_000
S = 10**9
MIN = 60 * S
H = 60 * MIN


def event(cfg: ConfigSet, sensor: str, seq: int, at: int, severity: str = "major"
          ) -> AnomalyEvent:
    return AnomalyEvent(agent=cfg.sensors[sensor].agent, seq=seq, sensor=sensor,
                        kind="out_of_limits", severity=severity,  # type: ignore[arg-type]
                        score=0.9, value=80.0, ts=at)


async def scenario(cfg: ConfigSet, path: Path | DeskStores) -> Desk:
    """Seeded events on the noise, pm2.5 and manhole sensors (evidence, spread,
    incidents of neighbouring grids), a silence, people's actions and deadlines that
    pass; a snapshot every 9 rows, so the last one leaves a tail."""
    rng = random.Random(20)
    sensors = sorted(s.id for s in cfg.sensors.values()
                     if s.kind in ("noise", "pm25", "manhole_tilt"))
    async with (Store(path) if isinstance(path, Path) else path.open()) as store:
        desk = Desk(cfg, Ledger(store))
        desk.snapshot_every = 9
        await desk.start()
        await desk.add_silence(Scope("sensor", sensors[0]), start=T0, end=T0 + 2 * H,
                               reason="works", author="huangpu", now=T0)
        now = T0
        for seq in range(1, 300):
            now += rng.randrange(1, 60) * S
            await desk.on_event(event(cfg, rng.choice(sensors), seq, now,
                                      rng.choice(("minor", "major", "critical"))), now)
            if seq % 7 == 0 and (open_ := desk.alerts(open_only=True)):
                state = rng.choice(open_)
                action = rng.choice(("acknowledge", "false_alarm"))
                with contextlib.suppress(IllegalTransition):
                    await desk.act(state.alert_id, action, state.unit,  # type: ignore[arg-type]
                                   now=now)
            if seq % 25 == 0:
                await desk.tick(now)
        await desk.tick(now + 3 * H)
    return desk


async def test_a_snapshot_and_the_tail_rebuild_the_desk_a_full_fold_rebuilds(
        cfg: ConfigSet, tmp_path: Path) -> None:
    live = await scenario(cfg, tmp_path / "hub.sqlite")
    c = live.counters
    assert c.evidence
    assert c.escalations_deadline
    assert c.silenced
    assert c.incidents_opened
    assert c.tier_raises
    assert c.actions
    for name in ("snap", "full"):
        shutil.copy(tmp_path / "hub.sqlite", tmp_path / f"{name}.sqlite")
    async with Store(tmp_path / "snap.sqlite") as a, Store(tmp_path / "full.sqlite") as b:
        snap, full = Desk(cfg, Ledger(a)), Desk(cfg, Ledger(b))
        await snap.start()
        await full.start(snapshot=False)
        rows = await full.ledger.count()
        assert snap.restored_from is not None
        assert 0 < snap.replayed < rows
        assert full.replayed == rows
        assert snap.image(rows) == full.image(rows)
        assert snap.alerts() == full.alerts() == live.alerts()
        # and they go on alike: deadlines a day later, then an anomaly in each grid seen
        later = T0 + 30 * H
        fired = [await d.tick(later) for d in (snap, full)]
        assert fired[0] == fired[1]
        assert fired[0]
        for seq, sensor in enumerate(sorted(cfg.sensors)[:40], start=1000):
            ev = event(cfg, sensor, seq, later + seq * S)
            one = await snap.on_event(ev, later + seq * S)
            assert one == await full.on_event(ev, later + seq * S)
        assert snap.image(await snap.ledger.last_seq()) == full.image(
            await full.ledger.last_seq())


async def test_a_snapshot_under_another_config_or_overtaken_in_time_is_passed_over(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    await scenario(cfg, desk_stores)
    async with desk_stores.open() as store:
        desk = Desk(cfg, Ledger(store))
        await desk.start()
        assert desk.restored_from is not None
        # a step stamped before the snapshot's latest, written after it (a clock that
        # went back): the fold's order is not the snapshot's, so it is not used
        state = desk.alerts()[0]
        await desk.note(state.alert_id, "written late", T0 - H)
    async with desk_stores.open() as store:
        again = Desk(cfg, Ledger(store))
        await again.start()
        assert again.restored_from is None
        assert again.replayed == await again.ledger.count()
    other = cfg.__class__(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                             "duty": type(cfg.duty)()})
    async with desk_stores.open() as store:
        desk = Desk(other, Ledger(store))
        await desk.start()
        assert desk.restored_from is None


async def test_a_snapshot_encoded_step_by_step_is_the_same_bytes_as_in_one_call(
        cfg: ConfigSet, tmp_path: Path) -> None:
    """The desk encodes its snapshot a few items of each long list at a time, turning the
    event loop between (issue 20: the write held the loop 2-4 s at 50,000 alerts); the
    bytes, and so what a start-up decodes, are those of one call."""
    live = await scenario(cfg, tmp_path / "hub.sqlite")
    async with Store(tmp_path / "hub.sqlite") as store:
        rows = await Ledger(store).count()
    image = live.image(rows)
    assert len(image.states) > 3
    for step in (1, 3, 16, 1000):
        body = await encode_stepwise(image, step)
        assert body == encode(image)
        assert decode(body) == image
