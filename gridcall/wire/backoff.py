"""Backoff and reconnecting, owned once: every loop that retries a connection uses these.

:class:`Backoff` is a frozen value (first delay, cap, growth factor, jitter); its
:meth:`~Backoff.delays` is the small stateful part, an iterator of waits that doubles up to
the cap and starts again from the first delay after :meth:`Delays.reset` (a success).

:class:`Reconnect` is the helper a reconnect loop holds: it classifies each failure
(:class:`Outcome`), takes the next delay and waits it out, cut short by a stop event::

    retry = Reconnect(Backoff(0.5, 30.0), classify=mqtt_outcome, stop=stop,
                      config=settings.broker.credentials)
    while not stop.is_set():
        try:
            async with client() as c:
                retry.connected()            # the next failure starts from 0.5 s again
                ...
        except aiomqtt.MqttError as exc:
            failure = retry.failed(exc)      # RETRY, or REFUSED for a refused login
            log.warning("...; retrying in %.1fs", failure.delay)
            if not await retry.pause(failure):
                return                       # stop was set while waiting

The two outcomes are treated apart. ``RETRY`` (the other side cannot be reached, is busy,
timed out) waits the backoff. ``REFUSED`` (it answered and refused our credentials or
permissions) cannot succeed until the configuration changes: it waits at least
``refused_min`` and never less than the backoff, so a wrong password does not hammer the
server, and when a ``config`` fingerprint is given (e.g. the credentials, read again from
the environment) a change to it ends the wait at once, so a fixed password is used without
waiting out a long delay.

**Back within a probe's interval.** A long outage grows the backoff to its cap (30 s for
MQTT), so the first attempt after the server returns could come up to 30 s late. With a
``probe`` (e.g. :func:`gridcall.wire.broker.port_open`, a bare TCP connect), a wait after
a ``RETRY`` failure probes every ``probe_every`` seconds and ends as soon as the probe
succeeds: the attempt comes within about ``probe_every`` of the server's return, while a
server that stays down costs one refused TCP connect per interval. No probe after
``REFUSED`` (that server is up and refusing: the backoff and ``refused_min`` apply), and
when an attempt a probe let through fails again (the port answers but the service does
not) the next wait is the plain backoff, so such a server is not tried at the probe's pace.
The exception is an attempt that failed ``UNANSWERED``: nothing answered at the protocol's
level, as behind a relay or proxy whose server is down, which accepts every TCP connect, so
the probe always succeeds there and says nothing. Such an attempt costs what a probe costs
(one connection closed unanswered), so the probe stays on and the next attempt comes within
about ``probe_every`` of the server's return; without this the attempt after the first
unanswered one waited the whole backoff (up to 30 s). A server that answers and refuses
(``REFUSED``, or a RETRY such as an MQTT "server busy") is still tried at the backoff's pace.

A leaf: only the standard library and :mod:`gridcall.wire.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass

from gridcall.wire.errors import FatalError

CONFIG_POLL_S = 0.25
"""How often a wait after a refused login checks whether the configuration changed."""
PROBE_EVERY_S = 0.5
"""How often a wait after an unreachable server probes it (when given a ``probe``)."""

Probe = Callable[[], Awaitable[bool]]
"""True if the other side looks reachable again (cheaply: a TCP connect, no login)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts: ``initial``, then times ``factor`` each failure up to
    ``cap`` (seconds), each jittered by ± ``jitter`` (a fraction) so that many clients
    cut off together do not come back together."""

    initial: float
    cap: float
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0:
            raise ValueError(f"backoff delays must be >= 0 s, got initial={self.initial}, "
                             f"cap={self.cap}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff jitter must be in [0, 1), got {self.jitter}")

    def delays(self, rng: random.Random | None = None) -> Delays:
        return Delays(self, rng)


class Delays(Iterator[float]):
    """One loop's position in a :class:`Backoff`: ``next()`` is the nominal delay of this
    failure (then the next one grows), :meth:`jittered` what to actually sleep,
    :meth:`reset` after a success."""

    __slots__ = ("_next", "_rng", "backoff")

    def __init__(self, backoff: Backoff, rng: random.Random | None = None) -> None:
        self.backoff = backoff
        self._rng = rng
        self._next = backoff.initial

    @property
    def upcoming(self) -> float:
        """The nominal delay the next failure will get."""
        return self._next

    def __next__(self) -> float:
        delay = self._next
        self._next = min(self._next * self.backoff.factor, self.backoff.cap)
        return delay

    def jittered(self, delay: float) -> float:
        j = self.backoff.jitter
        if not j or delay <= 0:
            return delay
        uniform = self._rng.uniform if self._rng is not None else random.uniform
        return delay * uniform(1 - j, 1 + j)

    def reset(self) -> None:
        self._next = self.backoff.initial


class Outcome(enum.Enum):
    RETRY = "retry"
    """Transient: the other side is unreachable, busy or slow; back off and try again."""
    REFUSED = "refused"
    """The other side answered and refused (credentials, permissions, configuration):
    no use trying again quickly; only a configuration change can fix it."""
    UNANSWERED = "unanswered"
    """A connection opened and closed before the server's first answer (a relay, proxy
    or load balancer whose server is down; a server going down): as RETRY, except that
    the probe stays on after it (see :class:`Reconnect`)."""


Classify = Callable[[BaseException], Outcome]


def classify_error(exc: BaseException) -> Outcome:
    """By type: gridcall's :class:`~gridcall.wire.errors.FatalError` (a refused login
    among them) is REFUSED, anything else RETRY."""
    return Outcome.REFUSED if isinstance(exc, FatalError) else Outcome.RETRY


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, classified, and how long to wait before the next."""

    error: BaseException
    outcome: Outcome
    delay: float
    """Nominal seconds before the next attempt (what to log)."""
    wait: float
    """Jittered seconds actually waited."""
    in_a_row: int
    """Failures since the last success, this one included."""

    @property
    def refused(self) -> bool:
        return self.outcome is Outcome.REFUSED


