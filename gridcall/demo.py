"""``gridcall demo``: the whole pipeline in one process, with a live view.

Embedded broker (or ``--broker``), the sample district's agents on simulated sensors with
labelled anomalies, the hub writing to the embedded store (or ``--influx``), and a
command-centre listener on the alert topics, so delivery is measured, not assumed.

A run lasts ``duration`` seconds, plus the time the agents' last readings take to reach
the hub, plus at most ``drain_timeout`` seconds for the hub to write what it holds: a sink
that is down does not keep it running; what it did not take is counted as unwritten.
Options are checked when :class:`DemoOptions` is made (ValueError naming the option); a
broker that is not there stops :func:`run_demo` with
:class:`~gridcall.simulators.district.BrokerUnreachable`.

**Simulated time.** ``clock_speed`` N runs the hub's clock N times faster than real time
from the moment the demo starts (:class:`ScaledClock`): alerts open, escalate and close on
that clock, so at 600× a 30-minute response deadline passes in 3 real seconds, and a
60-second demo covers 10 hours at the desk. The agents keep real time: readings and
anomaly events carry wall-clock timestamps (``detected_at`` of an alert is real time, its
``opened_at``, steps and deadlines are simulated), because readings go to a time-series
store where they must line up with the wall clock. Simulated duty staff
(:mod:`gridcall.simulators.responders`) answer about 60 % of the stages in time; the rest escalate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from gridcall.config import ConfigSet
from gridcall.hub.api.server import parse_address
from gridcall.hub.desk.desk import Change, Desk
from gridcall.hub.desk.indicators import by_unit, indicators
from gridcall.hub.desk.lifecycle import AlertState, Transition
from gridcall.hub.ingest.sinks import ReadingSink
from gridcall.hub.store import Store
from gridcall.simulators.district import BrokerUnreachable, InProcessDistrict, tiers_now
from gridcall.simulators.embedded import EmbeddedBroker
from gridcall.simulators.town import demo_injections
from gridcall.wire.broker import BrokerAddress
from gridcall.wire.ladder import TIERS

if TYPE_CHECKING:
    from gridcall.hub.service import Hub

__all__ = ["BrokerUnreachable", "DemoOptions", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    config: ConfigSet
    duration: float = 60.0
    broker: str | None = None
    influx: str | None = None
    influx_api: int = 1
    influx_database: str = "gridcall"
    store_path: Path | None = None
    summary_json: Path | None = None
    seed: int = 0
    live: bool = True
    drain_timeout: float = 10.0
    clock_speed: float = 1.0
    api: str = "127.0.0.1:0"
    """Where the demo serves the hub's HTTP API (port 0: any free port), or "off"."""
    take_offline: str | None = None
    """An edge agent whose uplink the demo cuts on purpose (from 30 % to 55 % of the
    run), announced in the live view: the hub should raise one EDGE-OFFLINE for it."""

    def __post_init__(self) -> None:
        """Refuse what cannot work before anything starts: ValueError naming the option."""
        if self.broker is not None:
            try:
                BrokerAddress.parse(self.broker)
            except ValueError as exc:
                raise ValueError(f"--broker: {exc}") from None
        if self.influx is not None:
            from gridcall.sinks import influx_sink

            try:  # builds the sink without connecting: URL, database, token are checked
                influx_sink(self.config, url=self.influx, api=self.influx_api,
                            database=self.influx_database)
            except ValueError as exc:
                raise ValueError(f"--influx: {exc}") from None
        if self.drain_timeout < 0:
            raise ValueError(f"--drain-timeout: must be >= 0 seconds, got {self.drain_timeout}")
        parse_address(self.api)  # ValueError naming --api
        if self.take_offline is not None and self.take_offline not in self.config.agents:
            raise ValueError(f"--take-offline: {self.take_offline!r} is not an agent of the "
                             f"config; its agents: {', '.join(self.config.agents)}")
        if not 0 < self.clock_speed <= 100_000:
            raise ValueError(f"--clock-speed: must be > 0 and at most 100000, got "
                             f"{self.clock_speed}")


