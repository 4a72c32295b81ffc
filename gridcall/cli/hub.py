"""``gridcall hub run``: the hub (ingest, the alert desk, and beside it the notifier and
the HTTP API, wired by :mod:`gridcall.hub.compose`) until Ctrl-C. The hub's other
commands (``report``, ``ingest``, ``token``, ``silence``) have their own modules;
:mod:`gridcall.cli` adds them to this group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from gridcall.cli.common import (
    Command,
    ConfigDir,
    Verbose,
    err,
    load_config_set,
    out,
    require_env,
    setup_logging,
    typer_app,
    until_signal,
)
from gridcall.cli.tokens import tokens_path
from gridcall.config import SAMPLE_DISTRICT

if TYPE_CHECKING:
    from gridcall.hub.service import Hub

hub_app = typer_app("Run the hub and its ingest workers; its indicators report and API tokens.")


@hub_app.command("run", cls=Command)
def hub_run(
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    broker: Annotated[str | None, typer.Option(help="Override hub.broker.url.")] = None,
    drain_timeout: Annotated[float, typer.Option(help="On Ctrl-C/SIGTERM, seconds the hub may "
                                                 "spend writing what it still holds; the "
                                                 "rest is reported as not written. The "
                                                 "process exits at the latest 30 s after "
                                                 "it (a second signal: at once); keep both "
                                                 "under your supervisor's stop timeout.",
                                                 min=0)] = 10.0,
    api: Annotated[str, typer.Option(help="Serve the HTTP API on host:port (e.g. "
                                     "127.0.0.1:8470), or 'off'. HTTPS when hub.yaml sets api.tls "
                                     "(docs/api.md); plain HTTP otherwise: keep it on loopback "
                                     "or behind a TLS proxy.")
                   ] = "off",
    metrics: Annotated[str, typer.Option(help="Without --api: serve Prometheus metrics on "
                                         "host:port/metrics (e.g. 127.0.0.1:9470), or "
                                         "'off'. With --api they are on the API's "
                                         "/metrics.")] = "off",
    tokens: Annotated[Path | None, typer.Option(help="API tokens file; default: "
                                                "api-tokens.json beside hub.store_path.")
                      ] = None,
    ingest_workers: Annotated[int, typer.Option(help="1: readings in this process; N ≥ 2: "
                                                "N `hub ingest` processes sharing them; 0: "
                                                "none (workers run elsewhere).",
                                                min=0)] = 1,
    verbose: Verbose = False,
) -> None:
    """Ingest readings and turn anomaly events into routed alerts until Ctrl-C.

    Exits 1 if, when stopped, readings it had taken could not be written to the store.
    """
    from gridcall.cli.ingest import ingest_processes, spool_dir
    from gridcall.hub.compose import services
    from gridcall.hub.deadletter import DeadLetters
    from gridcall.hub.lease import DeskLease, LeaseLost
    from gridcall.hub.service import Hub
    from gridcall.hub.store import DeskStore, Store
    from gridcall.sinks import sink_from_settings
    from gridcall.wire.broker import BrokerAddress

    setup_logging(verbose)
    cfg = load_config_set(config_dir)
    require_env(config_dir / "hub.yaml", [
        *(f"hub.broker.{m}" for m in cfg.hub.broker.unset_env()),
        *(f"hub.influx.{m}" for m in (cfg.hub.influx.unset_env() if cfg.hub.influx else [])),
        *(f"hub.desk_store.{m}" for m in (cfg.hub.desk_store.unset_env()
                                          if cfg.hub.desk_store else [])),
        *(f"notify.yaml: {m}" for m in cfg.notify.unset_env()),
        *(f"roster.yaml: {m}" for m in cfg.duty.unset_env()),
    ])
    if broker is not None:
        try:
            BrokerAddress.parse(broker)
        except ValueError as exc:
            err.print(f"[red]✗ --broker: {escape(str(exc))}[/]", highlight=False,
                      soft_wrap=True)
            raise typer.Exit(2) from None
    from gridcall.hub.api.server import ApiBindError, ApiTlsError, parse_address

    try:
        api_address = parse_address(api)
        try:
            metrics_address = parse_address(metrics)
        except ValueError:
            raise ValueError(f"--metrics {metrics!r}: give host:port (e.g. 127.0.0.1:9470) "
                             "or off") from None
    except ValueError as exc:
        err.print(f"[red]✗ {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    hubs: list[Hub] = []

    async def main(stop: asyncio.Event) -> None:
        with DeadLetters(cfg.hub.deadletter_path, source=cfg.hub.client_id,
                         max_entries=cfg.hub.deadletter_max_entries) as letters:
            if cfg.hub.desk_store is None:
                await run_hub(stop, letters)
            else:
                await run_leased(stop, letters, cfg.hub.desk_store.url())

    async def run_leased(stop: asyncio.Event, letters: DeadLetters, url: str) -> None:
        """Active/standby (hub/lease.py): wait for the desk's lock, then run the hub
        until ``stop`` or until the lock's connection fails (then LeaseLost)."""
        about = f"{socket.gethostname()} pid {os.getpid()}" + (
            f" api {api_address[0]}:{api_address[1]}" if api_address else "")
        async with DeskLease(url, cfg.hub.client_id, about=about) as lease:
            if not await lease.try_now():
                out.print(f"hub {cfg.hub.client_id}: standby, the desk is held by "
                          f"{lease.holder}")
                if not await standby_until_active(stop, lease, url):
                    return
            out.print(f"hub {cfg.hub.client_id}: active, holds the desk ({lease!r})")
            ended = asyncio.Event()
            watch = asyncio.create_task(lease.watch(), name="desk-lease-watch")
            watch.add_done_callback(lambda _: ended.set())
            stopping = asyncio.create_task(stop.wait(), name="desk-lease-stop")
            stopping.add_done_callback(lambda _: ended.set())
            try:
                await run_hub(ended, letters)
            finally:
                lost = watch.done() and not watch.cancelled()
                for task in (watch, stopping):
                    task.cancel()
                await asyncio.gather(watch, stopping, return_exceptions=True)
            if lost and not stop.is_set():
                raise LeaseLost(f"{lease!r}: the lock's connection failed; stopped so "
                                "that one hub holds the desk")

    async def standby_until_active(stop: asyncio.Event, lease: DeskLease, url: str) -> bool:
        """Wait for the desk's lock, serving the read-only API meanwhile if asked
        (hub/standby.py); whether this hub holds the desk now (False: stopped)."""
        if api_address is None:
            return await lease.acquire(stop)
        from gridcall.hub.api.tokens import TokenFile
        from gridcall.hub.pgstore import PgStore
        from gridcall.hub.standby import serve_standby

        async with PgStore(url) as store, serve_standby(
                cfg, store, api_address, TokenFile(tokens or tokens_path(cfg)),
                holder=lambda: lease.holder) as standby:
            out.print(f"hub {cfg.hub.client_id}: standby API {standby.server.url} "
                      "(reads only; changes get 503 naming the active hub)")
            return await lease.acquire(stop)

    async def run_hub(stop: asyncio.Event, letters: DeadLetters) -> None:
        async with Store(cfg.hub.store_path) as store, sink_from_settings(cfg, store) as sink, \
                contextlib.AsyncExitStack() as stack:
            desk_store: DeskStore = store
            if cfg.hub.desk_store is not None:
                from gridcall.hub.pgstore import PgStore

                desk_store = await stack.enter_async_context(PgStore(cfg.hub.desk_store.url()))
                out.print(f"hub {cfg.hub.client_id}: {desk_store!r}")
            hub = Hub(cfg, sink=sink, store=desk_store, broker_url=broker,
                      drain_timeout=drain_timeout, readings=ingest_workers == 1,
                      spool_dir=spool_dir(cfg, "readings"), dead_letters=letters)
            hubs.append(hub)
            out.print(f"hub {hub.client_id}: {hub.address} → "
                      f"{cfg.hub.influx.url if cfg.hub.influx else cfg.hub.store_path}")
            async with services(hub, api=api_address, tokens=tokens or tokens_path(cfg),
                                say=out.print, metrics=metrics_address):
                await hub.run(stop)

    def run_desk() -> None:
        try:
            until_signal(main, grace=drain_timeout + 30)
        except ApiBindError as exc:
            err.print(f"[red]✗ {escape(str(exc))}; use --api HOST:PORT or --api off[/]",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ApiTlsError as exc:
            err.print(f"[red]✗ {escape(str(exc))}; fix hub.api.tls in hub.yaml[/]",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except LeaseLost as exc:
            err.print(f"[red]✗ {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    if ingest_workers >= 2:
        with ingest_processes(config_dir, ingest_workers, broker=broker,
                              drain_timeout=drain_timeout, verbose=verbose) as procs:
            run_desk()
        if any(p.returncode not in (0, -signal.SIGTERM) for p in procs):
            err.print("[red]✗ an ingest worker failed; see its lines above[/]")
            raise typer.Exit(1)
    else:
        run_desk()
    for hub in hubs:
        c = hub.ingest.counters
        if hub.unwritten:
            err.print(f"[red]✗ hub stopped: {hub.unwritten.readings} readings in "
                      f"{hub.unwritten.batches} batches were NOT written (drain timeout "
                      f"{drain_timeout:g}s; see the error above); {c.readings_stored} of "
                      f"{c.readings_received} stored[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        spooled = hub.ingest.spooled_pending
        out.print(f"hub stopped: {c.readings_stored} of {c.readings_received} readings "
                  f"stored, {c.rejected_readings} rejected, {sum(c.refused.values())} "
                  "refused (forged, unknown or over-long)"
                  + (f", {spooled} in the spool {hub.ingest.spool} (written when the sink "
                     "answers, at the next start if not before)" if spooled else ""),
                  highlight=False, soft_wrap=True)
