"""InfluxDB writers: v1 ``/write`` over aiohttp, and v2 ``/api/v2/write`` through
influxdb-client.

Both encode reading batches with :class:`~gridcall.hub.ingest.sinks.lineproto.LineEncoder`
(nanosecond
precision) and send them in one request; they never retry (the hub's ingest runner
does). Every failure is classified into the :mod:`gridcall.hub.ingest.sinks.base` errors before it
leaves
the sink, and messages name the sink and the URL without credentials.

Which server takes which:

- InfluxDB 1.x: v1 only (``/write?db=&rp=``, user and password);
- InfluxDB 2.x: v2 (org, bucket, token), and v1 through a DBRP mapping;
- InfluxDB 3.x: both (``db`` is the database, the token goes as the v1 password);
- VictoriaMetrics: both; it ignores org, bucket and token and turns field ``value`` of
  measurement ``reading`` into the metric ``reading_value``, at millisecond precision.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from base64 import b64encode
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from gzip import compress as gzip_compress
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import aiohttp

from gridcall.hub.ingest.sinks.base import (
    BatchTooLargeError,
    RejectedPointsError,
    RetryableSinkError,
    SinkAuthError,
    SinkConfigError,
    SinkError,
)
from gridcall.hub.ingest.sinks.lineproto import LineEncoder
from gridcall.wire import ReadingBatch
from gridcall.wire.broker import TlsFileError
from gridcall.wire.errors import InvariantError
from gridcall.wire.https import HttpsSettings

if TYPE_CHECKING:
    from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
    from influxdb_client.client.write_api_async import WriteApiAsync

log = logging.getLogger(__name__)

_DROPPED = re.compile(r"dropped=(\d+)")
_MAX_DETAIL = 400


def public_url(url: str) -> str:
    """``url`` without user, password, query or fragment: safe to log and to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def checked_url(url: str, sink: str) -> str:
    """``url`` without a trailing slash, or ValueError if it is not an http(s) URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"{sink}: bad URL {public_url(url)!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{sink}: URL must be http(s)://host[:port], got {public_url(url)!r}")
    return url.rstrip("/")


def server_message(body: str) -> str:
    """The error text of an InfluxDB answer: ``error`` (1.x) or ``message`` (2.x/3.x)
    of a JSON body, else the body itself; shortened, on one line."""
    text = body.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                text = data[key]
                break
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; None if absent or a date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


def classify(sink: str, url: str, status: int, body: str,
             retry_after: str | None = None) -> SinkError:
    """The error for an HTTP failure, saying what the runner must do with the data.

    ``url`` is shown without credentials; ``body`` is the server's answer.
    """
    detail = f"{sink} at {public_url(url)}: HTTP {status}: {server_message(body) or '(no body)'}"
    if status in (400, 422):
        match = _DROPPED.search(body)
        return RejectedPointsError(detail, status=status,
                                   dropped=int(match.group(1)) if match else None)
    if status == 413:
        return BatchTooLargeError(detail, status=status)
    if status in (401, 403):
        return SinkAuthError(detail, status=status)
    if status == 429 or status >= 500:
        return RetryableSinkError(detail, status=status,
                                  retry_after=parse_retry_after(retry_after))
    if status in (404, 405):
        return SinkConfigError(detail, status=status)
    return SinkError(detail, status=status)


DEFAULT_MAX_BODY_BYTES = 10_000_000
"""Bodies above this are refused before sending (:class:`BatchTooLargeError`): InfluxDB
1.x and 2.x take 25 MB by default, 3.x 10 MiB. Over its limit InfluxDB 1.x answers 413
and closes the connection at once, which an HTTP/1.1 client still sending its body sees
as a reset connection, not as the 413, so the limit must be kept on this side."""


def check_size(sink: str, url: str, size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise BatchTooLargeError(f"{sink} at {public_url(url)}: request body of {size} bytes "
                                 f"is over max_body_bytes={limit}; split the batch")


def connection_error(sink: str, url: str, exc: BaseException) -> RetryableSinkError:
    reason = str(exc).replace(url, public_url(url)) or "no detail"
    return RetryableSinkError(f"{sink} at {public_url(url)}: {type(exc).__name__}: {reason}")


def tls_context(sink: str, url: str, https: HttpsSettings | None) -> ssl.SSLContext:
    """The TLS context for a sink (used only for an ``https://`` url); a warning when it
    does not verify the server; SinkConfigError naming a CA or certificate file that
    cannot be used."""
    settings = https or HttpsSettings()
    if not settings.verify and url.startswith("https://"):
        log.warning("%s at %s: TLS verification is OFF (influx.tls.verify: false): anyone "
                    "on the path can read and change what is written", sink, public_url(url))
    try:
        return settings.context()
    except TlsFileError as exc:
        raise SinkConfigError(f"{sink} at {public_url(url)}: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the server answered to one request: status, body, Retry-After."""

    status: int
    text: str
    retry_after: str | None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


class InfluxV1Sink:
    """``POST /write?db=&rp=&precision=ns`` with optional user and password (HTTP basic;
    for InfluxDB 3 the password is the token), given as arguments or in the URL.

    Sent with aiohttp, one keep-alive connection pool per sink: a 5,000-point request
    measured 0.95 ms of the hub's CPU through aiohttp against 2.2 ms through httpx (see
    docs/benchmarks.md, "CPU per reading"), and at the hub's rates that is a tenth of a
    worker's CPU.

    - A missing database is created (``CREATE DATABASE``) and the write repeated, as
      Telegraf does, unless ``create_database`` is False: then it is a
      :class:`SinkConfigError`. (InfluxDB 1.x answers 404 before reading the body; for a
      body of several MB the client may see a reset connection instead, which is
      retryable, so create databases ahead for large first writes.)
    - ``gzip`` compresses the body (level 1); ``max_body_bytes`` applies to what is sent.
    - InfluxDB 1.x stores the good points of a request that has bad ones ("partial
      write"): :class:`RejectedPointsError` then says how many were ``dropped``.
    """

    sink_name = "influxdb v1"

    def __init__(self, url: str, *, database: str, encoder: LineEncoder,
                 retention_policy: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0,
                 create_database: bool = True, gzip: bool = False,
                 max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
                 https: HttpsSettings | None = None) -> None:
        if not database:
            raise ValueError(f"{self.sink_name}: database name is empty")
        self.url = checked_url(url, self.sink_name)
        self.database = database
        self.retention_policy = retention_policy
        self.create_database = create_database
        self.encoder = encoder
        self.gzip = gzip
        self.max_body_bytes = max_body_bytes
        params = {"db": database, "precision": "ns"}
        if retention_policy:
            params["rp"] = retention_policy
        parts = urlsplit(self.url)
        if username is None and parts.username is not None:  # credentials in the URL
            username, password = unquote(parts.username), unquote(parts.password or "")
        self._auth: dict[str, str] = {}
        """HTTP basic, sent as the header itself (aiohttp deprecates its BasicAuth)."""
        if username:
            pair = b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            self._auth["Authorization"] = f"Basic {pair}"
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        netloc = f"{host}:{parts.port}" if parts.port is not None else f"{host}"
        self._base = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        """The URL without credentials: they go in the Authorization header."""
        self._write_url = f"{self._base}/write?{urlencode(params)}"
        self._timeout = timeout
        self._https = https
        self._http: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"InfluxV1Sink({public_url(self.url)!r}, database={self.database!r})"

    async def __aenter__(self) -> Self:
        if self._http is not None:
            raise InvariantError(f"{self!r} is already open")
        context = tls_context(self.sink_name, self.url, self._https)
        self._http = aiohttp.ClientSession(
            headers=self._auth,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            connector=aiohttp.TCPConnector(ssl=context))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def write(self, batches: Sequence[ReadingBatch]) -> None:
        await self.write_lines(self.encoder.encode(batches))

    async def write_lines(self, body: bytes) -> None:
        """Write line protocol made elsewhere (the hub's indicators), same rules."""
        if not body:
            return
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            body = gzip_compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        check_size(self.sink_name, self.url, len(body), self.max_body_bytes)
        resp = await self._post(self._write_url, content=body, headers=headers)
        if (resp.status == 404 and self.create_database
                and "database not found" in resp.text and await self._create_database()):
            resp = await self._post(self._write_url, content=body, headers=headers)
        if not resp.is_success:
            raise classify(self.sink_name, self.url, resp.status, resp.text,
                           resp.retry_after)

    async def _create_database(self) -> bool:
        quoted = self.database.replace("\\", "\\\\").replace('"', '\\"')
        resp = await self._post(f"{self._base}/query",
                                data={"q": f'CREATE DATABASE "{quoted}"'})
        if resp.is_success and '"error"' not in resp.text:
            log.info("created InfluxDB database %r at %s", self.database, public_url(self.url))
            return True
        return False

    async def _post(self, url: str, *, content: bytes | None = None,
                    data: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None) -> _Answer:
        if self._http is None:
            raise InvariantError(f"{self!r} used outside 'async with'")
        try:
            async with self._http.post(url, data=content if content is not None else data,
                                       headers=headers) as resp:
                text = (await resp.read()).decode("utf-8", "replace")
                return _Answer(resp.status, text, resp.headers.get("Retry-After"))
        except aiohttp.InvalidURL as exc:
            raise SinkConfigError(f"{self.sink_name} at {public_url(self.url)}: "
                                  f"invalid URL") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise connection_error(self.sink_name, self.url, exc) from exc


class InfluxV2Sink:
    """Writes through influxdb-client's async write API (org, bucket, token)."""

    sink_name = "influxdb v2"

    def __init__(self, url: str, *, org: str, bucket: str, token: str,
                 encoder: LineEncoder, timeout: float = 10.0, gzip: bool = False,
                 max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
                 https: HttpsSettings | None = None) -> None:
        if not bucket:
            raise ValueError(f"{self.sink_name}: bucket name is empty")
        self.url = checked_url(url, self.sink_name)
        if urlsplit(url).username is not None or urlsplit(url).password is not None:
            raise ValueError(f"{self.sink_name}: credentials in the URL "
                             f"{public_url(url)!r} are not used; give a token")
        self.org = org
        self.bucket = bucket
        self.encoder = encoder
        self.gzip = gzip
        self.max_body_bytes = max_body_bytes
        self._token = token
        self._https = https
        self._timeout_ms = int(timeout * 1000)
        self._client: InfluxDBClientAsync | None = None
        self._write_api: WriteApiAsync | None = None

    def __repr__(self) -> str:
        return f"InfluxV2Sink({public_url(self.url)!r}, org={self.org!r}, bucket={self.bucket!r})"

    async def __aenter__(self) -> Self:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        if self._client is not None:
            raise InvariantError(f"{self!r} is already open")
        context = tls_context(self.sink_name, self.url, self._https)
        self._client = InfluxDBClientAsync(url=self.url, token=self._token, org=self.org,
                                           timeout=self._timeout_ms, enable_gzip=self.gzip,
                                           ssl_context=context,
                                           verify_ssl=context.verify_mode != ssl.CERT_NONE)
        self._write_api = self._client.write_api()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client, self._write_api = self._client, None, None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]

    async def write(self, batches: Sequence[ReadingBatch]) -> None:
        await self.write_lines(self.encoder.encode(batches))

    async def write_lines(self, body: bytes) -> None:
        """Write line protocol made elsewhere (the hub's indicators), same rules."""
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.domain.write_precision import WritePrecision

        if self._write_api is None:
            raise InvariantError(f"{self!r} used outside 'async with'")
        if not body:
            return
        # Checked before gzip (influxdb-client compresses inside): errs on the safe side.
        check_size(self.sink_name, self.url, len(body), self.max_body_bytes)
        try:
            await self._write_api.write(bucket=self.bucket, org=self.org, record=body,
                                        write_precision=cast(WritePrecision, WritePrecision.NS))
        except InfluxDBError as exc:
            raise self._classify(exc) from exc
        except aiohttp.InvalidURL as exc:
            raise SinkConfigError(f"{self.sink_name} at {public_url(self.url)}: "
                                  f"invalid URL") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise connection_error(self.sink_name, self.url, exc) from exc

    def _classify(self, exc: Any) -> SinkError:
        """Map influxdb-client's InfluxDBError/ApiException to our errors."""
        status = getattr(exc, "status", None)
        response = getattr(exc, "response", None)
        if not isinstance(status, int):
            status = getattr(response, "status", None)
        if not isinstance(status, int) or status == 0:
            return SinkError(f"{self.sink_name} at {public_url(self.url)}: "
                             f"{getattr(exc, 'message', None) or type(exc).__name__}")
        body = getattr(exc, "body", None) or getattr(response, "data", None) or b""
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        retry_after = getattr(exc, "retry_after", None)
        return classify(self.sink_name, self.url, status, str(body),
                        retry_after if isinstance(retry_after, str) else None)
