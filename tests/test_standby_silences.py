"""A standby's desk follows the silence ledger by its tail (Desk.follow): a silence set or
lifted on the active hub is seen by the standby, and each follow reads only the rows
written since the last one, however long the log has grown. Rows read are counted by
the log itself (BodyLog.rows_read), on both desk stores."""

from __future__ import annotations

from gridcall.config import ConfigSet
from gridcall.hub.desk.desk import Desk
from gridcall.hub.desk.ledger import Ledger
from gridcall.hub.desk.silence import Scope
from tests.desk_stores import DeskStores

T0 = 1_800_000_000 * 10**9
H = 3600 * 10**9


async def test_a_standby_reads_only_the_silences_written_since_its_last_follow(
        cfg: ConfigSet, desk_stores: DeskStores) -> None:
    async with desk_stores.open() as active_store, desk_stores.open() as standby_store:
        active = Desk(cfg, Ledger(active_store))
        await active.start()
        standby = Desk(cfg, Ledger(standby_store))  # its own connection, as a second hub
        standby.writes = False
        standby.snapshot_every = 0
        await standby.start()
        log = standby.silence_ledger.log
        per_follow: list[int] = []
        written: list[int] = []  # the rows the active hub wrote between two follows
        size = 0
        for i in range(6):
            now = T0 + i * H  # each one expires the one before: a step of its own
            added = await active.add_silence(
                Scope("agent", "edge-dongyuan"), start=now, end=now + H,
                reason=f"gateway works, round {i}", author="dasha", now=now)
            grown = len(await active.silence_ledger.all())
            written.append(grown - size)
            size = grown
            before = log.rows_read
            await standby.follow()
            per_follow.append(log.rows_read - before)
            assert standby.silences.get(added.silence_id) == added
        # each follow read what was written since the last, not the log so far
        assert per_follow == written
        assert per_follow[-1] < size
        assert standby.silences.all() == active.silences.all()
        before = log.rows_read
        await standby.follow()
        assert log.rows_read == before  # nothing new: nothing read
        # a lift (a later step of a silence it holds) is folded onto what it holds
        live = [x for x in standby.silences.all() if not x.ended]
        assert len(live) == 1
        lifted = await active.lift_silence(live[0].silence_id, "dasha",
                                           now=T0 + 5 * H + H // 2)
        assert lifted.ended
        grown = len(await active.silence_ledger.all()) - size
        before = log.rows_read
        await standby.follow()
        assert log.rows_read - before == grown
        assert standby.silences.get(lifted.silence_id) == lifted
        assert standby.silences.all() == active.silences.all()