class ScaledClock:
    """Nanoseconds since the epoch, running ``speed`` times faster than real time from
    the moment it is made (speed 1 is the real clock)."""

    def __init__(self, speed: float, origin: int | None = None) -> None:
        self.speed = speed
        self.origin = time.time_ns() if origin is None else origin

    def __call__(self) -> int:
        return self.origin + int((time.time_ns() - self.origin) * self.speed)

    @property
    def elapsed_s(self) -> float:
        return (self() - self.origin) / 1e9


class StepLog:
    """Every step the desk takes, kept in memory for the live indicator table (a demo
    is short; the hub itself reads them from the ledger)."""

    def __init__(self, desk: Desk) -> None:
        self.steps: list[Transition] = []
        desk.add_hook(self._take)

    async def _take(self, change: Change) -> None:
        self.steps.append(change.transition)


def unit_figures(steps: list[Transition], start: int, now: int) -> dict[str, dict[str, Any]]:
    """The indicators (hub/desk/indicators.py) of every unit that held an alert in
    ``[start, now]`` on the desk's clock, judged as of ``now``."""
    rows = indicators(sorted(steps, key=lambda t: t.at), start, now + 1, groups=("unit",))
    return {unit: row.as_dict() for unit, row in by_unit(rows).items()}


@contextlib.asynccontextmanager
async def broker_for(options: DemoOptions) -> AsyncIterator[str]:
    if options.broker:
        yield options.broker
        return
    async with EmbeddedBroker() as broker:
        yield broker.url


@contextlib.asynccontextmanager
async def sink_for(options: DemoOptions, store: Store) -> AsyncIterator[ReadingSink]:
    if options.influx is None:
        yield store
        return
    from gridcall.sinks import influx_sink

    async with influx_sink(options.config, url=options.influx, api=options.influx_api,
                           database=options.influx_database) as sink:
        yield sink


FIGURES = (("calls", "calls"), ("response_timeliness_rate", "resp"),
           ("arrival_timeliness_rate", "arr"), ("disposal_timeliness_rate", "disp"),
           ("breaches", "miss"), ("whistle_rate", "whst"), ("resolved", "res"),
           ("median_response_s", "med"))
LEGEND = ("resp/arr/disp: share of responses, arrivals, disposals in time · miss: deadlines "
          "missed · whst: share called upward · res: resolved · med: median response")
LEVEL = {"district": "dist", "town": "town", "community": "comm", "grid": "grid"}


def _cell(key: str, value: object) -> str:
    if value is None:
        return "–"
    if key.endswith("_s") and isinstance(value, int | float):
        return f"{value / 60:.0f}m"
    if isinstance(value, float):
        return f"{value:.0%}"
    return str(value)


# The live view must read in an 80-column terminal without cutting a unit or matter name
# to "huang…": short headers with a legend, no vertical borders, long text folded onto a
# second line of its own cell rather than truncated. It must also fit the terminal's
# height (80x24): what would not fit is left out from the bottom (indicators first, then
# the least severe alerts), never the board's address at the top.

SHORT_STATE = {"opened": "open", "dispatched": "disp", "acknowledged": "ack",
               "on_site": "site", "resolved": "done", "false_alarm": "false"}


def tier_line(at_opening: dict[str, int], now: dict[str, int]) -> str:
    """The alerts by tier twice, as the summary counts them: at opening
    (``tiers_at_opening``) and where each stands now (``tiers_now``)."""
    def counts(c: dict[str, int]) -> str:
        return " · ".join(f"{t} {c.get(t, 0)}" for t in TIERS)
    return (f"tiers at opening  {counts(at_opening)}   A district+town · B town\n"
            f"tiers now         {counts(now)}   C community · D grid")


def most_severe(states: list[AlertState]) -> list[AlertState]:
    """Open alerts, the most severe first: by tier (A first), then the next deadline."""
    def key(state: AlertState) -> tuple[int, int, str]:
        due = state.due()
        return (TIERS.index(state.tier), due[1] if due else 2**63, state.alert_id)
    return sorted((s for s in states if s.is_open), key=key)


