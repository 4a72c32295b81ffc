"""The built-in board (/board) in a real browser: Debian's chromium, headless, driven by
Playwright's async API in the same event loop as a real hub (embedded broker, MQTT, the
desk, the ledger) and its API server. What a person clicks must reach the ledger; what
the API refuses must be shown with its reason and change nothing; a new alert must appear
without a reload. Screenshots go to test-artifacts/board/ (GRIDCALL_ARTIFACTS_DIR moves
them) and are kept as the test's artifacts.

Why Playwright and not Selenium: its async API shares the event loop with the hub under
test, so one test drives the browser and awaits the hub's state; Selenium's blocking calls
would stall that loop (or need the hub in a second thread). Playwright is pointed at
``/usr/bin/chromium`` (never ``playwright install``: no browser download).

Without chromium the tests are skipped on a workstation, but FAIL under CI=true, so CI
cannot pass without running them (scripts/test.sh installs chromium).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridcall.config import ConfigSet
from gridcall.hub.api.app import create_app
from gridcall.hub.api.server import ApiServer
from gridcall.hub.api.tokens import TokenFile, issue, revoke
from gridcall.hub.desk.lifecycle import Transition
from gridcall.hub.service import Hub
from gridcall.hub.store import Store
from gridcall.simulators.embedded import EmbeddedBroker, speaks_mqtt5
from gridcall.wire import AgentStatus, AnomalyEvent, SensorHealth, encode, topics
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.ladder import RISK
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("GRIDCALL_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("GRIDCALL_ARTIFACTS_DIR", ROOT / "test-artifacts")) / "board"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
UNIT = "dongyuan"            # the community: three grids on its map
UNIT_NAME = "东苑社区"
FIRST = "dongyuan-g1-pm25-1"
SECOND = "dongyuan-g3-manholetilt-1"
WAIT_MS = 20_000
"""How long Playwright's expect() polls before it gives up (a bound, not a timing
assertion: CI machines are slow and shared)."""


def _need_browser() -> Any:
    """Playwright's module, or skip (workstation) / fail (CI) saying what is missing."""
    missing = []
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing.append(f"chromium at {CHROMIUM} (apt-get install chromium chromium-driver "
                       "fonts-noto-cjk)")
    try:
        import playwright.async_api as pw
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
        pw = None
    if missing:
        why = "the board's browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return pw


@dataclass
class Site:
    hub: Hub
    url: str
    tokens_path: Path
    token: str
    broker: str
    server: ApiServer

    async def restart_api(self, between: Callable[[], Awaitable[Any]]) -> Any:
        """Stop the API server (its open streams end), await ``between()`` while it is
        down, and serve a new API app on the same port, as a restarted hub would."""
        old = self.server
        await old.__aexit__(None, None, None)
        result = await between()
        app = create_app(self.hub.desk, TokenFile(self.tokens_path), clock=self.hub.clock,
                         roster=self.hub.roster)
        self.server = await ApiServer(app, old.host, old.port).__aenter__()
        return result

    async def open_alert(self, sensor_id: str, seq: int) -> str:
        """Publish an anomaly event as the sensor's edge agent would and wait for the
        hub's desk to open an alert for it; its id."""
        sensor = self.hub.config.sensors[sensor_id]
        event = AnomalyEvent(agent=sensor.agent, seq=seq, sensor=sensor.id,
                             kind="out_of_limits", severity="major", score=0.9,
                             value=999.0, ts=self.hub.clock())
        address = BrokerAddress.parse(self.broker)
        import aiomqtt

        before = self.hub.counters.alerts_opened
        async with aiomqtt.Client(address.host, address.port) as client:
            await client.publish(topics.events_topic(event.agent), encode(event), qos=1)
        assert await wait_until(lambda: self.hub.counters.alerts_opened == before + 1)
        (state,) = [s for s in self.hub.desk.alerts(open_only=True) if s.alert.sensor == sensor_id]
        return state.alert_id

    async def publish(self, topic: str, payload: bytes) -> None:
        import aiomqtt

        address = BrokerAddress.parse(self.broker)
        async with aiomqtt.Client(address.host, address.port) as client:
            await client.publish(topic, payload, qos=1)

    async def ledger(self) -> list[Transition]:
        return await self.hub.desk.transitions()


