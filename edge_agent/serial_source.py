"""An agent source reading microcontroller frames from a serial port.

The port side is :class:`gridcall.firmware_bridge.serial_link.SerialLink` (reopens a port that went
away), the bytes go through :class:`gridcall.firmware_bridge.frames.FrameReader`; this module maps
each frame's (device id, channel) to the agent's sensor ids as ``agents.yaml`` says, and
stamps samples with the agent's clock when the frame arrives (frames carry no time).

:meth:`SerialFrameSource.stats` is what the status message reports: frames, bad frames
by reason, garbage bytes, port opens / disconnects / reconnects, frames from unknown
devices or on unmapped channels, and missed / repeated frames by sequence number.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator

from gridcall.config import AgentSpec
from gridcall.config.sources import SerialSettings, silence_reopen_s
from gridcall.edge_agent.commissioning import (
    Check,
    CheckOptions,
    OpenSource,
    port_source_checks,
)
from gridcall.edge_agent.kind import SourceKind
from gridcall.edge_agent.sources import Sample
from gridcall.firmware_bridge.frames import REASONS, Frame, FrameReader
from gridcall.firmware_bridge.serial_link import END, SerialLink
from gridcall.wire.clock import Clock, wall_clock

log = logging.getLogger(__name__)
_WRAP = 2**32


class SerialFrameSource:
    def __init__(self, settings: SerialSettings, *, agent_id: str,
                 clock: Clock = wall_clock, silence: float | None = None) -> None:
        """``silence``: seconds without a byte after which the open port is reopened (None:
        never); :func:`gridcall.config.sources.silence_reopen_s` works it out from the config."""
        self.settings = settings
        self.clock = clock
        self.link = SerialLink(settings.port, baudrate=settings.baudrate,
                               reconnect_min=settings.reconnect_min.total_seconds(),
                               reconnect_max=settings.reconnect_max.total_seconds(),
                               silence=silence,
                               name=f"agent {agent_id} serial")
        self.reader = FrameReader()
        self.channels = {(d.id, ch): sensor for d in settings.devices
                         for ch, sensor in d.channels.items()}
        self.devices = frozenset(d.id for d in settings.devices)
        self.tally: Counter[str] = Counter()
        self._last_seq: dict[int, int] = {}
        self._said: set[str] = set()

    def stats(self) -> dict[str, int]:
        """Flat counters for the agent's status message (always the same keys)."""
        link, frames = self.link.counts, self.reader.counts
        out = {"frames": frames["frames"], "garbage_bytes": frames["garbage_bytes"],
               "bytes": frames["bytes"]}
        # refused frames as bad_<reason>: bad_crc, bad_length, bad_unknown_version...
        out |= {r if r.startswith("bad_") else f"bad_{r}": frames[r] for r in REASONS}
        out |= {k: link[k] for k in ("opens", "open_failures", "disconnects", "reconnects",
                                     "silent_reopens")}
        out |= {k: self.tally[k] for k in ("samples", "unknown_device", "unmapped_channel",
                                           "missed_frames", "duplicate_frames",
                                           "device_restarts")}
        return out

    def samples_of(self, frame: Frame, ts: int) -> list[Sample]:
        """The samples one frame gives (pure apart from the counters)."""
        if frame.device not in self.devices:
            self.tally["unknown_device"] += 1
            self._say(f"device {frame.device}", f"frames from device id {frame.device}, "
                      "which agents.yaml does not map (it maps "
                      f"{', '.join(str(d) for d in sorted(self.devices))}); counted as "
                      "unknown_device, not read")
            return []
        last = self._last_seq.get(frame.device)
        self._last_seq[frame.device] = frame.seq
        if last is not None:
            step = (frame.seq - last) % _WRAP
            if step == 0:
                self.tally["duplicate_frames"] += 1
                return []
            if step < _WRAP // 2:
                self.tally["missed_frames"] += step - 1
            else:  # went backwards: the device restarted and counts from 0 again
                self.tally["device_restarts"] += 1
        out = []
        for channel, value in frame.values:
            sensor = self.channels.get((frame.device, channel))
            if sensor is None:
                self.tally["unmapped_channel"] += 1
                self._say(f"channel {frame.device}/{channel}", f"device {frame.device} sends "
                          f"channel {channel}, which agents.yaml does not map; counted as "
                          "unmapped_channel, not read")
                continue
            out.append(Sample(sensor, ts, value))
        self.tally["samples"] += len(out)
        return out

    def _say(self, key: str, message: str) -> None:
        """Log ``message`` the first time ``key`` happens; the counters carry the rest."""
        if key not in self._said:
            self._said.add(key)
            log.warning("%s %s: %s", self.link.name, self.settings.port, message)

    def _say_refused(self) -> None:
        counts = self.reader.counts
        for reason in REASONS:
            if counts[reason] and reason not in self._said:
                name = reason if reason.startswith("bad_") else f"bad_{reason}"
                self._say(reason, f"refused a frame ({reason}); counted as {name} from now "
                          f"on. Many of these: check the baud rate ({self.settings.baudrate} "
                          "here), the wiring and the ground, and that the firmware speaks "
                          "docs/firmware-protocol.md")

    async def samples(self) -> AsyncIterator[Sample]:
        # aclosing: closing this generator (edge check after a few values) closes the port
        # now, not whenever the inner generator happens to be collected
        async with contextlib.aclosing(self.link.chunks()) as chunks:
            async for chunk in chunks:
                frames = self.reader.flush() if chunk == END else self.reader.feed(chunk)
                self._say_refused()  # five dict lookups a chunk; far less than the reader's
                if frames:
                    ts = self.clock()
                    for frame in frames:
                        for sample in self.samples_of(frame, ts):
                            yield sample


def _build(spec: AgentSpec, settings: SerialSettings, clock: Clock) -> SerialFrameSource:
    silence = silence_reopen_s(settings.silence_reopen, (s.interval_s for s in spec.sensors))
    return SerialFrameSource(settings, agent_id=spec.id, clock=clock, silence=silence)


async def _checks(spec: AgentSpec, settings: SerialSettings, options: CheckOptions,
                  open_source: OpenSource | None) -> list[Check]:
    return await port_source_checks("serial", settings.port, spec, options, open_source)


KIND = SourceKind(SerialSettings, build=_build, checks=_checks)
