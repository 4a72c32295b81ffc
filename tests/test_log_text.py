"""Log lines a device cannot forge (gridcall/wire/logtext.py): a topic, an agent id or a
payload fragment carrying ``\\n``, ``\\r`` or ``\\x1b[`` is one record written as one line
of printable text, whichever code logged it, because the one handler setup_logging
installs formats every record through PrintableFormatter. The edge's local-MQTT source,
the hub's refusals and dead letters, uvicorn's own lines, and the real command's stderr."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from fastapi import FastAPI

from gridcall.config.local_mqtt import LocalMqttSettings
from gridcall.edge_agent.local_mqtt import TopicMap
from gridcall.hub.api.server import ApiServer
from gridcall.hub.deadletter import DeadLetters
from gridcall.wire.logtext import LOG_FORMAT, PrintableFormatter, printable
from gridcall.wire.provenance import Refusals
from tests.polling import wait_until

NOW = 1_700_000_000_000_000_000
HOSTILE = ("\n2026-12-06 14:00:00,000 ERROR gridcall.hub: fake line", "\r\x1b[2K",
           "\x1b[31mred\x1b[0m", "\x9b2J", "\u2028", "\u202eevil")
FORMAT = PrintableFormatter(LOG_FORMAT)


def unprintable(text: str) -> set[str]:
    """The characters of ``text`` a reader would not see as themselves (spaces apart)."""
    return {c for c in text if not c.isprintable() and unicodedata.category(c) != "Zs"}


def lines_of(records: list[logging.LogRecord]) -> list[str]:
    return [FORMAT.format(r) for r in records]


def test_printable_escapes_what_would_forge_a_line_and_keeps_the_rest() -> None:
    text = "edge-1\n2026 ERROR fake\r\x1b[2J\x9b31m\u2028\u202e\x7f"
    assert printable(text) == ("edge-1\\n2026 ERROR fake\\r\\x1b[2J\\x9b31m\\u2028\\u202e"
                               "\\x7f")
    plain = "东苑社区 1 号网格 温度 23.5 °C (sensor dongyuan-g1-t1)"
    assert printable(plain) is plain  # nearly every line: one check, nothing copied
    spaced = "东苑社区\u3000\u00a0网格"
    assert printable(spaced) == spaced
    assert printable("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"


def test_no_code_point_comes_out_unprintable() -> None:
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    out = printable(every)
    assert unprintable(out) == set()
    assert unprintable(every) != set()  # there was something to escape


def test_a_device_topic_with_control_characters_is_one_printable_line(
        caplog: pytest.LogCaptureFixture) -> None:
    """The edge's local-MQTT source, on a wildcard mapping: the topic comes from the device,
    and a bad message is logged with it (and a fragment of the payload)."""
    m = TopicMap(LocalMqttSettings.model_validate({"type": "mqtt", "map": [
        {"topic": "z/+", "value": "t", "sensor": "z-{1}"}]}).mappings())
    for i, evil in enumerate(HOSTILE):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="gridcall.edge_agent.local_mqtt"):
            assert m.decode(f"z/dev{i}{evil}", b"{" + evil.encode() + b"}", NOW) == []
        [line] = lines_of(caplog.records)
        assert unprintable(line) == set()
        assert "message skipped on z/dev" in line
        assert printable(evil) in line


def test_an_agent_id_with_control_characters_in_the_hubs_refusals_and_dead_letters(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The hub's ingest refusals name the agent the payload claims; a dead letter names its
    topic and the reason, which quotes the message."""
    refusals = Refusals("readings")
    letters = DeadLetters(tmp_path / "dead.sqlite")
    letters.open()
    for i, evil in enumerate(HOSTILE):
        agent = f"edge-{i}{evil}"
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert refusals.note(agent, "forged", f"sensor {agent} is edge-0's")
            letters.put(f"gridcall/v1/events/{agent}", b"{}", "desk_error",
                        f"ValueError: unknown agent {agent}")
        lines = lines_of(caplog.records)
        assert len(lines) == 2
        for line in lines:
            assert unprintable(line) == set()
            assert f"edge-{i}{printable(evil)}" in line


def test_a_traceback_keeps_its_lines_and_nothing_else() -> None:
    try:
        raise ValueError("bad agent edge-1\x1b[2J\r")
    except ValueError:
        record = logging.LogRecord("gridcall.hub", logging.ERROR, __file__, 1,
                                   "hub: message on %s failed", ("t\n",), sys.exc_info())
    text = FORMAT.format(record)
    first, *trace = text.split("\n")
    assert first.endswith("hub: message on t\\n failed")
    assert trace[0] == "Traceback (most recent call last):"
    assert trace[-1] == "ValueError: bad agent edge-1\\x1b[2J\\r"
    assert unprintable(text.replace("\n", "")) == set()


async def test_uvicorns_lines_go_through_the_same_handler(
        caplog: pytest.LogCaptureFixture) -> None:
    """The API's server logs through the root logger (not uvicorn's own handler, which
    writes lines as they are): its warning about a request it cannot parse is seen by
    the root's handlers."""
    app = FastAPI()  # no route: the request never reaches one
    with caplog.at_level(logging.WARNING):
        async with ApiServer(app, "127.0.0.1", 0) as server:
            assert await wait_until(lambda: server.started)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /\x1b[2J\r\nX: \x1b\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), timeout=30)
            writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    uvicorn = [r for r in caplog.records if r.name.startswith("uvicorn")]
    assert uvicorn
    assert all(unprintable(line) == set() for line in lines_of(uvicorn))


def test_the_commands_log_set_up_writes_one_printable_line_per_record() -> None:
    """setup_logging, as every gridcall command calls it, in a process of its own: the
    local-MQTT source's warning on stderr is one line."""
    code = (
        "from gridcall.cli.common import setup_logging\n"
        "from gridcall.config.local_mqtt import LocalMqttSettings\n"
        "from gridcall.edge_agent.local_mqtt import TopicMap\n"
        "setup_logging(False)\n"
        "m = TopicMap(LocalMqttSettings.model_validate({'type': 'mqtt', 'map': [\n"
        "    {'topic': 'z/+', 'value': 't', 'sensor': 'z-{1}'}]}).mappings())\n"
        f"m.decode({'z/a' + ''.join(HOSTILE)!r}, b'no json', 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    [line] = done.stderr.splitlines()
    assert unprintable(line) == set()
    assert "WARNING gridcall.edge_agent.local_mqtt: " in line
    assert printable("z/a" + "".join(HOSTILE)) in line
