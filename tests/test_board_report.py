"""The board's report form (hub/board/report.js) in a real browser, on the real hub and API
of tests/test_board_web.py: a report with a photo filed from the form reaches the ledger
as an alert's open step with its photo; a second report of the same matter in that grid
joins it as evidence; once the alert is resolved the reporter rates it from the list, a
``rate`` step; a bad photo is refused with its reason and writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests import test_board_web as web
from tests.images import png
from tests.polling import wait_until
from tests.test_board_web import ARTIFACTS, Site, expect

# the board's fixtures (a real hub, its API, a signed-in chromium page), shared
site = web.site
board = web.board
page = web.page

MATTER = "MANHOLE-DISPLACED"
GRID = "dongyuan-g2"


async def _open_form(page: Any) -> None:
    await page.locator("#report-panel summary").click()
    await expect(page.locator(f'#report-matter option[value="{MATTER}"]')).to_have_count(1)


async def _file(page: Any, text: str, photos: list[Path] | None = None) -> None:
    await page.select_option("#report-matter", MATTER)
    await page.select_option("#report-grid", GRID)
    await page.fill("#report-description", text)
    await page.set_input_files("#report-photos", [str(p) for p in photos or []])
    await page.click("#report-form button[type=submit]")


async def test_a_report_from_the_form_opens_joins_and_is_rated(
        site: Site, page: Any, tmp_path: Path) -> None:
    photo = tmp_path / "cover.png"
    photo.write_bytes(png(6, 4))
    await _open_form(page)
    await _file(page, "井盖移位 by the gate", [photo])
    result = page.locator("#report-result")
    await expect(result).to_contain_text("R000001: opened AL")
    await expect(result).to_contain_text("with 1 photo(s)")
    (state,) = site.hub.desk.alerts(open_only=True)
    first = (await site.hub.desk.history(state.alert_id))[0]
    assert (first.action, first.actor, state.alert.matter, state.place[-1], len(first.photos)
            ) == ("open", "dongyuan", MATTER, GRID, 1)
    assert first.photos[0].endswith(".png")
    await _file(page, "still open, water around it")
    await expect(result).to_contain_text(f"R000002: joined as evidence {state.alert_id}")
    await expect(page.locator("#my-reports li")).to_have_count(2)
    await page.screenshot(path=str(ARTIFACTS / "report-1-filed.png"), full_page=True)

    desk = site.hub.desk
    now = site.hub.clock()
    for action in ("acknowledge", "arrive", "resolve"):  # the town: tier B closes there
        await desk.act(state.alert_id, action, "dasha", now=now)  # type: ignore[arg-type]
    await page.click("#report-refresh")
    item = page.locator('#my-reports li[data-report="R000001"]')
    await expect(item).to_have_attribute("data-state", "resolved")
    await item.locator('button[data-rating="basically_satisfied"]').click()
    await expect(result).to_contain_text("R000001: rated basically_satisfied")
    assert await wait_until(lambda: desk.counters.ratings == 1)
    rated = (await desk.history(state.alert_id))[-1]
    assert (rated.action, rated.rating, rated.reason) == (
        "rate", "basically_satisfied", "report R000001")
    await expect(item).to_contain_text("rated basically_satisfied")
    await expect(item.locator("button")).to_have_count(0)
    await page.screenshot(path=str(ARTIFACTS / "report-2-rated.png"), full_page=True)


async def test_a_photo_that_is_no_image_is_refused_with_its_reason(
        site: Site, page: Any, tmp_path: Path) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"this is a text file named like a photo")
    before = await site.ledger()
    await _open_form(page)
    await _file(page, "a photo that is not one", [fake])
    await expect(page.locator("#report-result")).to_contain_text(
        "Report refused (422: photos.0: not a JPEG or PNG image")
    await expect(page.locator("#report-result")).to_have_class("error")
    assert await site.ledger() == before
