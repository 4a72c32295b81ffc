"""firmware_bridge's own exceptions.

::

    BridgeError
    ├── FrameError        a byte string that is not a valid frame (``reason`` says why)
    └── EncodeError       a frame or value that cannot be encoded (too many channels...)

Port and device failures are not raised at all: the serial link and the Modbus poller
count them and retry (a street cabinet has nobody to catch an exception).
"""

from __future__ import annotations


class BridgeError(Exception):
    """Anything firmware_bridge raises."""


class FrameError(BridgeError, ValueError):
    """Not a valid frame. ``reason`` is one of :data:`gridcall.firmware_bridge.frames.REASONS`, or
    ``bad_marker`` when :func:`~gridcall.firmware_bridge.frames.decode` is given bytes that do not
    start with the start marker."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


class EncodeError(BridgeError, ValueError):
    """A frame the protocol cannot carry."""
