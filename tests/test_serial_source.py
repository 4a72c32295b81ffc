"""A serial source on a real pseudo-terminal: frames become samples of the mapped sensors,
noise and cut-off frames are counted and skipped, and a device that is unplugged and
plugged back in is read again without restarting anything."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gridcall.config.sources import SerialSettings
from gridcall.edge_agent.serial_source import SerialFrameSource
from gridcall.edge_agent.sources import Sample
from gridcall.firmware_bridge.frames import Frame, encode
from gridcall.firmware_bridge.pty import PtyPort
from tests.polling import wait_until


def settings(port: Path) -> SerialSettings:
    return SerialSettings.model_validate({
        "type": "serial", "port": str(port), "reconnect_min": "0.02s", "reconnect_max": "0.2s",
        "devices": [{"id": 5, "channels": {0: "flow", 1: "level"}},
                    {"id": 6, "channels": {0: "gas"}}]})


class Running:
    """A source being read in a task, its samples collected."""

    def __init__(self, source: SerialFrameSource) -> None:
        self.source = source
        self.got: list[Sample] = []
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for sample in self.source.samples():
            self.got.append(sample)

    def values(self) -> list[tuple[str, float | None]]:
        return [(s.sensor, s.value) for s in self.got]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[PtyPort, Running]]:
    port = PtyPort(tmp_path / "ttyGC0")
    port.plug()
    run = Running(SerialFrameSource(settings(port.link), agent_id="edge-test",
                                    clock=lambda: 42))
    try:
        assert await wait_until(run.source.link.connected.is_set)
        yield port, run
    finally:
        run.task.cancel()
        await asyncio.gather(run.task, return_exceptions=True)
        port.unplug()


async def test_frames_become_samples_of_the_mapped_sensors(
        running: tuple[PtyPort, Running]) -> None:
    port, run = running
    port.write(encode(Frame(5, 0, ((0, 1.5), (1, None)))) + encode(Frame(6, 0, ((0, 12.0),))))
    assert await wait_until(lambda: len(run.got) == 3)
    assert run.got == [Sample("flow", 42, 1.5), Sample("level", 42, None),
                       Sample("gas", 42, 12.0)]
    c = run.source.stats()
    assert c["frames"] == 2
    assert {k for k in c if k.startswith("bad_")} == {
        "bad_crc", "bad_length", "bad_unknown_version", "bad_malformed", "bad_truncated"}


async def test_noise_and_a_cut_off_frame_are_counted_and_the_next_frame_is_read(
        running: tuple[PtyPort, Running], caplog: pytest.LogCaptureFixture) -> None:
    port, run = running
    port.write(b"\x00\xffboot ok\r\n" + encode(Frame(5, 0, ((0, 1.0),)))[:8])
    port.write(encode(Frame(5, 1, ((0, 2.0),))))
    assert await wait_until(lambda: len(run.got) == 1)
    assert run.values() == [("flow", 2.0)]
    c = run.source.stats()
    assert c["bad_truncated"] == 1
    assert c["garbage_bytes"] == 11 + 8
    # the journal says it once, naming the port, the reason and what to check
    said = [r.getMessage() for r in caplog.records if "refused a frame" in r.getMessage()]
    assert len(said) == 1
    assert str(port.link) in said[0]
    assert "(truncated); counted as bad_truncated" in said[0]
    assert "check the baud rate (115200 here)" in said[0]


async def test_unknown_devices_unmapped_channels_and_sequence_gaps_are_counted(
        running: tuple[PtyPort, Running], caplog: pytest.LogCaptureFixture) -> None:
    port, run = running
    port.write(b"".join(encode(f) for f in (
        Frame(9, 0, ((0, 1.0),)),                # a device the config does not know
        Frame(5, 10, ((0, 1.0), (7, 3.0))),      # channel 7 is not mapped
        Frame(5, 10, ((0, 1.0),)),               # the same frame again
        Frame(5, 13, ((0, 4.0),)),               # 11 and 12 never arrived
        Frame(5, 0, ((0, 5.0),)),                # the device restarted
    )))
    assert await wait_until(lambda: len(run.got) == 3)
    assert run.values() == [("flow", 1.0), ("flow", 4.0), ("flow", 5.0)]
    c = run.source.stats()
    assert (c["unknown_device"], c["unmapped_channel"], c["duplicate_frames"],
            c["missed_frames"], c["device_restarts"]) == (1, 1, 1, 2, 1)
    # the journal names the device id and channel to add to agents.yaml
    said = " | ".join(r.getMessage() for r in caplog.records)
    assert "frames from device id 9, which agents.yaml does not map (it maps 5, 6)" in said
    assert "device 5 sends channel 7, which agents.yaml does not map" in said


async def test_a_device_unplugged_and_plugged_back_is_read_again_without_a_restart(
        running: tuple[PtyPort, Running]) -> None:
    port, run = running
    port.write(encode(Frame(5, 0, ((0, 1.0),))))
    assert await wait_until(lambda: len(run.got) == 1)
    port.write(encode(Frame(5, 1, ((0, 2.0),)))[:9])  # the cable comes out mid-frame
    assert await wait_until(lambda: run.source.reader.pending == 9)
    port.unplug()
    assert await wait_until(lambda: run.source.stats()["disconnects"] == 1)
    assert not port.link.exists()
    # the path is gone for a while: the source keeps trying, with backoff
    assert await wait_until(lambda: run.source.stats()["open_failures"] >= 2)
    port.plug()
    assert await wait_until(lambda: run.source.stats()["reconnects"] == 1)
    port.write(encode(Frame(5, 2, ((0, 3.0),))))
    assert await wait_until(lambda: len(run.got) == 2)
    assert run.values() == [("flow", 1.0), ("flow", 3.0)]
    c = run.source.stats()
    assert c["bad_truncated"] == 1  # the half frame, counted when the port went away
    assert c["missed_frames"] == 1  # and its sequence number never arrived
    assert not run.task.done()


async def test_a_second_reader_of_the_same_port_is_refused_not_sharing_its_bytes(
        running: tuple[PtyPort, Running]) -> None:
    port, run = running
    other = SerialFrameSource(settings(port.link), agent_id="edge-other")
    task = asyncio.create_task(anext(other.samples()))
    try:
        assert await wait_until(lambda: other.stats()["open_failures"] >= 1)
        assert "lock" in other.link.last_error
        port.write(encode(Frame(5, 0, ((0, 1.5),))))
        assert await wait_until(lambda: len(run.got) == 1)  # all of it to the first reader
        assert other.stats()["opens"] == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_factory_builds_the_source_each_sample_agent_names() -> None:
    from gridcall.config import SAMPLE_DISTRICT, load_config
    from gridcall.edge_agent.local_mqtt import LocalMqttSource
    from gridcall.edge_agent.modbus_source import ModbusSource
    from gridcall.edge_agent.source_factory import NotBuiltHere, build_source

    cfg = load_config(SAMPLE_DISTRICT)
    kinds = {type(build_source(a)) for a in cfg.agents.values() if a.source.type != "simulated"}
    assert kinds == {SerialFrameSource, ModbusSource, LocalMqttSource}
    with pytest.raises(NotBuiltHere, match="'edge-anle': a 'simulated' source is supplied"):
        build_source(cfg.agents["edge-anle"])


async def test_a_port_that_stays_open_but_goes_silent_is_reopened_and_read_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A hung converter or microcontroller: the port is open, no error, no byte. The link
    reopens it after ``silence`` seconds (and again while it stays silent, logging once),
    counted apart from unplugs; frames that come afterwards are read."""
    with PtyPort(tmp_path / "ttyGC0") as port:
        run = Running(SerialFrameSource(settings(port.link), agent_id="edge-test",
                                        clock=lambda: 42, silence=0.3))
        try:
            assert await wait_until(run.source.link.connected.is_set)
            port.write(encode(Frame(5, 0, ((0, 1.0),))))
            assert await wait_until(lambda: len(run.got) == 1)
            assert await wait_until(lambda: run.source.stats()["silent_reopens"] >= 2)
            c = run.source.stats()
            assert c["disconnects"] == c["reconnects"] == 0  # the port never went away
            assert c["opens"] == c["silent_reopens"] + 1
            lines = [r.getMessage() for r in caplog.records]
            assert len([m for m in lines if "although it is open" in m]) == 1  # not per reopen
            assert not [m for m in lines if "is back" in m]
            assert await wait_until(run.source.link.connected.is_set)
            port.write(encode(Frame(5, 1, ((0, 2.0),))))
            assert await wait_until(lambda: len(run.got) == 2)
            assert run.values() == [("flow", 1.0), ("flow", 2.0)]
        finally:
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)