@pytest.fixture
async def site(cfg: ConfigSet, tmp_path: Path) -> AsyncIterator[Site]:
    """A real hub on an embedded broker, its API server on a free port, a token for the
    community dongyuan."""
    async with EmbeddedBroker() as broker, Store(tmp_path / "hub.sqlite") as store:
        hub = Hub(cfg, sink=store, store=store, broker_url=broker.url,
                  client_id=f"board-test-{uuid.uuid4().hex[:8]}", tick_interval=0.2,
                  mqtt5=speaks_mqtt5(broker.url))
        stop = asyncio.Event()
        task = asyncio.create_task(hub.run(stop))
        try:
            assert await wait_until(hub.subscribed.is_set, polls=600)
            tokens_path = tmp_path / "api-tokens.json"
            token = issue(tokens_path, UNIT, known_units=cfg.units, label="board test")
            app = create_app(hub.desk, TokenFile(tokens_path), clock=hub.clock,
                             roster=hub.roster)
            server = await ApiServer(app, "127.0.0.1", 0).__aenter__()
            site = Site(hub, server.url, tokens_path, token, broker.url, server)
            try:
                yield site
            finally:
                await site.server.__aexit__(None, None, None)
        finally:
            stop.set()
            await task


Board = Callable[..., Awaitable[Any]]


@pytest.fixture
async def board(site: Site) -> AsyncIterator[Board]:
    """``await board(token)``: a page of a fresh headless chromium (its own profile) with
    the board open and signed in with ``token``, its event stream connected. Every
    request the page makes is recorded in ``page.requests``, uncaught script errors in
    ``page.errors``."""
    pw = _need_browser()
    pw.expect.set_options(timeout=WAIT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with pw.async_playwright() as play:
        browser = await play.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)

        async def open_board(token: str, *, link: bool = False, live: bool = True) -> Any:
            context = await browser.new_context(viewport={"width": 1400, "height": 900},
                                                locale="zh-CN")
            tab = await context.new_page()
            tab.requests = []
            tab.errors = []
            tab.on("request", lambda r: tab.requests.append(r.url))
            tab.on("pageerror", lambda e: tab.errors.append(str(e)))
            if link:  # the address gridcall demo prints
                await tab.goto(f"{site.url}/board#token={token}")
            else:
                await tab.goto(f"{site.url}/board")
                await tab.fill("#token", token)
                await tab.click("#token-form button")
            if live:
                await pw.expect(tab.locator("#live")).to_have_class("live on")
            return tab

        try:
            yield open_board
        finally:
            await browser.close()


@pytest.fixture
async def page(site: Site, board: Board) -> AsyncIterator[Any]:
    """The board of the community dongyuan; no script error happened on it."""
    tab = await board(site.token)
    yield tab
    assert tab.errors == []


def expect(locator: Any) -> Any:
    from playwright.async_api import expect as pw_expect

    return pw_expect(locator)


