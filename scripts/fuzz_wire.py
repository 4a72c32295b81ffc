"""Coverage-guided fuzzing of the hub's wire decoders with atheris (issue 16, item 6: "the
wire decoders take 1,000,000 fuzzed payloads with 0 crashes").

    PYTHONPATH=. python scripts/fuzz_wire.py -runs=1000000
    PYTHONPATH=. python scripts/fuzz_wire.py -max_total_time=600   # a longer session

Each input goes, as it is and as a seed message with the input spliced in, through the
readings, event, status and alert decoders of :class:`gridcall.wire.Decoder` with the
hub's ts window. Any exception but ``MalformedMessage`` is a crash that libFuzzer reports
with the input that caused it. tests/test_wire.py runs a short session.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from gridcall.wire import Decoder, MalformedMessage
    from gridcall.wire.codec import TsWindow

NOW = 1_800_000_000 * 10**9
DAY = 86_400 * 10**9
SEEDS = (
    b'{"v":1,"agent":"a1","seq":7,"sent_at":%d,"readings":[["s-1",%d,1.5]]}' % (NOW, NOW),
    b'{"v":1,"agent":"a1","seq":9,"sensor":"s-1","kind":"out_of_limits","severity":'
    b'"critical","score":1.0,"value":45.0,"ts":%d}' % NOW,
    b'{"v":1,"agent":"a1","ts":%d,"sensors":1,"health":{"s-1":"ok"}}' % NOW,
)
decoder = Decoder(window=TsWindow(past=30 * DAY, future=DAY // 24), clock=lambda: NOW)
DECODERS = (
    lambda p: decoder.readings("gridcall/v1/readings/a1", p),
    lambda p: decoder.event("gridcall/v1/events/a1", p),
    lambda p: decoder.status("gridcall/v1/status/a1", p),
    lambda p: decoder.alert("gridcall/v1/alerts/huangpu/AL000001", p),
)


def one_input(data: bytes) -> None:
    seed = SEEDS[data[0] % len(SEEDS)] if data else SEEDS[0]
    at = (data[1] if len(data) > 1 else 0) % (len(seed) + 1)
    cut = (data[2] if len(data) > 2 else 0) % 9
    for payload in (data, seed[:at] + data[3:] + seed[at + cut:]):
        for decode in DECODERS:
            with contextlib.suppress(MalformedMessage):
                decode(payload)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