class Reconnect:
    """The reconnect helper: backoff state, failure classification and the wait itself.

    ``stop``: a wait ends early when it is set, and :meth:`pause` then says not to go on.
    ``config``: a fingerprint of the settings a refusal depends on (its value, not a
    secret's copy, is compared); a change ends the wait after a REFUSED failure.
    ``probe``: see the module doc; it ends a wait after a RETRY failure once it succeeds.
    """

    def __init__(self, backoff: Backoff, classify: Classify = classify_error, *,
                 stop: asyncio.Event | None = None, refused_min: float = 0.0,
                 config: Callable[[], Hashable] | None = None,
                 rng: random.Random | None = None, probe: Probe | None = None,
                 probe_every: float = PROBE_EVERY_S) -> None:
        if probe_every <= 0:
            raise ValueError(f"probe_every must be > 0 s, got {probe_every}")
        self.backoff = backoff
        self.delays = backoff.delays(rng)
        self.classify = classify
        self.stop = stop
        self.refused_min = refused_min
        self.config = config
        self.probe = probe
        self.probe_every = probe_every
        self.in_a_row = 0
        self.probes = 0
        """Probes made (each a cheap connect to a server that was down)."""
        self._seen: Hashable = None
        self._probed = False  # the last wait was ended by a successful probe
        self._skip_probe = False  # ... and the attempt after it failed: wait without one

    def connected(self) -> None:
        """A success: the next failure waits the first delay again."""
        self.delays.reset()
        self.in_a_row = 0
        self._probed = self._skip_probe = False

    def failed(self, exc: BaseException, *, retry_after: float | None = None) -> Failure:
        """Classify ``exc`` and take the next delay (``retry_after``, e.g. a server's
        ``Retry-After``, replaces the backoff's own delay but not its growth)."""
        outcome = self.classify(exc)
        delay = next(self.delays)
        if retry_after is not None:
            delay = retry_after
        if outcome is Outcome.REFUSED:
            delay = max(delay, self.refused_min)
            self._seen = self._fingerprint()
        # a probe let this attempt through, and it failed: unless nothing answered it (the
        # probe then cannot tell a live server from a relay in front of a dead one)
        self._skip_probe = self._probed and outcome is not Outcome.UNANSWERED
        self._probed = False
        self.in_a_row += 1
        return Failure(exc, outcome, delay, self.delays.jittered(delay), self.in_a_row)

    async def pause(self, failure: Failure) -> bool:
        """Wait before the next attempt; False if ``stop`` was set (do not go on)."""
        if self.stopped:
            return False
        end = self._now() + failure.wait
        watch = failure.refused and self.config is not None
        probe = None if failure.refused or self._skip_probe else self.probe
        self._skip_probe = False
        while (left := end - self._now()) > 0:
            step = left
            if watch:
                step = min(left, CONFIG_POLL_S)
            elif probe is not None:
                step = min(left, self.probe_every)
            await self._sleep(step)
            if self.stopped:
                return False
            if watch and self._fingerprint() != self._seen:
                break  # the configuration changed: try it now
            if probe is not None and end - self._now() > 0:
                self.probes += 1
                if await probe():
                    self._probed = True
                    break  # reachable again: try now rather than at the end of the backoff
        return not self.stopped

    async def sleep(self, seconds: float) -> bool:
        """Sleep (cut short by ``stop``); False if ``stop`` is set."""
        if seconds > 0 and not self.stopped:
            await self._sleep(seconds)
        return not self.stopped

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _sleep(self, seconds: float) -> None:
        if self.stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def _fingerprint(self) -> Hashable:
        if self.config is None:
            return None
        try:
            return hash(self.config())
        except Exception as exc:  # e.g. a credentials variable unset: that is a state too
            return f"unavailable: {type(exc).__name__}: {exc}"