async def shot(page: Any, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_acknowledge_and_resolve_on_the_board_are_written_to_the_ledger(
        site: Site, page: Any) -> None:
    alert_id = await site.open_alert(FIRST, seq=1)
    state = site.hub.desk.get(alert_id)
    row = page.locator(f'#alerts tr[data-alert="{alert_id}"]')
    # the live stream brought it (the page was open before the alert)
    await expect(row).to_be_visible()
    await expect(row).to_contain_text(state.alert.matter_name)
    await expect(row).to_contain_text("东苑社区第1网格")
    await expect(row.locator("td.due")).to_contain_text("response in")
    # the map: its grid coloured by the alert's tier, the others not
    g1 = page.locator('#map [data-grid="dongyuan-g1"]')
    await expect(g1).to_have_attribute("data-risk", str(RISK[state.tier]))
    await expect(g1).to_have_class(f"grid risk-{RISK[state.tier]}")
    await expect(page.locator('#map [data-grid="dongyuan-g2"]')).to_have_attribute(
        "data-risk", "0")
    await expect(page.locator(f'#map [data-sensor="{FIRST}"]')).to_have_attribute(
        "data-risk", str(RISK[state.tier]))
    assert await page.locator("#map .sensor").count() == sum(
        1 for s in site.hub.config.sensors.values() if s.path[2] == UNIT)
    labels = await _labels(page)  # the community's three grids, named readably
    assert sorted(t for t, px, shown in labels if shown and px >= READABLE_PX) == [
        "第1网格", "第2网格", "第3网格"], labels
    await shot(page, "1-open-alert")
    await page.set_viewport_size({"width": 390, "height": 844})  # a grid worker's phone
    await expect(row.locator('button[data-action="acknowledge"]')).to_be_in_viewport()
    await shot(page, "1-open-alert-phone")
    await page.set_viewport_size({"width": 1400, "height": 900})

    for action, after in (("acknowledge", "acknowledged"), ("arrive", "on_site"),
                          ("resolve", "resolved")):
        await row.locator(f'button[data-action="{action}"]').click()
        steps = await _wait_for_step(site, alert_id, action)
        assert steps[-1].actor == UNIT
        assert steps[-1].state == after
        # the notice names the alert by what and where, and the unit by its name
        await expect(page.locator("#notice")).to_contain_text(
            f"{state.alert.matter_name} · 东苑社区第1网格 ({alert_id}): {action} recorded")
        await expect(page.locator("#notice")).to_contain_text(f"held by {UNIT_NAME}")
        if action == "acknowledge":
            await expect(row).to_have_attribute("data-state", "acknowledged")
            await shot(page, "2-acknowledged")
    await expect(row).to_have_count(0)  # resolved: no longer open
    await expect(g1).to_have_attribute("data-risk", "0")
    await shot(page, "3-resolved")
    origin = site.url
    assert all(u.startswith(origin) for u in page.requests), [
        u for u in page.requests if not u.startswith(origin)]


async def _wait_for_step(site: Site, alert_id: str, action: str) -> list[Transition]:
    """The alert's history once it holds ``action`` (the click is asynchronous)."""
    for _ in range(400):
        history = await site.hub.desk.history(alert_id)
        if history[-1].action == action:
            return history
        await asyncio.sleep(0.05)
    raise AssertionError(f"{alert_id}: no {action} in the ledger: "
                         f"{[t.action for t in await site.hub.desk.history(alert_id)]}")


async def test_a_refused_action_shows_the_reason_and_the_ledger_is_unchanged(
        site: Site, page: Any) -> None:
    alert_id = await site.open_alert(FIRST, seq=2)
    row = page.locator(f'#alerts tr[data-alert="{alert_id}"]')
    await expect(row).to_be_visible()
    notice = page.locator("#notice")

    # 422: calling upward with a blank reason
    before = await site.ledger()

    async def blank_reason(dialog: Any) -> None:
        await dialog.accept("   ")

    page.once("dialog", blank_reason)
    await row.locator('button[data-action="escalate"]').click()
    await expect(notice).to_contain_text(f"({alert_id}): escalate refused (422)")
    await expect(notice).to_contain_text("needs a reason")
    assert await site.ledger() == before
    await shot(page, "4-refused-422")

    # 401: the unit's token was revoked while the page was open
    assert revoke(site.tokens_path, UNIT) == 1
    await row.locator('button[data-action="acknowledge"]').click()
    await expect(notice).to_contain_text(f"({alert_id}): acknowledge refused (401): "
                                         "unknown or revoked token")
    assert await site.ledger() == before
    assert site.hub.desk.get(alert_id).state == "opened"
    # the page's own refresh is refused too: said apart, the answer to the click stays
    await expect(page.locator("#sync")).to_contain_text("refused the board's state (401)")
    await expect(notice).to_contain_text(f"({alert_id}): acknowledge refused (401)")
    await shot(page, "5-refused-401")


async def test_a_new_alert_appears_live_without_a_reload(site: Site, page: Any) -> None:
    first = await site.open_alert(FIRST, seq=3)
    await expect(page.locator(f'#alerts tr[data-alert="{first}"]')).to_be_visible()
    await page.evaluate("window.sameDocument = true")

    second = await site.open_alert(SECOND, seq=4)
    state = site.hub.desk.get(second)
    row = page.locator(f'#alerts tr[data-alert="{second}"]')
    await expect(row).to_be_visible()
    await expect(page.locator('#map [data-grid="dongyuan-g3"]')).to_have_attribute(
        "data-risk", str(RISK[state.tier]))
    # the step came over the event stream (the activity list is fed by it alone) ...
    await expect(page.locator(f'#activity li[data-alert="{second}"]')).to_contain_text(
        f"{second} open by hub")
    # ... into the same document: no reload happened
    assert await page.evaluate("window.sameDocument === true")
    await expect(page.locator("#live")).to_have_class("live on")
    await shot(page, "6-live-update")


async def test_the_district_board_draws_every_grid_and_colours_those_at_risk(
        cfg: ConfigSet, site: Site, board: Board) -> None:
    opened = [await site.open_alert(sensor, seq=10 + i) for i, sensor in enumerate(
        ("dongyuan-g1-pm25-1", "shenjing-g1-pm25-1", "dongyuan-g3-manholetilt-1"))]
    token = issue(site.tokens_path, "huangpu", known_units=cfg.units)
    page = await board(token, link=True)
    assert page.url == f"{site.url}/board"  # the token left the address bar at once
    assert "#token" not in page.url
    grids = [u for u in cfg.units.values() if u.level == "grid"]
    await expect(page.locator("#map .grid")).to_have_count(len(grids))
    await expect(page.locator("#map .sensor")).to_have_count(len(cfg.sensors))
    risk = {g.id: 0 for g in grids}
    for alert_id in opened:
        state = site.hub.desk.get(alert_id)
        risk[state.place[-1]] = max(risk[state.place[-1]], RISK[state.tier])
    for grid, level in risk.items():
        await expect(page.locator(f'#map [data-grid="{grid}"]')).to_have_attribute(
            "data-risk", str(level))
    await expect(page.locator("#alerts tbody tr")).to_have_count(len(opened))
    await expect(page.locator("#map")).to_contain_text("大沙东社区")  # community labels
    await shot(page, "7-district")
    # every name drawn on the map is readable at the board's normal size: 27 grids in a
    # 1400-pixel window leave no room for the grids' names, so the communities' stand
    labels = await _labels(page)
    assert {t for t, _, shown in labels if shown} >= {"大沙东社区", "大沙街道", "九龙镇"}
    assert all(px >= READABLE_PX for _, px, shown in labels if shown), labels
    # a town: all three of its communities on screen, their grids named readably
    await page.select_option("#zoom", "dasha")
    await expect(page.locator("#map .grid")).to_have_count(9)
    for grid in await page.locator("#map .grid").all():
        await expect(grid).to_be_in_viewport(ratio=1)
    labels = await _labels(page)
    assert sum(1 for t, _, shown in labels if shown and t.endswith("网格")) == 9, labels
    assert all(px >= READABLE_PX for _, px, shown in labels if shown), labels
    await shot(page, "7-town-zoomed")
    # zoomed to one community: its grids, still coloured
    await page.select_option("#zoom", "dongyuan")
    await expect(page.locator("#map .grid")).to_have_count(3)
    await expect(page.locator('#map [data-grid="dongyuan-g1"]')).to_have_attribute(
        "data-risk", str(risk["dongyuan-g1"]))
    await shot(page, "8-district-zoomed")
    assert page.errors == []


READABLE_PX = 12
"""The smallest text height on screen, in CSS pixels, a name on the map may have."""


async def _labels(page: Any) -> list[tuple[str, float, bool]]:
    """Every name on the map: its text, its height on screen (px) and whether it shows."""
    found: list[list[Any]] = await page.evaluate("""() =>
        [...document.querySelectorAll("#map text")].map((t) => [
            t.firstChild.nodeValue, t.getBoundingClientRect().height,
            getComputedStyle(t).display !== "none"])""")
    return [(str(t), float(h), bool(shown)) for t, h, shown in found]


async def test_the_page_reconnects_after_the_api_went_away_and_catches_up(
        site: Site, page: Any) -> None:
    async def while_down() -> str:
        await expect(page.locator("#live")).to_have_class("live off")
        alert_id = await site.open_alert(FIRST, seq=20)  # the page cannot hear of it
        await shot(page, "9-api-down")
        return alert_id

    alert_id = await site.restart_api(while_down)
    await expect(page.locator("#live")).to_have_class("live on")
    await expect(page.locator(f'#alerts tr[data-alert="{alert_id}"]')).to_be_visible()
    await expect(page.locator('#map [data-grid="dongyuan-g1"]')).not_to_have_attribute(
        "data-risk", "0")


async def test_a_token_the_hub_does_not_know_is_refused_at_sign_in(
        site: Site, board: Board) -> None:
    page = await board("gct_not-a-token", live=False)
    await expect(page.locator("#signin-error")).to_have_text(
        "The hub refused the token: unknown or revoked token")
    await expect(page.locator("#board")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0  # not kept
    await shot(page, "0-sign-in-refused")
    await page.fill("#token", site.token)  # then the right one
    await page.click("#token-form button")
    await expect(page.locator("#live")).to_have_class("live on")
    await expect(page.locator("#unit-name")).to_contain_text("东苑社区")


async def test_edge_agents_and_unhealthy_sensors_are_shown(site: Site, board: Board) -> None:
    agent = site.hub.config.sensors[FIRST].agent
    own = [s.id for s in site.hub.config.agents[agent].sensors]
    health = {sid: SensorHealth(state="stuck" if sid == FIRST else "ok") for sid in own}
    status = AgentStatus(agent=agent, state="online", ts=site.hub.clock(), heartbeat_s=30,
                         sensors=len(own), sensor_health=health)
    await site.publish(topics.status_topic(agent), encode(status))
    assert await wait_until(
        lambda: site.hub.roster.view(agent, site.hub.clock()).state == "online")
    page = await board(site.token)
    item = page.locator(f'#agents li[data-agent="{agent}"]')
    await expect(item).to_have_attribute("data-state", "online")
    await expect(item).to_contain_text(f"{FIRST} stuck")
    await expect(page.locator(f'#map [data-sensor="{FIRST}"]')).to_have_attribute(
        "data-health", "stuck")
    await expect(page.locator(f'#map [data-sensor="{FIRST}"]')).to_have_class(
        re.compile(r"\bunhealthy\b"))
    others = [s for s in own if s != FIRST and site.hub.config.sensors[s].path[2] == UNIT]
    await expect(page.locator(f'#map [data-sensor="{others[0]}"]')).to_have_attribute(
        "data-health", "ok")
    await shot(page, "10-agents")
    assert page.errors == []


# ---------------------------------------------------------------- silences, incidents, duty


async def _api(site: Site, path: str) -> Any:
    """GET ``path`` of the hub's API with the community's token, as any app would."""
    import httpx

    async with httpx.AsyncClient(base_url=site.url,
                                 headers={"Authorization": f"Bearer {site.token}"}) as client:
        resp = await client.get(path)
        resp.raise_for_status()
        return resp.json()


async def test_a_silence_is_set_and_lifted_on_the_board_and_written_to_the_ledger(
        site: Site, page: Any) -> None:
    desk = site.hub.desk
    alert_id = await site.open_alert(FIRST, seq=30)
    row = page.locator(f'#alerts tr[data-alert="{alert_id}"]')
    sensor = site.hub.config.sensors[FIRST]
    name = sensor.name or FIRST   # the page says the id once when the sensor has no name
    what = f"sensor {name}" if name == FIRST else f"sensor {name} ({FIRST})"
    # the alert's row offers to silence its sensor: the form comes filled in
    await row.locator("button.silence-sensor").click()
    await expect(page.locator("#silence-scope")).to_have_value("sensor")
    await expect(page.locator("#silence-id")).to_have_value(FIRST)
    reason = "PM2.5 head replaced by 运维 (work order 42)"
    await page.fill("#silence-reason", reason)
    await page.select_option("#silence-duration", "3600")
    await page.click("#silence-form button")

    item = page.locator("#silences li[data-silence]")
    await expect(item).to_have_count(1)
    await expect(item).to_have_attribute("data-status", "active")
    await expect(item).to_contain_text(what)
    await expect(item).to_contain_text(f"{reason} · by {UNIT_NAME}")
    await expect(page.locator("#notice")).to_contain_text("silenced until")
    await expect(page.locator(f'#map [data-sensor="{FIRST}"]')).to_have_class(
        re.compile(r"\bsilenced\b"))
    # in the desk, its ledger and the API, as set by the community for one hour
    (silence,) = desk.silence_list(unit=UNIT, current=True)
    assert (silence.scope.kind, silence.scope.id, silence.author, silence.reason) == (
        "sensor", FIRST, UNIT, reason)
    assert silence.end - silence.start == 3600 * 10**9
    assert [s.action for s in await desk.silence_history(silence.silence_id)] == ["add"]
    listed = await _api(site, "/v1/silences?current=true")
    assert [s["silence_id"] for s in listed["silences"]] == [silence.silence_id]
    await expect(item).to_have_attribute("data-silence", silence.silence_id)
    await shot(page, "11-silence-set")

    # what it is for: the sensor's next anomaly opens no alert, it is muted
    opened = site.hub.counters.alerts_opened
    sensor_event = AnomalyEvent(agent=sensor.agent, seq=31, sensor=FIRST, kind="out_of_limits",
                                severity="major", score=0.9, value=999.0, ts=site.hub.clock())
    await site.publish(topics.events_topic(sensor.agent), encode(sensor_event))
    assert await wait_until(lambda: desk.silences.get(silence.silence_id).muted == 1)
    assert site.hub.counters.alerts_opened == opened

    # a silence longer than a community may set is refused with the API's reason
    await page.fill("#silence-reason", "a month of roadworks")
    await page.select_option("#silence-duration", "2592000")
    await page.click("#silence-form button")
    await expect(page.locator("#notice")).to_contain_text(
        f"Silencing {what} refused (403)")
    assert len(desk.silence_list(unit=UNIT)) == 1

    # a maintenance window planned ahead: pending until its start (the browser's time)
    await page.select_option("#silence-scope", "grid")
    await page.select_option("#silence-id", "dongyuan-g3")
    await page.fill("#silence-start", "2030-01-02T08:00")
    await page.select_option("#silence-duration", "86400")
    await page.fill("#silence-reason", "market hall rewired")
    await page.click("#silence-form button")
    planned = page.locator('#silences li[data-status="pending"]')
    await expect(planned).to_contain_text(
        "grid 东苑社区第3网格 (dongyuan-g3) · from 2030-01-02 08:00")
    (ahead,) = [s for s in desk.silence_list(unit=UNIT) if s.scope.id == "dongyuan-g3"]
    start_ms = await page.evaluate("Date.parse('2030-01-02T08:00')")
    assert abs(ahead.start - start_ms * 10**6) < 10**6
    assert ahead.end - ahead.start == 86_400 * 10**9

    # lifted from the board (confirmed first): ended in the desk, a lift step by the unit
    item = page.locator(f'#silences li[data-silence="{silence.silence_id}"]')
    page.once("dialog", lambda dialog: dialog.accept())
    await item.locator('button[data-action="lift"]').click()
    await expect(page.locator("#notice")).to_contain_text(f"{silence.silence_id}: {what} lifted")
    await expect(item).to_have_count(0)
    await expect(page.locator(f'#map [data-sensor="{FIRST}"]')).not_to_have_class(
        re.compile(r"\bsilenced\b"))
    steps = await desk.silence_history(silence.silence_id)
    assert [(s.action, s.actor) for s in steps] == [("add", UNIT), ("mute", "hub"),
                                                    ("lift", UNIT)]
    assert (await _api(site, f"/v1/silences/{silence.silence_id}"))["silence"][
        "status"] == "lifted"
    await shot(page, "12-silence-lifted")


async def test_an_incident_and_who_is_on_duty_are_shown(site: Site, page: Any) -> None:
    desk = site.hub.desk
    first = await site.open_alert(FIRST, seq=40)
    second = await site.open_alert("dongyuan-g2-pm25-1", seq=41)  # same matter, same community
    (incident,) = desk.incident_list(unit=UNIT)
    assert set(incident.alerts) == {first, second}
    names = {u.id: u.name for u in site.hub.config.units.values()}

    item = page.locator(f'#incidents li[data-incident="{incident.incident_id}"]')
    await expect(item).to_contain_text(desk.get(first).alert.matter_name)
    await expect(item).to_contain_text(f"2 alerts in {names['dongyuan-g1']}, "
                                       f"{names['dongyuan-g2']}")
    await expect(item).to_contain_text(f"lead 牵头 {names[incident.lead]}")
    # each of its alerts links to it; the link opens it with its alerts and its steps
    for alert_id in (first, second):
        await expect(page.locator(f'#alerts tr[data-alert="{alert_id}"] .incident-link')
                     ).to_have_text(f"incident {incident.incident_id}")
    await page.locator(f'#alerts tr[data-alert="{second}"] .incident-link').click()
    view = page.locator("#incident")
    await expect(view).to_be_visible()
    await expect(view.locator("h3")).to_contain_text(f"{incident.incident_id} · ")
    await expect(view.locator("tbody tr")).to_have_count(2)
    history = await desk.incident_history(incident.incident_id)
    await expect(view.locator("ol.steps li")).to_have_count(len(history))
    await expect(view.locator("ol.steps li").first).to_contain_text(history[0].reason)
    for alert_id in (first, second):
        await expect(page.locator(f'#alerts tr[data-alert="{alert_id}"]')).to_have_class(
            re.compile(r"\bin-incident\b"))
    # acting on one of its alerts shows in the open incident at once
    await page.locator(f'#alerts tr[data-alert="{first}"] button[data-action="acknowledge"]'
                       ).click()
    await expect(view.locator(f'tr[data-alert="{first}"] td.state')).to_have_text("acknowledged")

    # who is on duty at the community now (roster.yaml), as GET /v1/handover says
    handover = await _api(site, "/v1/handover")
    duty = page.locator("#duty")
    if handover["on_duty"]:
        await expect(duty.locator(".person").first).to_have_text(
            handover["on_duty"]["person"]["name"])
    else:
        await expect(duty).to_contain_text("nobody on duty")
    if handover["next"]:
        await expect(duty).to_contain_text(f"next {handover['next']['person']['name']}")
    await expect(duty).to_contain_text(f"hand-over: {len(handover['alerts'])} open")
    # and under each alert's holder, the person on duty it was handed to
    persons = {p.id: p.name for p in site.hub.config.duty.persons}
    for item in handover["alerts"]:
        handed = page.locator(f'#alerts tr[data-alert="{item["alert_id"]}"] small.handed')
        if item["on_duty"]:
            await expect(handed).to_have_text(f"→ {persons[item['on_duty']]}")
        else:
            await expect(handed).to_have_count(0)
    await shot(page, "13-incident-and-duty")


async def test_a_department_answers_its_call_on_its_board_and_the_unit_sees_it(
        site: Site, page: Any, board: Board) -> None:
    """吹哨报到 on the board: the community dispatches a department to its alert and sees
    it (the departments panel, and under the alert); police-dasha opens the board with its
    own token, says who acts, and reports in, arrives and disposes, each written to the
    ledger with the person."""
    alert_id = await site.open_alert(FIRST, seq=60)
    row = page.locator(f'#alerts tr[data-alert="{alert_id}"]')
    await expect(row).to_be_visible()

    async def police(dialog: Any) -> None:  # the departments to call, by id
        await dialog.accept("police-dasha")
    page.once("dialog", police)
    await row.locator('button[data-action="dispatch"]').click()
    steps = await _wait_for_step(site, alert_id, "dispatch")
    assert (steps[-1].actor, [w.department for w in steps[-1].whistled]) == (
        UNIT, ["police-dasha"])
    await expect(page.locator("#notice")).to_contain_text(
        f"({alert_id}): dispatched — 大沙派出所 on site by")
    call = page.locator('#dept-calls tr[data-department="police-dasha"]')
    await expect(call).to_have_attribute("data-stage", "whistled")
    await expect(call.locator("td.arrival")).to_contain_text("on site in")
    await expect(page.locator(f'#alerts tr[data-alert="{alert_id}"] .call')).to_contain_text(
        "大沙派出所 called 已吹哨")

    token = issue(site.tokens_path, "police-dasha", known_units={"police-dasha"},
                  label="board test")
    tab = await board(token, live=False)
    await expect(tab.locator("#dept-board")).to_be_visible()
    await expect(tab.locator("#unit-name")).to_contain_text("大沙派出所")
    row = tab.locator(f'#dept-alerts tr[data-alert="{alert_id}"]')
    await expect(row).to_have_attribute("data-stage", "whistled")
    await shot(tab, "14-department-called")

    async def as_ma_li(dialog: Any) -> None:  # the department's own token: who acts?
        await dialog.accept("ma-li")
    tab.on("dialog", as_ma_li)
    for path, action, stage in (("report-in", "report_in", "reported_in"),
                                ("arrive", "dept_arrive", "arrived"),
                                ("dispose", "dept_dispose", "disposed")):
        await row.locator(f'button[data-action="{path}"]').click()
        steps = await _wait_for_step(site, alert_id, action)
        assert (steps[-1].actor, steps[-1].department, steps[-1].person) == (
            "police-dasha", "police-dasha", "ma-li")
        await expect(row).to_have_attribute("data-stage", stage)
        await expect(tab.locator("#notice")).to_contain_text(f"({alert_id}): {path} recorded")
    await expect(row.locator("button")).to_have_count(0)  # its part is done
    # the community's board followed live
    await expect(call).to_have_attribute("data-stage", "disposed")
    await expect(call.locator("td.stage")).to_contain_text("马丽")
    await shot(page, "15-department-disposed-unit-view")
    assert tab.errors == []
