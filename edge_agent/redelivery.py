"""A QoS 1 message the broker sends again: recognised and skipped (pure).

MQTT's QoS 1 is at least once. A broker that sent a message to a persistent session and
did not get (or did not process) the client's PUBACK before the connection dropped, or
before it shut down with the session saved to disk, sends it again when the session
reconnects: with the DUP flag set and its original packet identifier (MQTT 3.1.1
§4.4, "Message delivery retry"; 5.0 §4.4). mosquitto 2.0.11 did that here across its own
restart when SIGTERM came between its PUBLISH and its reading of the PUBACK. The local
MQTT source had handed the first copy on already, so the second one would be the same
reading again, stamped with its new arrival time when the device sends none.

:class:`Redeliveries` remembers the last ``keep`` QoS 1/2 messages this process received,
by packet identifier, and calls a message a repeat only when all of these hold: it has
the DUP flag, and its packet identifier, topic and payload are those of the last message
received under that identifier. A device that publishes the same value twice sends two
messages, each with a packet identifier of its own (and no DUP flag): both are kept. A
new process remembers nothing, so a redelivery to an agent that restarted is taken: that
copy may be the only one it has (the first arrived just before a kill).
"""

from __future__ import annotations

from collections import OrderedDict

KEEP = 256
"""Messages remembered: more than a broker keeps in flight to one client (mosquitto's
``max_inflight_messages`` defaults to 20)."""


class Redeliveries:
    def __init__(self, keep: int = KEEP) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.keep = keep
        self._last: OrderedDict[int, tuple[str, bytes]] = OrderedDict()
        self.skipped = 0
        """Repeats recognised (the source's ``redeliveries_skipped``)."""

    def repeat(self, mid: int, topic: str, payload: bytes, *, qos: int, dup: bool) -> bool:
        """True if this message is one this process already received, sent again; else
        remember it (by ``mid``) and say False."""
        if qos == 0:  # no packet identifier, never redelivered
            return False
        key = (topic, payload)
        if dup and self._last.get(mid) == key:
            self.skipped += 1
            return True
        self._last[mid] = key
        self._last.move_to_end(mid)
        if len(self._last) > self.keep:
            self._last.popitem(last=False)
        return False
