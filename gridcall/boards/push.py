"""Upload the data source, the folder and the dashboards through Grafana's HTTP API.

Why httpx and not the grafana-client package: grafana-client depends on niquests, which
pulls in urllib3-future, and urllib3-future installs itself *as* ``urllib3``, silently
replacing urllib3 for every package in the environment (requests, influxdb-client...).
We avoid it rather than neutralise it: the four calls we need are plain JSON over HTTP,
and httpx is already a dependency (the API tests, the InfluxDB tests).

Calls, in order (a service-account token, ``Authorization: Bearer``):

1. ``GET /api/folders/{uid}``, and ``POST /api/folders`` if it is missing;
2. ``GET /api/datasources/uid/{uid}``, then ``PUT`` it there or ``POST /api/datasources``;
3. ``POST /api/dashboards/db`` per dashboard with ``overwrite: true`` in the folder.

Every failure raises :class:`GrafanaError` with a message for people: which step, what
Grafana said, and what to do (401 token, 403 role, 409/412 conflicts, unreachable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx

from gridcall.boards.grafana import JSON


class GrafanaError(RuntimeError):
    """A push step failed; the message says which step, what Grafana answered and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PushedDashboard:
    uid: str
    url: str
    version: int


@dataclass(frozen=True, slots=True)
class PushResult:
    folder: str
    folder_created: bool
    datasource: str
    datasource_created: bool
    dashboards: tuple[PushedDashboard, ...] = field(default=())


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200].strip() or resp.reason_phrase
    if isinstance(body, dict):
        return " / ".join(str(body[k]) for k in ("status", "message") if body.get(k)) or str(
            body)[:200]
    return str(body)[:200]


class GrafanaClient:
    """A session with one Grafana; use as a context manager."""

    def __init__(self, url: str, token: str, *, timeout: float = 15.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise GrafanaError(f"Grafana URL {url!r}: give http:// or https://")
        if not token:
            raise GrafanaError("the Grafana token is empty")
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._http.close()

    def call(self, method: str, path: str, what: str, *, body: JSON | None = None,
             missing_ok: bool = False) -> Any:
        """One API call; the decoded JSON answer, or None for a 404 when ``missing_ok``."""
        try:
            resp = self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise GrafanaError(f"{what}: Grafana at {self.url} did not answer in time "
                               f"({method} {path})") from None
        except httpx.TransportError as exc:
            raise GrafanaError(f"{what}: cannot reach Grafana at {self.url}: "
                               f"{exc or type(exc).__name__}") from None
        code = resp.status_code
        if code == 404 and missing_ok:
            return None
        if code == 401:
            raise GrafanaError(
                f"{what}: Grafana at {self.url} refused the token (401 Unauthorized: "
                f"{_message(resp)}). Give a service-account token of this Grafana in the "
                "variable --token-env names.", code)
        if code == 403:
            raise GrafanaError(
                f"{what}: the token may not do this (403 Forbidden: {_message(resp)}). Data "
                "sources need a token with the Admin role; folders and dashboards Editor.",
                code)
        if code == 412:
            raise GrafanaError(
                f"{what}: Grafana refused it (412 Precondition Failed: {_message(resp)}): "
                "another dashboard in the folder has the same title, or a plugin owns this "
                "uid. Rename or delete that dashboard in Grafana, then push again.", code)
        if code == 409:
            raise GrafanaError(
                f"{what}: conflict (409: {_message(resp)}): something of the same name but "
                "another uid exists in Grafana. Delete or rename it, then push again.", code)
        if code >= 400:
            raise GrafanaError(f"{what}: HTTP {code} from {method} {path}: {_message(resp)}",
                               code)
        try:
            return resp.json()
        except ValueError:
            raise GrafanaError(f"{what}: {self.url}{path} answered HTTP {code} but not with "
                               "JSON: is this Grafana's URL?", code) from None

    def ensure_folder(self, uid: str, title: str) -> bool:
        """The folder exists afterwards; True if it was created now."""
        if self.call("GET", f"/api/folders/{uid}", f"folder {uid}", missing_ok=True):
            return False
        self.call("POST", "/api/folders", f"create folder {uid}",
                  body={"uid": uid, "title": title})
        return True

    def upsert_datasource(self, body: JSON) -> bool:
        """Create or update the data source by uid; True if it was created."""
        uid = body["uid"]
        what = f"data source {body['name']!r} (uid {uid})"
        if self.call("GET", f"/api/datasources/uid/{uid}", what, missing_ok=True):
            self.call("PUT", f"/api/datasources/uid/{uid}", f"update {what}", body=body)
            return False
        self.call("POST", "/api/datasources", f"create {what}", body=body)
        return True

    def put_dashboard(self, dashboard: JSON, folder_uid: str) -> PushedDashboard:
        """Create or overwrite a dashboard by uid in the folder."""
        # Grafana matches by uid when "id" is null; a stale numeric id would be refused
        sent = {**dashboard, "id": None}
        answer = self.call(
            "POST", "/api/dashboards/db", f"dashboard {dashboard.get('uid')!r}",
            body={"dashboard": sent, "folderUid": folder_uid, "overwrite": True,
                  "message": "gridcall boards push"})
        if not isinstance(answer, dict):
            raise GrafanaError(f"dashboard {dashboard.get('uid')!r}: unexpected answer "
                               f"{str(answer)[:200]}")
        return PushedDashboard(uid=str(answer.get("uid", dashboard.get("uid"))),
                               url=self.url + str(answer.get("url", "")),
                               version=int(answer.get("version", 0)))


def push(url: str, token: str, *, datasource: JSON, dashboards: Sequence[JSON],
         folder_uid: str, folder_title: str, timeout: float = 15.0) -> PushResult:
    """Folder, then data source, then every dashboard; stops at the first failure with a
    :class:`GrafanaError`."""
    with GrafanaClient(url, token, timeout=timeout) as grafana:
        folder_created = grafana.ensure_folder(folder_uid, folder_title)
        ds_created = grafana.upsert_datasource(datasource)
        pushed = tuple(grafana.put_dashboard(d, folder_uid) for d in dashboards)
    return PushResult(folder=folder_uid, folder_created=folder_created,
                      datasource=str(datasource["uid"]), datasource_created=ds_created,
                      dashboards=pushed)