def test_the_silence_before_a_serial_reopen_is_ten_of_the_agents_slowest_intervals() -> None:
    from gridcall.config import SAMPLE_DISTRICT, load_config
    from gridcall.edge_agent.source_factory import build_source

    serial = load_config(SAMPLE_DISTRICT).agents["edge-dongyuan"]
    built = build_source(serial)
    assert isinstance(built, SerialFrameSource)
    assert built.link.silence == max(60.0, 10 * max(s.interval_s for s in serial.sensors))
    base = settings(Path("/dev/ttyGC0"))
    given = SerialSettings.model_validate({**base.model_dump(), "silence_reopen": "90s"})
    assert given.silence_reopen == timedelta(seconds=90)
    never = SerialSettings.model_validate({**base.model_dump(), "silence_reopen": "never"})
    assert never.silence_reopen == "never"
    for bad in ("sometimes", "0s"):
        with pytest.raises(ValidationError) as refused:
            SerialSettings.model_validate({**base.model_dump(), "silence_reopen": bad})
        assert refused.value.error_count() == 1  # one error, not one per union member
        assert "nor 'never'" in str(refused.value)


def fds_open_on(path: Path) -> list[int]:
    device = os.path.realpath(path)
    return [int(fd) for fd in os.listdir("/proc/self/fd")
            if os.path.realpath(f"/proc/self/fd/{fd}") == device]


async def test_closing_the_source_takes_the_port_off_the_event_loop_before_closing_it(
        tmp_path: Path) -> None:
    """A reader that stops early (``edge check`` after a few values) closes the samples
    generator. The port's fd number, freed at once, may be taken by the next socket (the
    check's broker probe); the loop must not still be watching it for the closed port."""
    with PtyPort(tmp_path / "ttyGC0") as port:
        source = SerialFrameSource(settings(port.link), agent_id="edge-test")
        samples = source.samples()
        first = asyncio.create_task(anext(samples))
        assert await wait_until(source.link.connected.is_set)
        port.write(encode(Frame(5, 0, ((0, 1.0),))))
        assert (await first).value == 1.0
        fds = fds_open_on(port.link)  # the reader's, and the pty's own device end
        loop = asyncio.get_running_loop()
        await samples.aclose()
        # no await between the close and this check: nothing was left for a later turn
        assert [fd for fd in fds if loop.remove_reader(fd)] == []
