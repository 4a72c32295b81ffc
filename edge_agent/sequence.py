"""Per-agent sequence numbers that only grow, across restarts, with or without a clock.

The hub stores a batch once per ``(agent, seq)``, so a restarted agent that reused a number
would have its new readings dropped as duplicates. Numbers start at the wall clock in
microseconds, which is enough where the clock is right. A Raspberry Pi has no real-time
clock, though: until NTP answers it may boot at the last saved time or in 1970. So an
agent with a state folder also reserves numbers in blocks: before it hands out a number
at or above the reserved ceiling it writes a new ceiling to its state file (atomically,
fsync'd), and it starts above the stored ceiling. A restart, even after power loss,
starts above every number the previous run could have used, at the cost of one small
write per ``block`` numbers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from gridcall.wire.errors import InvariantError

BLOCK = 100_000


class SequenceStateError(ValueError):
    """A sequence state file that cannot be read or written; names the file."""


class Sequence:
    """``next()`` gives numbers that only grow; ``path`` None means clock-only (demo, tests)."""

    def __init__(self, path: Path | None, now_ns: int, *, block: int = BLOCK) -> None:
        if block < 1:
            raise ValueError("block must be at least 1")
        self.path = path
        self.block = block
        self.current = now_ns // 1000
        self._ceiling: int | None = None
        if path is not None:
            stored = self._read(path)
            if stored is not None:
                self.current = max(self.current, stored)
            self._reserve(self.current + 1)

    @property
    def ceiling(self) -> int | None:
        """The first number the state file does not yet cover (None without a file)."""
        return self._ceiling

    def next(self) -> int:
        self.current += 1
        if self._ceiling is not None and self.current >= self._ceiling:
            self._reserve(self.current)
        return self.current

    @staticmethod
    def _read(path: Path) -> int | None:
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SequenceStateError(f"sequence state {path}: cannot read it ({exc})") from exc
        if not text.isdigit():
            raise SequenceStateError(
                f"sequence state {path}: expected one non-negative integer, found {text[:40]!r}."
                " It keeps this agent's sequence numbers growing across restarts; restore"
                " it, or delete it only if the device's clock is right (numbers then restart"
                " at the clock)")
        return int(text)

    def _reserve(self, at_least: int) -> None:
        if self.path is None:
            raise InvariantError("Sequence._reserve called without a state file")
        ceiling = at_least + self.block
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="ascii") as f:
                f.write(f"{ceiling}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            with contextlib.suppress(OSError):  # not every filesystem syncs a folder
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise SequenceStateError(f"sequence state {self.path}: cannot write it ({exc})"
                                     ) from exc
        self._ceiling = ceiling
