"""``gridcall demo`` end to end, with nothing installed: embedded broker and store."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gridcall.cli import app


def test_demo_stores_every_reading_and_alerts_in_several_tiers(tmp_path: Path) -> None:
    summary_file = tmp_path / "s.json"
    result = CliRunner().invoke(
        app, ["demo", "--duration", "20", "--summary-json", str(summary_file)])
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["readings_published"] > 0
    assert summary["readings_stored"] == summary["readings_published"]
    assert summary["malformed_messages"] == 0
    assert sum(1 for n in summary["alerts_by_tier"].values() if n > 0) >= 3
    assert set(summary["alerts_by_tier"]) == {"A", "B", "C", "D"}
    assert summary["alerts_delivered"] == sum(summary["alerts_by_tier"].values())
    assert summary["anomaly_events"] >= len(summary["injected_anomalies"])
