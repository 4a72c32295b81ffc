"""The plan checklist (一事一预案) on the built-in board, in a real browser (chromium,
driven as in tests/test_board_web.py, whose hub and board fixtures it shares): a
person opens an alert's plan, ticks a step off, and the tick is a ledger step with the
unit; a ticked step stays ticked and cannot be ticked twice."""

from __future__ import annotations

from typing import Any

from tests.test_board_web import (  # noqa: F401  (fixtures: pytest finds them by name)
    UNIT,
    Site,
    _wait_for_step,
    board,
    expect,
    page,
    shot,
    site,
)

DUST = "dongyuan-g1-pm25-1"   # DUST-PM25: a plan of three steps (config/examples/huangpu)


async def test_a_plan_step_is_ticked_off_on_the_board_and_written_to_the_ledger(
        site: Site, page: Any) -> None:  # noqa: F811
    alert_id = await site.open_alert(DUST, seq=1)
    plan = site.hub.desk.get(alert_id).alert.plan
    assert plan is not None
    steps = plan.steps
    row = page.locator(f'#alerts tr[data-alert="{alert_id}"]')
    link = row.locator("button.plan-link")
    await expect(link).to_have_text(f"plan 预案 0/{len(steps)}")
    await link.click()
    box = page.locator("#plan")
    await expect(box).to_be_visible()
    await expect(box.locator("h3")).to_contain_text(f"0/{len(steps)} done")
    await expect(box).to_contain_text(plan.summary)
    items = box.locator("ol.checklist li")
    await expect(items).to_have_count(len(steps))
    for i, step in enumerate(steps):  # in the plan's order, with who does each
        await expect(items.nth(i)).to_have_attribute("data-step", step.id)
        await expect(items.nth(i)).to_contain_text(step.text)
    await expect(items.nth(0)).to_contain_text("grid 网格")
    await expect(box.locator(".contacts")).to_contain_text("环保水务")
    await expect(box).not_to_contain_text("null")
    await shot(page, "plan-1-open")

    first = steps[0]
    await box.locator(f'input[data-step="{first.id}"]').check()
    history = await _wait_for_step(site, alert_id, "plan_step")
    tick = history[-1]
    assert (tick.plan_step, tick.actor, tick.state) == (first.id, UNIT, "opened")
    await expect(page.locator("#notice")).to_contain_text(f"“{first.text}” ticked off")
    done = box.locator(f'li[data-step="{first.id}"]')
    await expect(done).to_have_class("done")
    await expect(done.locator("input")).to_be_checked()
    await expect(done.locator("input")).to_be_disabled()  # once is enough
    await expect(done).to_contain_text("✓ 东苑社区")
    await expect(box.locator("h3")).to_contain_text(f"1/{len(steps)} done")
    await expect(link).to_have_text(f"plan 预案 1/{len(steps)}")
    # the others stay to be done
    await expect(box.locator(f'input[data-step="{steps[1].id}"]')).not_to_be_checked()
    await expect(box.locator(f'input[data-step="{steps[1].id}"]')).to_be_enabled()
    await shot(page, "plan-2-ticked")
    assert [t.action for t in await site.hub.desk.history(alert_id)].count("plan_step") == 1
