"""The one Backoff value and the one reconnect helper every retry loop uses."""

from __future__ import annotations

import asyncio
import random

import pytest

from gridcall.wire.backoff import Backoff, Outcome, Reconnect, classify_error
from gridcall.wire.broker import ClosedBeforeConnack, mqtt_outcome
from gridcall.wire.errors import CredentialsRefused, InvariantError, RetryableError, invariant


def test_delays_double_up_to_the_cap_and_start_again_after_a_success() -> None:
    delays = Backoff(0.5, 3.0).delays()
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    delays.reset()
    assert next(delays) == 0.5


def test_jitter_stays_within_its_fraction_of_the_nominal_delay() -> None:
    delays = Backoff(1.0, 1.0, jitter=0.2).delays(random.Random(7))
    waits = [delays.jittered(1.0) for _ in range(500)]
    assert all(0.8 <= w <= 1.2 for w in waits)
    assert len(set(waits)) > 1  # jittered, not constant
    assert Backoff(1.0, 1.0, jitter=0).delays().jittered(1.0) == 1.0


@pytest.mark.parametrize("bad", [{"initial": -1, "cap": 1}, {"initial": 1, "cap": 1, "factor": 0.5},
                                 {"initial": 1, "cap": 1, "jitter": 1.0}])
def test_a_backoff_that_makes_no_sense_is_refused_by_name(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**bad)


def test_refused_credentials_are_told_apart_from_an_unreachable_server() -> None:
    assert classify_error(CredentialsRefused("no")) is Outcome.REFUSED
    assert classify_error(RetryableError("down")) is Outcome.RETRY
    assert classify_error(OSError("connection refused")) is Outcome.RETRY
    retry = Reconnect(Backoff(0.1, 1.0), refused_min=10.0)
    unreachable = retry.failed(OSError("down"))
    refused = retry.failed(CredentialsRefused("wrong password"))
    assert (unreachable.outcome, unreachable.delay) == (Outcome.RETRY, 0.1)
    assert (refused.outcome, refused.delay, refused.in_a_row) == (Outcome.REFUSED, 10.0, 2)
    retry.connected()
    assert retry.failed(OSError("down")).delay == 0.1


def test_a_server_retry_after_replaces_the_delay_but_the_backoff_still_grows() -> None:
    retry = Reconnect(Backoff(0.2, 30.0))
    assert retry.failed(RetryableError("429"), retry_after=7.0).delay == 7.0
    assert retry.failed(RetryableError("503")).delay == 0.4


async def test_a_stop_ends_the_wait_and_says_not_to_go_on() -> None:
    stop = asyncio.Event()
    retry = Reconnect(Backoff(3600.0, 3600.0), stop=stop)
    failure = retry.failed(OSError("down"))
    waiting = asyncio.create_task(retry.pause(failure))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiting, 30) is False  # 30 s: a hang guard only


async def test_a_refused_login_is_tried_again_as_soon_as_the_credentials_change() -> None:
    password = ["wrong"]
    retry = Reconnect(Backoff(3600.0, 3600.0), config=lambda: ("user", password[0]))
    failure = retry.failed(CredentialsRefused("refused"))
    waiting = asyncio.create_task(retry.pause(failure))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # unchanged credentials: it waits out the backoff
    password[0] = "right"
    assert await asyncio.wait_for(waiting, 30) is True


def test_an_invariant_that_does_not_hold_raises_our_error_even_under_python_O() -> None:
    invariant(True, "fine")
    with pytest.raises(InvariantError, match="spool is set"):
        invariant(None, "spool is set")


def test_a_duration_in_nanoseconds_is_exact_for_a_timedelta() -> None:
    from datetime import timedelta

    from gridcall.wire.clock import ns, seconds

    # int(total_seconds() * 1e9), which the desk used, gives 1000999999 here
    assert ns(timedelta(milliseconds=1001)) == 1_001_000_000
    assert ns(timedelta(days=1, microseconds=1)) == 86_400_000_001_000
    assert ns(0.25) == 250_000_000
    assert seconds(1_500_000_000) == 1.5


def test_a_database_that_refuses_our_login_is_refused_not_unreachable() -> None:
    from gridcall.hub.ingest.sinks import RetryableSinkError, SinkAuthError, SinkConfigError

    assert classify_error(SinkAuthError("401 unauthorized", status=401)) is Outcome.REFUSED
    assert classify_error(SinkConfigError("404 database not found")) is Outcome.REFUSED
    assert classify_error(RetryableSinkError("connection refused")) is Outcome.RETRY
    assert isinstance(SinkAuthError("403"), CredentialsRefused)


