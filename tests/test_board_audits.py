"""The board's closure and audit panel (hub/board/audits.js) in a real browser, on the real
hub and API of tests/test_board_web.py, with the sample district's rules (closure: A
district; audits: tier A always drawn): a grid's false alarm of a tier-A gas leak shows
on the district's board as awaiting approval; the community sees it without buttons; the
district approves it from the board, the closing lands in its audit queue, and a failed
audit from the board reopens the alert with its note, all of it in the ledger. The alert's
own row in Open alerts says whose approval its close awaits, and approving it there works
too."""

from __future__ import annotations

import asyncio
from typing import Any

from gridcall.hub.api.tokens import issue
from tests import test_board_web as web
from tests.polling import wait_until
from tests.test_board_web import Board, Site, expect, shot

# the board's fixtures (a real hub, its API, a signed-in chromium page), shared
site = web.site
board = web.board
page = web.page

GAS = "dongyuan-g3-gas-1"  # GAS-LEAK: tier A, the district's


def answer_prompts(tab: Any, text: str) -> None:
    """Type ``text`` into every window.prompt the page opens."""
    tab.on("dialog", lambda d: asyncio.ensure_future(d.accept(text)))


async def test_the_district_approves_a_close_and_fails_its_audit_from_the_board(
        site: Site, board: Board, page: Any) -> None:
    desk = site.hub.desk
    alert_id = await site.open_alert(GAS, 1)
    assert desk.get(alert_id).tier == "A"
    asked = await desk.act(alert_id, "false_alarm", "dongyuan-g3", now=site.hub.clock(),
                           note="no smell any more")
    assert asked.transition.action == "request_close"

    # the community sees what waits, but may not decide it
    mine = page.locator(f'#approvals li[data-alert="{alert_id}"]')
    await expect(mine).to_contain_text("dongyuan-g3 asks it be closed as a false alarm")
    await expect(mine.locator("button")).to_have_count(0)

    token = issue(site.tokens_path, "huangpu", known_units=site.hub.config.units,
                  label="board test, the district")
    district = await board(token)
    answer_prompts(district, "the gas company found a leaking valve")
    item = district.locator(f'#approvals li[data-alert="{alert_id}"]')
    await expect(item).to_contain_text("the district approves")
    await shot(district, "audits-1-awaiting-approval")
    await item.locator('button[data-do="approve"]').click()
    await expect(district.locator("#audits-result")).to_contain_text(
        f"{alert_id}: close approved")
    assert await wait_until(lambda: desk.get(alert_id).state == "false_alarm")
    closed = await desk.history(alert_id)
    assert [(t.action, t.actor) for t in closed[-2:]] == [("false_alarm", "huangpu"),
                                                           ("sample", "hub")]
    await expect(district.locator("#approvals li")).to_have_count(0)

    queued = district.locator(f'#audit-queue li[data-alert="{alert_id}"]')
    await expect(queued).to_contain_text("a false alarm by huangpu")
    await shot(district, "audits-2-in-the-queue")
    await queued.locator('button[data-do="fail"]').click()
    await expect(district.locator("#audits-result")).to_contain_text(
        f"{alert_id}: audit failed, reopened")
    assert await wait_until(lambda: desk.get(alert_id).is_open)
    reopened = (await desk.history(alert_id))[-1]
    assert (reopened.action, reopened.actor, reopened.reason) == (
        "reopen", "huangpu", "audit failed: the gas company found a leaking valve")
    await expect(district.locator("#audit-queue li")).to_have_count(0)
    await shot(district, "audits-3-failed-and-reopened")
    assert district.errors == []


async def test_a_close_awaiting_approval_shows_on_the_alert_and_is_approved_from_it(
        site: Site, board: Board, page: Any) -> None:
    """The alert's own row says who must approve its close: the grid asks from its board
    (its false alarm of a tier-A gas leak is a request), every board shows "close
    awaiting approval by 黄埔区" on the row, the closing buttons go (a second request is a
    409), and the district's row offers approve and reject; approving there closes it."""
    desk = site.hub.desk
    district = site.hub.config.units["huangpu"]
    alert_id = await site.open_alert(GAS, 1)
    assert desk.get(alert_id).tier == "A"
    row_of = lambda tab: tab.locator(f'#alerts tr[data-alert="{alert_id}"]')  # noqa: E731
    waiting = f"close awaiting approval by {district.name}"

    grid = await board(issue(site.tokens_path, "dongyuan-g3", known_units=site.hub.config.units,
                             label="board test, the grid"))
    answer_prompts(grid, "")  # the false alarm's confirm
    await row_of(grid).locator('button[data-action="false_alarm"]').click()
    assert await wait_until(lambda: desk.get(alert_id).pending == "false_alarm")
    assert (await desk.history(alert_id))[-1].action == "request_close"
    for tab in (grid, page):
        pending = row_of(tab).locator("td.state small.pending-close")
        await expect(pending).to_have_text(waiting)
        await expect(pending).to_have_attribute("data-approver", district.id)
        await expect(row_of(tab).locator(
            'button[data-action="resolve"], button[data-action="false_alarm"], '
            'button[data-action="approve"], button[data-action="reject"]')).to_have_count(0)
    await shot(page, "approval-1-awaiting-on-the-row")

    top = await board(issue(site.tokens_path, district.id, known_units=site.hub.config.units,
                            label="board test, the district"))
    row = row_of(top)
    await expect(row.locator("td.state small.pending-close")).to_have_text(waiting)
    await expect(row.locator('button[data-action="reject"]')).to_have_count(1)
    await shot(top, "approval-2-the-district-may-approve")
    await row.locator('button[data-action="approve"]').click()
    await expect(top.locator("#notice")).to_contain_text("approve recorded — now false alarm")
    assert await wait_until(lambda: desk.get(alert_id).state == "false_alarm")
    steps = await desk.history(alert_id)
    closing = next(t for t in reversed(steps) if t.action == "false_alarm")
    assert (closing.actor, closing.reason) == (
        district.id, "approved: false_alarm requested by dongyuan-g3")
    for tab in (top, grid, page):
        await expect(row_of(tab)).to_have_count(0)
    assert top.errors == []
    assert grid.errors == []