def _until(deadline: int, now: int, *, overdue: bool = False) -> str:
    """A deadline as people read it: ``in 12m`` or, once passed, ``late 5m``; ``OVERDUE
    5m`` when it passed where the alert can go no higher (its duty leader was paged)."""
    left = (deadline - now) // 10**9
    span = abs(left)
    text = (f"{span // 86400}d" if span >= 86400 else f"{span // 3600}h" if span >= 3600
            else f"{span // 60}m" if span >= 60 else f"{span}s")
    if left >= 0:
        return f"in {text}"
    return f"OVERDUE {text}" if overdue else f"late {text}"


def alerts_table(states: list[AlertState], config: ConfigSet, now: int, *,
                 rows: int | None = None) -> Table:
    """The open alerts, most severe first (:func:`most_severe`), each with its grid's name
    and its next deadline on the desk's clock; at most ``rows`` of them."""
    ordered = most_severe(states)
    shown = ordered if rows is None else ordered[:max(0, rows)]
    more = len(ordered) - len(shown)
    title = "open alerts, most severe first" + (f" ({more} more below)" if more else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  title_justify="left", padding=(0, 1), collapse_padding=True)
    table.add_column("alert", no_wrap=True)
    table.add_column("T", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("due", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("grid · matter", overflow="fold", ratio=1)
    for state in shown:
        a = state.alert
        due = state.due()
        grid = config.units.get(state.place[-1])
        table.add_row(state.alert_id, state.tier, SHORT_STATE.get(state.state, state.state),
                      _until(due[1], now, overdue=a.overdue == due[0]) if due else "–",
                      state.unit,
                      f"{escape(grid.name if grid else state.place[-1])} "
                      f"{escape(a.matter)}")
    return table


def indicator_board(figures: dict[str, dict[str, Any]], *, rows: int = 12) -> Table:
    """Indicators per unit, most calls first, with the legend of the short headers."""
    board = Table(title="indicators per unit so far (simulated duty staff)",
                  caption=LEGEND, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  title_justify="left", caption_justify="left")
    board.add_column("unit", no_wrap=True)
    board.add_column("lvl", no_wrap=True)
    for _, label in FIGURES:
        board.add_column(label, justify="right", no_wrap=True)
    for unit, row in sorted(figures.items(), key=lambda kv: -int(kv[1]["calls"] or 0))[:rows]:
        board.add_row(unit, LEVEL.get(str(row["level"]), str(row["level"])),
                      *(_cell(k, row.get(k)) for k, _ in FIGURES))
    return board


@dataclass(frozen=True)
class Frame:
    """What one frame of the live view shows: the counters that the final line and the
    summary also give, taken at one instant (the last frame from the summary itself)."""

    elapsed_s: float
    readings_per_s: float
    published: int
    stored: int
    anomaly_events: int
    malformed: int
    alerts_opened: int
    escalations: int
    tiers_at_opening: dict[str, int]
    tiers_now: dict[str, int]
    final: bool = False


def frame_of(district: InProcessDistrict, rate: float) -> Frame:
    """The live counters of a running district."""
    hub = district.hub
    c = hub.counters
    return Frame(
        elapsed_s=time.monotonic() - district.started, readings_per_s=rate,
        published=district.readings_published, stored=hub.ingest.counters.readings_stored,
        anomaly_events=c.anomaly_starts, malformed=hub.malformed,
        alerts_opened=c.alerts_opened, escalations=hub.desk.counters.escalations,
        tiers_at_opening={t: c.alerts_by_tier.get(t, 0) for t in TIERS},
        tiers_now=tiers_now(hub.desk.alerts()))


def final_frame(summary: dict[str, Any], duration: float) -> Frame:
    """The last frame: the summary's own figures, so it says what the final line says;
    its rate is the run's mean (it said 0.0, as if nothing had flowed)."""
    published = summary["readings_published"]
    return Frame(
        elapsed_s=duration, readings_per_s=published / duration if duration > 0 else 0.0,
        published=published,
        stored=summary["readings_stored"], anomaly_events=summary["anomaly_events"],
        malformed=summary["malformed_messages"], alerts_opened=summary["alerts_opened"],
        escalations=summary["escalations"], tiers_at_opening=summary["tiers_at_opening"],
        tiers_now=summary["tiers_now"], final=True)


def view(desk: Desk, frame: Frame, duration: float, clock: ScaledClock,
         steps: list[Transition], *, delivered: int, board: str | None = None,
         token: str | None = None, height: int = 24,
         announcements: tuple[str, ...] = ()) -> Group:
    """One frame of the live view, at most ``height`` lines (the board's address first),
    over ``desk`` and its ``steps`` so far; ``delivered``: alerts the units received."""
    config = desk.config
    head = Table.grid(padding=(0, 2))
    head.add_row("elapsed", (f"{frame.elapsed_s:5.1f}s / {duration:.0f}s"
                             + (" (done)" if frame.final else "")),
                 "desk clock", f"+{clock.elapsed_s / 3600:5.2f} h  ({clock.speed:g}×)")
    head.add_row("readings/s", f"{frame.readings_per_s:8.1f}", "published / stored",
                 f"{frame.published} / {frame.stored}")
    head.add_row("anomaly events", str(frame.anomaly_events), "malformed",
                 str(frame.malformed))
    head.add_row("alerts opened", str(frame.alerts_opened), "escalations",
                 str(frame.escalations))
    name = config.district.name
    top: list[Any] = [f"board  {board}"] if board else []
    if board and token:
        top.append(f"token  {token}")
    parts: list[Any] = [Panel(Group(*top, head), title=f"gridcall demo · {name}"),
                        tier_line(frame.tiers_at_opening, frame.tiers_now),
                        *announcements]
    used = (len(top) + len(head.rows) + 2) + 2 + len(announcements) + 1
    # The alerts table: a title, a header and its rule, then one line per alert.
    alert_rows = max(1, height - used - 3 - 1)
    states = desk.alerts(open_only=True)
    parts.append(alerts_table(states, config, clock(), rows=alert_rows))
    used += 3 + min(len(states), alert_rows)
    figures = unit_figures(steps, clock.origin, clock())
    spare = height - used - 1 - 5  # title, header, rule, legend (2 lines)
    if spare >= 2 and figures:
        parts.append(indicator_board(figures, rows=spare))
        used += 5 + min(spare, len(figures))
    if height - used >= 1:
        parts.append(f"alerts delivered to their units: {delivered}")
    return Group(*parts)


def say(text: str) -> None:
    """One line on stdout, never wrapped (it may hold a URL or a token to copy)."""
    Console().print(text, soft_wrap=True, markup=False, highlight=False)


async def run_demo(options: DemoOptions) -> dict[str, Any]:
    cfg = options.config
    async with broker_for(options) as broker_url, \
            Store(options.store_path or ":memory:") as store, \
            sink_for(options, store) as sink:
        start = time.time()
        clock = ScaledClock(options.clock_speed)
        injections = demo_injections(cfg, start=start, duration=options.duration)
        district = InProcessDistrict(cfg, broker_url=broker_url, store=store, sink=sink,
                                     injections=injections, seed=options.seed,
                                     drain_timeout=options.drain_timeout, clock=clock,
                                     tick_interval=0.1, duty_staff=True,
                                     cuttable=[options.take_offline]
                                     if options.take_offline else [])
        log = StepLog(district.hub.desk)
        screen = LiveView(district, options, clock, log)
        with screen:
            async with district, demo_api(district.hub, parse_address(options.api),
                                          say) as api:
                screen.board, screen.token = api.get("board"), api.get("token")
                await screen.follow()
            summary = await district.summary()
            # The last frame is drawn from the summary, after the agents flushed and the
            # hub drained: it says what the final line says.
            screen.last(summary)
        figures = unit_figures(log.steps, clock.origin, clock())
    summary |= {
        "duration_s": options.duration,
        "clock_speed": options.clock_speed,
        "desk_hours": round(clock.elapsed_s / 3600, 3),
        "broker": options.broker or "embedded",
        "store": options.influx or "embedded",
        "indicators": figures,
        "api": api.get("url"),
        "board": api.get("board"),
    }
    if options.summary_json:
        options.summary_json.write_text(json.dumps(summary, ensure_ascii=False, indent=2),
                                        encoding="utf-8")
    return summary


class LiveView:
    """The live view of a demo: a frame every half second while it runs, and a last one
    from the summary. ``with`` it around the run."""

    def __init__(self, district: InProcessDistrict, options: DemoOptions, clock: ScaledClock,
                 log: StepLog) -> None:
        self.district = district
        self.options = options
        self.clock = clock
        self.log = log
        self.board: str | None = None
        self.token: str | None = None
        self.announcements: list[str] = []
        self._back = False
        """Lines the view keeps under the tier counts (an agent taken offline)."""
        self._live = Live(refresh_per_second=4, auto_refresh=options.live)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def _draw(self, frame: Frame) -> None:
        self._live.update(view(self.district.hub.desk, frame, self.options.duration,
                               self.clock, self.log.steps,
                               delivered=len(self.district.delivery.delivered),
                               board=self.board, token=self.token,
                               height=self._live.console.size.height,
                               announcements=tuple(self.announcements)))

    async def follow(self) -> None:
        """Redraw every half second until the run's duration is over; take the agent
        ``take_offline`` offline from 30 % to 55 % of it, and say so."""
        district = self.district
        started = district.started
        last_n, last_t, rate = 0, started, 0.0
        self._draw(frame_of(district, rate))
        while time.monotonic() - started < self.options.duration:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            self._outage(now - started)
            n = district.hub.ingest.counters.readings_received
            rate = (n - last_n) / max(1e-6, now - last_t)
            last_n, last_t = n, now
            self._draw(frame_of(district, rate))

    def _outage(self, elapsed: float) -> None:
        agent, duration = self.options.take_offline, self.options.duration
        if agent is None:
            return
        if not self.district.taken_offline:
            if elapsed >= 0.3 * duration:
                self.district.take_offline(agent)
                self.announcements.append(f"{agent} taken offline on purpose at "
                                          f"{elapsed:.0f} s (uplink cut)")
        elif not self._back and elapsed >= 0.55 * duration:
            self.district.bring_back(agent)
            self._back = True
            self.announcements[-1] += f", back at {elapsed:.0f} s"

    def last(self, summary: dict[str, Any]) -> None:
        self._draw(final_frame(summary, self.options.duration))


@contextlib.asynccontextmanager
async def demo_api(hub: Hub, address: tuple[str, int] | None,
                   say: Callable[[str], None]) -> AsyncIterator[dict[str, str]]:
    """The demo's API: a throw-away tokens file with one token for the district (it sees
    every alert), printed with the URL so the API can be tried while the demo runs.
    Yields ``{"url", "token"}`` (empty when ``address`` is None)."""
    import tempfile

    from gridcall.hub.api.tokens import TokenFile, issue
    from gridcall.hub.compose import serve_api

    if address is None:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="gridcall-demo-") as folder:
        path = Path(folder) / "api-tokens.json"
        district = hub.config.district.id
        token = issue(path, district, known_units=hub.config.units, label="demo")
        async with serve_api(hub, address, TokenFile(path)) as server:
            say(f"API {server.url}/docs · try: curl -H 'Authorization: Bearer {token}' "
                f"'{server.url}/v1/alerts?open=true'   (district {district}; the token "
                "ends with the demo)")
            # The token rides in the fragment, which the browser never sends to a server
            # or writes to a log; the page moves it to sessionStorage and clears it.
            say(f"board {server.url}/board#token={token}   (live map and alerts, "
                "acknowledge/resolve as the district)")
            yield {"url": server.url, "token": token, "board": f"{server.url}/board"}
