"""docs/testing.md shows the integrator's example test exactly as CI runs it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_example_is_the_test_that_runs() -> None:
    doc = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    code = (ROOT / "tests" / "integrator" / "test_our_catalog.py").read_text(encoding="utf-8")
    assert f"```python\n{code}```" in doc
    assert len(code.strip().splitlines()) <= 25  # "in about 20 lines"
