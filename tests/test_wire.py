"""The wire contract: round trips, topics that follow the ladder, and malformed input that
is rejected with a reason and a counter, never a crash."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridcall.wire import (
    AnomalyEvent,
    Decoder,
    MalformedMessage,
    Reading,
    ReadingBatch,
    encode,
    topics,
)

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
readings = st.builds(
    Reading, sensor=ids, ts=st.integers(0, 2**63 - 1),
    value=st.floats(allow_nan=False, allow_infinity=False),
)
batches = st.builds(
    ReadingBatch, agent=ids, seq=st.integers(0, 2**63 - 1), sent_at=st.integers(0, 2**62),
    readings=st.lists(readings, max_size=60),
)


@given(batches)
def test_reading_batches_round_trip_exactly(batch: ReadingBatch) -> None:
    decoded = Decoder().readings(topics.readings_topic(batch.agent), encode(batch))
    assert decoded == batch


@given(st.binary(max_size=200))
def test_any_bytes_either_decode_or_are_rejected_with_a_reason(payload: bytes) -> None:
    decoder = Decoder()
    try:
        batch = decoder.readings("gridcall/v1/readings/a1", payload)
    except MalformedMessage as exc:
        assert exc.reason in {"not_json", "invalid", "forged"}
        assert decoder.malformed_total == 1
    else:
        assert batch.agent == "a1"
        assert decoder.malformed_total == 0


def test_json_nested_past_the_parsers_limit_is_rejected_as_not_json() -> None:
    """msgspec raises RecursionError, not DecodeError, past its depth: the desk dead-lettered
    such an event or status as a desk_error (to be replayed, and fail again) and ingest
    dropped the batch uncounted. Every kind of message is now refused as not_json."""
    deep = b'{"v":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    decoder = Decoder()
    for kind, read in (("readings", decoder.readings), ("events", decoder.event),
                       ("status", decoder.status)):
        with pytest.raises(MalformedMessage) as refused:
            read(f"gridcall/v1/{kind}/a1", deep)
        assert refused.value.reason == "not_json"
    with pytest.raises(MalformedMessage) as refused:
        decoder.alert("gridcall/v1/alerts/d/t/_/_/AL000001", deep)
    assert refused.value.reason == "not_json"
    assert decoder.malformed == {"not_json": 4}


def test_rejects_name_the_topic_and_the_reason() -> None:
    decoder = Decoder()
    good = encode(ReadingBatch(agent="a1", seq=1, sent_at=5, readings=[Reading("s", 1, 2.0)]))
    cases = {
        b"{not json": "not_json",
        b'{"v":1,"agent":"a1","seq":-1,"sent_at":5,"readings":[]}': "invalid",
        b'{"v":2,"agent":"a1","seq":1,"sent_at":5,"readings":[]}': "invalid",
        b'{"v":1,"agent":"a1","seq":1,"sent_at":5,"readings":[["s",1,null]]}': "invalid",
        b'{"v":1,"agent":"a1","seq":1,"sent_at":5,"readings":[["s",1,2.0,5]]}': "invalid",
        b'{"v":1,"agent":"a1","seq":1,"sent_at":5,"readings":[["s 1/#",1,2.0]]}': "invalid",
    }
    for payload, reason in cases.items():
        with pytest.raises(MalformedMessage) as info:
            decoder.readings("gridcall/v1/readings/a1", payload)
        assert info.value.reason == reason
        assert "gridcall/v1/readings/a1" in str(info.value)
    with pytest.raises(MalformedMessage, match="forged"):
        decoder.readings("gridcall/v1/readings/a2", good)
    with pytest.raises(MalformedMessage, match="bad_topic"):
        decoder.readings("gridcall/v1/readings/a1/extra", good)
    assert decoder.malformed == {"not_json": 1, "invalid": 5, "forged": 1,
                                 "bad_topic": 1}


@pytest.mark.parametrize("bad", ["s 1", "s/1", "#", "_s", "x" * 65, "传感器"])
def test_a_sensor_id_config_could_not_hold_is_refused_in_every_batch_that_carries_it(
    bad: str,
) -> None:
    decoder = Decoder()
    topic = "gridcall/v1/readings/a1"
    fine = ReadingBatch(agent="a1", seq=1, sent_at=5, readings=[Reading("s-1.ok", 1, 2.0)])
    wrong = ReadingBatch(agent="a1", seq=2, sent_at=5,
                         readings=[Reading("s-1.ok", 2, 2.0), Reading(bad, 2, 3.0)])
    assert decoder.readings(topic, encode(fine)) == fine
    for _ in range(2):  # valid ids are remembered; invalid ones never are
        with pytest.raises(MalformedMessage) as info:
            decoder.readings(topic, encode(wrong))
        assert info.value.reason == "invalid"
        assert "readings[1][0]" in str(info.value) or repr(bad) in str(info.value)
    assert decoder.malformed == {"invalid": 2}


def test_ids_in_events_follow_the_same_rule() -> None:
    decoder = Decoder()
    event = AnomalyEvent(agent="a1", seq=3, sensor="s/1", kind="stuck", severity="minor",
                         score=0.99, value=1.0, ts=10)
    with pytest.raises(MalformedMessage, match="invalid"):
        decoder.event("gridcall/v1/events/a1", encode(event))


def test_events_carry_a_known_anomaly_kind() -> None:
    decoder = Decoder()
    event = AnomalyEvent(agent="a1", seq=3, sensor="s1", kind="stuck", severity="minor",
                         score=0.99, value=1.0, ts=10)
    assert decoder.event("gridcall/v1/events/a1", encode(event)) == event
    bad = encode(event).replace(b"stuck", b"haunted")
    with pytest.raises(MalformedMessage, match="invalid"):
        decoder.event("gridcall/v1/events/a1", bad)


def test_alert_topics_let_a_unit_subscribe_to_its_subtree_with_one_wildcard() -> None:
    grid_alert = topics.alert_topic(["d", "t", "c", "g"], "AL1")
    town_alert = topics.alert_topic(["d", "t"], "AL2")
    assert grid_alert == "gridcall/v1/alerts/d/t/c/g/AL1"
    assert town_alert == "gridcall/v1/alerts/d/t/_/_/AL2"
    assert topics.unit_subscription(["d", "t"]) == "gridcall/v1/alerts/d/t/#"
    assert topics.unit_subscription(["d", "t", "c", "g"]) == "gridcall/v1/alerts/d/t/c/g/+"


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "_"])
def test_ids_that_would_break_topics_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        topics.readings_topic(bad)


# ------------------------------------------------------------------ bounds (issue 16, item 2)

POISON_SEQ = 2**64
"""The seq that once passed decoding and stopped the hub with an OverflowError in SQLite."""


def test_a_seq_or_ts_of_2_64_is_refused_at_decoding() -> None:
    decoder = Decoder()
    event = (b'{"v":1,"agent":"a1","seq":%d,"sensor":"s1","kind":"stuck","severity":"minor",'
             b'"score":0.5,"value":1.0,"ts":10}')
    batch = b'{"v":1,"agent":"a1","seq":%d,"sent_at":5,"readings":[["s",%d,2.0]]}'
    with pytest.raises(MalformedMessage, match="invalid") as info:
        decoder.event("gridcall/v1/events/a1", event % POISON_SEQ)
    assert "seq" in str(info.value)
    with pytest.raises(MalformedMessage, match="invalid"):
        decoder.readings("gridcall/v1/readings/a1", batch % (POISON_SEQ, 1))
    with pytest.raises(MalformedMessage, match="invalid"):
        decoder.readings("gridcall/v1/readings/a1", batch % (1, 2**63))
    # the largest legal values still decode
    assert decoder.event("gridcall/v1/events/a1", event % (2**63 - 1)).seq == 2**63 - 1
    assert decoder.readings("gridcall/v1/readings/a1",
                            batch % (2**63 - 1, 2**63 - 1)).readings[0].ts == 2**63 - 1
    assert decoder.malformed == {"invalid": 3}


def test_the_ts_window_refuses_readings_and_events_stamped_too_far_from_the_clock() -> None:
    from gridcall.wire import TsWindow
    from gridcall.wire.clock import DAY_NS, NS

    now = 1_765_000_000 * NS
    decoder = Decoder(window=TsWindow(past=30 * DAY_NS, future=3600 * NS), clock=lambda: now)
    topic = "gridcall/v1/readings/a1"

    def batch(*stamps: int) -> bytes:
        return encode(ReadingBatch(agent="a1", seq=1, sent_at=now,
                                   readings=[Reading("s", ts, 1.0) for ts in stamps]))

    edges = batch(now - 30 * DAY_NS, now, now + 3600 * NS)
    assert len(decoder.readings(topic, edges).readings) == 3
    for stamps in [(now, now - 30 * DAY_NS - 1), (now + 3600 * NS + 1,), (0, now)]:
        with pytest.raises(MalformedMessage) as info:
            decoder.readings(topic, batch(*stamps))
        assert info.value.reason == "ts_window"
        assert "a1/1" in str(info.value)
    event = AnomalyEvent(agent="a1", seq=3, sensor="s1", kind="stuck", severity="minor",
                         score=0.5, value=1.0, ts=now - 31 * DAY_NS)
    with pytest.raises(MalformedMessage, match="ts_window"):
        decoder.event("gridcall/v1/events/a1", encode(event))
    assert decoder.malformed == {"ts_window": 4}
    assert Decoder().event("gridcall/v1/events/a1", encode(event)) == event  # no window


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_finds_no_exception_in_the_decoders_but_malformed_message() -> None:
    """Coverage-guided fuzzing of the four decoders (scripts/fuzz_wire.py; the issue's
    1,000,000 payloads are its -runs=1000000, figures in docs/benchmarks.md)."""
    repo = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, str(repo / "scripts" / "fuzz_wire.py"),
                          "-runs=20000", "-seed=1"], capture_output=True, text=True, check=False,
                         cwd=repo, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 20000 runs" in run.stderr
