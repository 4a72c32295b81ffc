"""``gridcall hub ingest``: one readings worker; and starting N of them for ``hub run``.

Workers share the readings through an MQTT shared subscription
(``$share/<hub.ingest_share_group>/gridcall/v1/readings/+``), so the same command runs N
times on one machine (``gridcall hub run --ingest-workers N`` does that) or on several.
Each worker needs a stable, distinct ``--worker`` name: it names the worker's persistent
session (``<hub.client_id>-ingest-<worker>``) and its spool folder, so a restarted worker
gets back what the broker kept for it and writes out what it spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gridcall.cli.common import (
    ConfigDir,
    Verbose,
    err,
    load_config_set,
    out,
    require_env,
    setup_logging,
    until_signal,
)
from gridcall.config import SAMPLE_DISTRICT, ConfigSet
from gridcall.wire.cancelsafe import stop_tasks
from gridcall.wire.errors import InvariantError

WORKER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"


def spool_dir(cfg: ConfigSet, name: str) -> Path | None:
    """The spool folder for one consumer of readings; None without InfluxDB (the embedded
    store is local disk already: nothing to spool for)."""
    return Path(cfg.hub.spool_dir) / name if cfg.hub.influx is not None else None


def check_env(cfg: ConfigSet, config_dir: Path) -> None:
    require_env(config_dir / "hub.yaml", [
        *(f"hub.broker.{m}" for m in cfg.hub.broker.unset_env()),
        *(f"hub.influx.{m}" for m in (cfg.hub.influx.unset_env() if cfg.hub.influx else [])),
    ])


def hub_ingest(
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    worker: Annotated[str, typer.Option(help="This worker's name, stable across restarts "
                                        "and distinct per worker: it names the MQTT "
                                        "session and the spool folder.")] = "1",
    broker: Annotated[str | None, typer.Option(help="Override hub.broker.url.")] = None,
    share: Annotated[bool, typer.Option(help="Join the shared subscription group "
                                        "hub.ingest_share_group (--no-share: take every "
                                        "reading, e.g. on a broker without $share).")] = True,
    drain_timeout: Annotated[float, typer.Option(help="On Ctrl-C/SIGTERM, seconds to spend "
                                                 "writing what is held; the process exits "
                                                 "at the latest 30 s after it (a second "
                                                 "signal: at once).", min=0)] = 10.0,
    stats: Annotated[Path | None, typer.Option(help="Write counters, CPU and peak RSS as "
                                               "JSON to this file every 0.5 s.")] = None,
    retire: Annotated[str | None, typer.Option(
        metavar="NAME", help="Retire worker NAME (stopped) from the shared group: take and "
        "write what the broker kept for it, leave the group, end its session, exit. "
        "Until then the broker keeps handing it a share.")] = None,
    verbose: Verbose = False,
) -> None:
    """Take readings from MQTT into InfluxDB (or the embedded store) until Ctrl-C.

    Only readings: anomaly events and alerts stay with `gridcall hub run` (the alert desk).
    """
    import re

    from gridcall.hub.deadletter import DeadLetters
    from gridcall.hub.ingest.worker import IngestWorker
    from gridcall.hub.store import Store
    from gridcall.sinks import sink_from_settings
    from gridcall.wire import Decoder

    setup_logging(verbose)
    if retire is not None:
        worker = retire
    if not re.match(WORKER_NAME, worker):
        option = "--retire" if retire is not None else "--worker"
        err.print(f"[red]✗ {option} {escape(worker)!r}: use letters, digits, '_', '.', '-' "
                  "(at most 32)[/]", highlight=False)
        raise typer.Exit(2)
    cfg = load_config_set(config_dir)
    check_env(cfg, config_dir)
    if retire is not None and cfg.hub.ingest_receive_maximum is None:
        err.print("[red]✗ --retire ends the worker's session with MQTT v5, and "
                  "hub.ingest_receive_maximum is null (3.1.1): with a broker without v5, "
                  "end it with a clean-session connect under its client id[/]",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    try:
        address = cfg.hub.broker.address(broker)
    except ValueError as exc:
        err.print(f"[red]✗ --broker: {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    workers: list[IngestWorker] = []

    async def main(stop: asyncio.Event) -> None:
        settings = cfg.hub
        influx = settings.influx
        user, password = settings.broker.credentials()
        client_id = f"{settings.client_id}-ingest-{worker}"
        async with Store(settings.store_path) as store, sink_from_settings(cfg, store) as sink:
            letters = DeadLetters(settings.deadletter_path, source=client_id,
                                  max_entries=settings.deadletter_max_entries).open()
            w = IngestWorker(
                sink, address=address, client_id=client_id, dead_letters=letters,
                share_group=settings.ingest_share_group if share else None,
                spool_dir=spool_dir(cfg, f"ingest-{worker}"), username=user,
                password=password, keepalive=int(settings.broker.keepalive.total_seconds()),
                max_points=influx.batch_max_points if influx else 5000,
                flush_interval=influx.flush_interval.total_seconds() if influx else 0.5,
                drain_timeout=drain_timeout, retire=retire is not None,
                screen=cfg.screen(), receive_maximum=settings.ingest_receive_maximum,
                decoder=Decoder(window=settings.decoder_window()))
            workers.append(w)
            out.print(f"ingest worker {w.consumer.client_id}: {address} {w.consumer.filter} → "
                      f"{influx.url if influx else settings.store_path}", highlight=False,
                      soft_wrap=True)
            writer = (asyncio.create_task(_write_stats(w, stats, stop))
                      if stats is not None else None)

            async def joined() -> None:
                await w.consumer.subscribed.wait()
                out.print(f"ingest worker {w.consumer.client_id}: subscribed to "
                          f"{w.consumer.filter}", highlight=False, soft_wrap=True)

            announce = asyncio.create_task(joined())
            if retire is not None:
                announce.cancel()
                out.print(f"retiring ingest worker {w.consumer.client_id}: taking what the "
                          "broker kept for it, then ending its session", highlight=False,
                          soft_wrap=True)
            try:
                await (w.retire(stop) if retire is not None else w.run(stop))
            finally:
                announce.cancel()
                if writer is not None:
                    await stop_tasks([writer], 10.0, what="ingest worker's board writer",
                                     raise_errors=True)
                if stats is not None:
                    _dump(stats, w.stats())
                letters.close()

    until_signal(main, grace=drain_timeout + 30)
    for w in workers:
        c = w.ingest.counters
        if w.unwritten:
            err.print(f"[red]✗ ingest worker stopped: {w.unwritten.readings} readings in "
                      f"{w.unwritten.batches} batches were NOT written (drain timeout "
                      f"{drain_timeout:g}s); they stay unacknowledged at the broker[/]",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        if retire is not None and not w.retired:
            err.print(f"[red]✗ ingest worker {escape(retire)} NOT retired: stopped before "
                      f"everything was written ({w.ingest.spooled_pending} readings in its "
                      "spool); its session stays and keeps its share. Run --retire again."
                      "[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        if retire is not None:
            out.print(f"ingest worker {escape(retire)} retired: {c.readings_stored} readings "
                      "written, its session ended; the group no longer keeps a share "
                      "for it", highlight=False, soft_wrap=True)
            continue
        out.print(f"ingest worker stopped: {c.readings_stored} of {c.readings_received} "
                  f"readings stored, {c.rejected_readings} rejected, "
                  f"{sum(c.refused.values())} refused (forged, unknown or over-long), "
                  f"{w.ingest.spooled_pending} waiting in the spool", highlight=False,
                  soft_wrap=True)


def _dump(path: Path, data: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


async def _write_stats(worker: object, path: Path, stop: asyncio.Event) -> None:
    from gridcall.hub.ingest.worker import IngestWorker

    if not isinstance(worker, IngestWorker):
        raise InvariantError(f"_write_stats needs an IngestWorker, got {type(worker).__name__}")
    while not stop.is_set():
        _dump(path, worker.stats())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


@contextlib.contextmanager
def ingest_processes(config_dir: Path, n: int, *, broker: str | None, drain_timeout: float,
                     verbose: bool) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``n`` ``gridcall hub ingest`` workers (named 1..n); on exit, SIGTERM them and
    wait for each (they write out what they hold within ``drain_timeout``)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(1, n + 1):
            cmd = [sys.executable, "-c", "from gridcall.cli import main; main()", "hub",
                   "ingest", "--config",
                   str(config_dir), "--worker", str(i), "--drain-timeout", str(drain_timeout)]
            if broker is not None:
                cmd += ["--broker", broker]
            if verbose:
                cmd.append("--verbose")
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=drain_timeout + 30)
            except subprocess.TimeoutExpired:
                err.print(f"[red]✗ ingest worker pid {p.pid} did not stop; killed[/]")
                p.kill()
                p.wait()
