"""Log lines that a device cannot forge, owned once.

Much of what the edge and the hub log comes from the wire: a local device's topic, an
agent id or a sensor id out of a payload, a refused payload's fragment, an exception whose
message quotes them. Written as they are, a device could end its line with ``\\n`` and
write a fake one after it (``... ERROR hub: dead-letter store full``), return the cursor
with ``\\r`` and overwrite the line on a terminal, or send ``\\x1b[`` escape sequences to
the operator's terminal (colours, a cleared screen, a changed title).

:func:`printable` writes every character :meth:`str.isprintable` refuses except spaces
(C0 and C1 controls with ``ESC`` and 8-bit ``CSI``, ``DEL``, the Unicode line and
paragraph separators, bidi overrides and other invisible format characters, surrogates,
unassigned code points) as its Python escape (``\\n``, ``\\x1b``, ``\\u2028``), so one
record is one line whose text shows what was sent. Text without them (nearly every line)
is returned as it is, after one check in C.

:class:`PrintableFormatter` is where it is applied: the formatter of the one handler
:func:`gridcall.cli.common.setup_logging` installs, so every record of every logger (ours,
uvicorn's, pymodbus', amqtt's) is written through it, whichever call site logged it and
with whatever argument; no call site has to remember. A traceback keeps its own line
breaks (an exception's frames are lines) but has every other control character escaped.
Something embedding gridcall with its own logging set-up uses this formatter likewise.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TypeAlias

_ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]

# characters str.isprintable() refuses that are nonetheless plain spaces to a reader
# (Unicode's space separators other than U+0020: no-break, ideographic, thin...)
_SPACES = frozenset(" \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                    "\u2009\u200a\u202f\u205f\u3000")


def _escape(ch: str) -> str:
    if ch.isprintable() or ch in _SPACES:
        return ch
    return ch.encode("unicode_escape", "backslashreplace").decode("ascii")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control or invisible character written as its escape
    (``"a\\nb"`` → ``a\\\\nb``); ``keep_newlines`` leaves ``\\n`` as it is (a traceback's
    lines). Printable text comes back unchanged (the same object)."""
    if text.isprintable():
        return text
    if keep_newlines:
        return "\n".join(printable(line) for line in text.split("\n"))
    return "".join(map(_escape, text))


class PrintableFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose every record is written as one line of
    printable text (:func:`printable`); a traceback or stack keeps its line breaks and
    nothing else."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: _ExcInfo | tuple[None, None, None]) -> str:
        return printable(super().formatException(ei), keep_newlines=True)

    def formatStack(self, stack_info: str) -> str:
        return printable(super().formatStack(stack_info), keep_newlines=True)


#: what setup_logging writes before each message
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

__all__ = ["LOG_FORMAT", "PrintableFormatter", "printable"]
