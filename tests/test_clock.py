"""The one set of time helpers (gridcall.wire.clock): times as devices, recordings and
people write them, read into nanoseconds exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridcall.wire.clock import NS, from_datetime, from_epoch, from_iso, ns, utc_text

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_an_epoch_number_means_the_same_moment_in_any_unit() -> None:
    seconds = 1_709_619_123
    ms = seconds * 1000 + 456
    assert from_epoch(seconds) == seconds * NS
    assert from_epoch(ms) == from_epoch(ms * 1000) == from_epoch(ms * 1_000_000)
    assert from_epoch(ms) - from_epoch(seconds) == ns(timedelta(milliseconds=456))
    assert from_epoch(seconds + 0.5) == seconds * NS + NS // 2


def test_iso_times_are_exact_to_the_microsecond_and_read_their_zone() -> None:
    when = datetime(2026, 3, 5, 6, 7, 8, 123_457, tzinfo=UTC)
    whole = int((when - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() // 1)
    exact = whole * NS + when.microsecond * 1000
    assert from_datetime(when) == exact  # a float timestamp() * 1e9 is off by some ns
    assert from_iso("2026-03-05T06:07:08.123457Z") == exact
    assert from_iso(" 2026-03-05 14:07:08.123457+08:00 ") == exact
    assert from_iso("2026-03-05T06:07:08.123457") == exact  # no zone: UTC by default
    assert from_iso("2026-03-05T14:07:08.123457", SHANGHAI) == exact
    with pytest.raises(ValueError, match="yesterday"):
        from_iso("yesterday")


def test_utc_text_writes_back_what_from_iso_reads() -> None:
    at = from_iso("2026-12-06T06:20:05Z")
    assert from_iso(utc_text(at).removesuffix(" UTC")) == at
    assert utc_text(at, with_seconds=False) == utc_text(at)[:16] + " UTC"