async def test_the_hubs_readings_connection_waits_the_one_backoff_between_attempts(
) -> None:
    """The readings consumer reconnects in its own task; the wait it takes before each
    attempt is the Backoff's next delay, jittered. Against a port nobody listens on:
    1 s, 2 s, 4 s, each ± 20 % (the waits are watched, not slept)."""
    import socket

    from gridcall.hub.ingest.consumer import RECONNECT, ReadingsConsumer
    from gridcall.hub.ingest.runner import Ingest
    from gridcall.hub.store import Store
    from gridcall.wire.broker import BrokerAddress
    from tests.polling import wait_until

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Store(":memory:") as store:
        consumer = ReadingsConsumer(Ingest(store), address=BrokerAddress.parse(
            f"mqtt://127.0.0.1:{port}"), client_id="backoff-probe")
        waits: list[float] = []

        async def spy(delay: float) -> None:
            waits.append(delay)
            await asyncio.sleep(0)

        consumer._sleep = spy  # type: ignore[assignment]
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        try:
            assert await wait_until(lambda: len(waits) >= 3, polls=300)
        finally:
            stop.set()
            await task
            await consumer.close()
    nominal = [RECONNECT.initial * RECONNECT.factor**i for i in range(3)]
    for wait, delay in zip(waits, nominal, strict=False):
        assert delay * (1 - RECONNECT.jitter) <= wait <= delay * (1 + RECONNECT.jitter)


class CountingSleeps(Reconnect):
    """A Reconnect on a simulated clock: its waits pass at once, adding up what they
    would have slept."""

    slept = 0.0
    clock = 0.0

    def _now(self) -> float:
        return self.clock

    async def _sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.clock += seconds
        await asyncio.sleep(0)


async def test_a_probe_ends_a_long_wait_as_soon_as_the_server_answers_again() -> None:
    answers = iter([False, False, True])

    async def probe() -> bool:
        return next(answers)

    retry = CountingSleeps(Backoff(30.0, 30.0, jitter=0), probe=probe, probe_every=0.5)
    assert await retry.pause(retry.failed(OSError("down")))
    assert retry.probes == 3
    assert retry.slept == 1.5  # three probe intervals, not the 30 s backoff


async def test_no_probe_after_a_refused_login_and_none_right_after_a_probed_failure() -> None:
    calls = 0

    async def probe() -> bool:
        nonlocal calls
        calls += 1
        return True  # the port always answers

    retry = CountingSleeps(Backoff(8.0, 8.0, jitter=0), probe=probe, probe_every=0.5)
    assert await retry.pause(retry.failed(CredentialsRefused("wrong password")))
    assert (calls, retry.slept) == (0, 8.0)  # a refusing broker waits the whole backoff
    retry.slept = 0.0
    assert await retry.pause(retry.failed(OSError("down")))
    assert (calls, retry.slept) == (1, 0.5)  # the port answers: try now
    retry.slept = 0.0
    # that attempt failed although the port answered: the next wait is the plain backoff
    assert await retry.pause(retry.failed(OSError("connect timed out")))
    assert (calls, retry.slept) == (1, 8.0)
    retry.slept = 0.0
    assert await retry.pause(retry.failed(OSError("down")))  # then probing again
    assert (calls, retry.slept) == (2, 0.5)


async def test_after_an_unanswered_attempt_the_probe_stays_on() -> None:
    """A relay or proxy in front of a broker that is down accepts every TCP connect, so
    the probe always succeeds and the attempt it lets through is closed before the
    CONNACK (UNANSWERED): that attempt costs what a probe costs, so the next wait probes
    again instead of waiting the whole backoff; an attempt the broker answered and
    refused (a RETRY such as "server busy") still gets the plain backoff."""
    calls = 0

    async def probe() -> bool:
        nonlocal calls
        calls += 1
        return True

    retry = CountingSleeps(Backoff(8.0, 8.0, jitter=0), mqtt_outcome, probe=probe,
                           probe_every=0.5)
    closed = ClosedBeforeConnack("closed before the broker's CONNACK")
    assert mqtt_outcome(closed) is Outcome.UNANSWERED
    assert await retry.pause(retry.failed(OSError("down")))
    assert (calls, retry.slept) == (1, 0.5)
    for n in (2, 3):  # each unanswered attempt: probe again, try within one interval
        retry.slept = 0.0
        assert await retry.pause(retry.failed(closed))
        assert (calls, retry.slept) == (n, 0.5)
    retry.slept = 0.0
    assert await retry.pause(retry.failed(OSError("server busy")))  # answered, failed
    assert (calls, retry.slept) == (3, 8.0)
