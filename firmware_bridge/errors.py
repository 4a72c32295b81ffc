"""firmware_bridge's own exceptions; errors from pyserial and pymodbus are mapped to these
at the boundary (``raise ... from exc``).

::

    BridgeError
    ├── FrameError        a byte string that is not a valid frame (``reason`` says why)
    ├── EncodeError       a frame that cannot be encoded (too many channels, out of range)
    └── PortError         a serial port that cannot be opened or went away (retryable)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Anything firmware_bridge raises."""


class FrameError(BridgeError, ValueError):
    """Not a valid frame. ``reason`` is one of :data:`firmware_bridge.frames.REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


class EncodeError(BridgeError, ValueError):
    """A frame the protocol cannot carry."""


class PortError(BridgeError, OSError):
    """A serial port that cannot be opened, or that failed while open; retry later."""
