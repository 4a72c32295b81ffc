"""The ladder is held once (gridcall.wire.ladder); the one copy Python cannot import, the
built-in board's script, is held to it here."""

from __future__ import annotations

import re
from importlib import resources

from gridcall.wire.ladder import RISK

JS_MAP = r"const {name} = \{{([^}}]*)\}};"


def js_map(name: str) -> dict[str, str]:
    """A one-line ``const NAME = { k: v, ... };`` of board.js, keys and values as text."""
    script = resources.files("gridcall.hub.board").joinpath("board.js").read_text("utf-8")
    found = re.search(JS_MAP.format(name=name), script)
    assert found, f"board.js has no one-line const {name}"
    pairs = (item.split(":") for item in found[1].split(",") if item.strip())
    return {k.strip().strip('"'): v.strip().strip('"') for k, v in pairs}


def test_the_boards_script_colours_tiers_on_the_ladders_risk_scale() -> None:
    assert {tier: int(risk) for tier, risk in js_map("RISK").items()} == dict(RISK)
    assert {int(risk): tier for risk, tier in js_map("TIERS").items()} == {
        risk: tier for tier, risk in RISK.items()}

