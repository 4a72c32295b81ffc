"""InfluxDB writers: v1 ``/write`` over httpx, and v2 through influxdb-client.

Both take reading batches, encode them with :class:`~hub.sinks.lineproto.LineEncoder`
and write once; they never retry (the hub's ingest runner does). Every failure is
classified into the :mod:`hub.sinks.base` error types before it leaves the sink, and the
messages name the sink and the URL, never the credentials.

InfluxDB 3 accepts both endpoints (``/write`` with ``db`` and ``/api/v2/write`` with
``bucket``), so either sink serves it; 1.x takes v1, 2.x takes both (v1 through DBRP
mapping).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Self

import httpx

from hub.sinks.base import (
    BatchTooLargeError,
    RejectedPointsError,
    RetryableSinkError,
    SinkAuthError,
    SinkConfigError,
    SinkError,
)
from hub.sinks.lineproto import LineEncoder
from wire import ReadingBatch

log = logging.getLogger(__name__)


def classify(sink: str, url: str, status: int, body: str,
             retry_after: str | None = None) -> SinkError:
    """Map an HTTP failure to the error type that says what to do with the data."""
    detail = f"{sink} at {url}: HTTP {status}: {body.strip()[:300]}"
    if status in (400, 422):
        return RejectedPointsError(detail, status=status)
    if status == 413:
        return BatchTooLargeError(detail, status=status)
    if status in (401, 403):
        return SinkAuthError(detail, status=status)
    if status == 404:
        return SinkConfigError(detail, status=status)
    delay: float | None = None
    if retry_after:
        try:
            delay = float(retry_after)
        except ValueError:
            delay = None
    return RetryableSinkError(detail, status=status, retry_after=delay)


class InfluxV1Sink:
    """``POST /write?db=&rp=&precision=ns`` with optional user and password."""

    def __init__(self, url: str, *, database: str, encoder: LineEncoder,
                 retention_policy: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0,
                 create_database: bool = True) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.create_database = create_database
        self.encoder = encoder
        self.params = {"db": database, "precision": "ns"}
        if retention_policy:
            self.params["rp"] = retention_policy
        self._auth = (username, password or "") if username else None
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self._http = httpx.AsyncClient(base_url=self.url, timeout=self._timeout,
                                       auth=self._auth)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def write(self, batches: Sequence[ReadingBatch]) -> None:
        if self._http is None:
            raise RuntimeError("InfluxV1Sink used outside 'async with'")
        body = self.encoder.encode(batches)
        if not body:
            return
        resp = await self._post("/write", params=self.params, content=body)
        if resp.status_code == 404 and "database not found" in resp.text and (
            self.create_database
        ):
            # Like Telegraf: create the database once, then write again.
            created = await self._post(
                "/query", data={"q": f'CREATE DATABASE "{self._quoted_db()}"'})
            if created.status_code == 200:
                log.info("created InfluxDB database %r at %s", self.database, self.url)
                resp = await self._post("/write", params=self.params, content=body)
        if resp.status_code != 204:
            raise classify("influxdb v1", self.url, resp.status_code, resp.text,
                           resp.headers.get("Retry-After"))


    async def _post(self, path: str, **kwargs: object) -> httpx.Response:
        if self._http is None:
            raise RuntimeError("InfluxV1Sink used outside 'async with'")
        try:
            return await self._http.post(path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise RetryableSinkError(
                f"influxdb v1 at {self.url}: {type(exc).__name__}: {exc}") from exc

    def _quoted_db(self) -> str:
        return self.database.replace("\\", "\\\\").replace('"', '\\"')


class InfluxV2Sink:
    """Writes through influxdb-client's async write API (org, bucket, token)."""

    def __init__(self, url: str, *, org: str, bucket: str, token: str,
                 encoder: LineEncoder, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self.encoder = encoder
        self._token = token
        self._timeout_ms = int(timeout * 1000)
        self._client: object | None = None
        self._write_api: object | None = None

    async def __aenter__(self) -> Self:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        client = InfluxDBClientAsync(url=self.url, token=self._token, org=self.org,
                                     timeout=self._timeout_ms)
        self._client = client
        self._write_api = client.write_api()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.close()  # type: ignore[attr-defined]
            self._client = None

    async def write(self, batches: Sequence[ReadingBatch]) -> None:
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.domain.write_precision import WritePrecision

        if self._write_api is None:
            raise RuntimeError("InfluxV2Sink used outside 'async with'")
        body = self.encoder.encode(batches)
        if not body:
            return
        try:
            await self._write_api.write(  # type: ignore[attr-defined]
                bucket=self.bucket, org=self.org, record=body,
                write_precision=WritePrecision.NS)
        except InfluxDBError as exc:
            response = getattr(exc, "response", None)
            status = getattr(response, "status", None) or 0
            headers = getattr(response, "headers", None) or {}
            raise classify("influxdb v2", self.url, int(status), str(exc.message or exc),
                           headers.get("Retry-After")) from exc
        except (OSError, TimeoutError) as exc:
            raise RetryableSinkError(
                f"influxdb v2 at {self.url}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # aiohttp's client errors, mapped at the boundary
            if type(exc).__module__.startswith("aiohttp"):
                raise RetryableSinkError(
                    f"influxdb v2 at {self.url}: {type(exc).__name__}: {exc}") from exc
            raise
