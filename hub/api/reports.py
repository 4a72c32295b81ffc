"""Calls from people (issue 18, item 2) and notes with photos (item 6): the routes and their
models.

- ``POST /v1/reports``: a unit's (or a person's) token files a report: a matter of the
  catalog or ``UNCLASSIFIED``, a grid or a GPS point in the caller's subtree, a
  description, 0-5 photos (base64 JPEG or PNG, checked by content). It goes through the
  desk (:mod:`gridcall.hub.desk.reporting`): opens an alert, or joins the open alert of
  the same matter at the same place as evidence. ``client_ref`` makes a retry safe.
- ``GET /v1/reports``, ``GET /v1/reports/{id}``: the reporter follows it;
  ``POST /v1/reports/{id}/rating``: once its alert is closed, rates the handling.
- ``POST /v1/public/reports`` (no token): residents, when ``hub.reports.public.enabled``;
  rate-limited per client address, landing in triage; the answer's ``follow_key`` is the
  bearer token of ``GET /v1/public/reports/{id}`` and its rating.
- ``POST /v1/alerts/{id}/notes``: a note with optional photos, no state change;
  ``GET /v1/alerts/{id}/photos/{photo}``: a photo of the alert, to units that may see it.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections import deque
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field

from gridcall.config import ConfigSet, Unit
from gridcall.config.reports import MAX_PHOTOS, ReportSettings
from gridcall.hub.api.alerts import alert_detail
from gridcall.hub.api.auth import AlertId, Caller, CallerPerson, inside, visible
from gridcall.hub.api.models import (
    ACTION_ERRORS,
    ERRORS,
    OUTSIDE,
    AlertDetail,
    ApiError,
    Body,
    Out,
    Problem,
)
from gridcall.hub.desk.desk import BadAction, Desk, NotFound, Unchanged
from gridcall.hub.desk.intake import NowhereKnown, locate
from gridcall.hub.desk.lifecycle import IllegalTransition, Rating
from gridcall.hub.desk.photos import (
    PHOTO_ID,
    BadPhoto,
    Photo,
    PhotoStore,
    PhotoTooLarge,
    check,
)
from gridcall.hub.desk.reporting import AlreadyRated, Reporting, ReportView
from gridcall.hub.desk.reports import PUBLIC, NoSuchReport
from gridcall.wire import AlertStatus
from gridcall.wire.clock import Clock, ns

PHOTO_ROUTES = r"^/v1/(reports|public/reports|alerts/[^/]+/notes)$"
"""The routes whose bodies carry photos: the body guard lets them be larger
(:meth:`gridcall.config.reports.ReportSettings.max_body_bytes`)."""


def photo_routes(settings: ReportSettings) -> str:
    """:data:`PHOTO_ROUTES`, less the public intake unless it is on and takes photos: a
    body from anyone without a token is read at ``api.max_body_bytes`` at most."""
    if settings.public.enabled and settings.public.photos:
        return PHOTO_ROUTES
    return r"^/v1/(reports|alerts/[^/]+/notes)$"
ReportId = Annotated[str, Path(pattern=r"^R[0-9]{6,}$")]
PhotoId = Annotated[str, Path(pattern=PHOTO_ID.pattern)]
Point = Annotated[list[Annotated[float, Field(ge=-180, le=180)]],
                  Field(min_length=2, max_length=2,
                        description="[lon, lat] in WGS 84 (GeoJSON order).")]

PHOTO_ERRORS: dict[int | str, dict[str, Any]] = {413: {
    "model": Problem, "description": "A photo larger than hub.reports.photo_max_bytes, or a "
    "body larger than the route takes."}}


class PhotoIn(Body):
    data: str = Field(description="The image's bytes in base64 (JPEG or PNG; what it is "
                      "is read from its content, not from a name or type).",
                      max_length=32 * 2**20)


class ReportBody(Body):
    matter: str = Field(default="UNCLASSIFIED", max_length=64,
                        description="A matter code of the catalog; UNCLASSIFIED (the "
                        "default): triage decides.")
    grid: str | None = Field(default=None, max_length=64,
                             description="The grid it is in; or give `point`.")
    point: Point | None = None
    description: str = Field(min_length=1, max_length=2000)
    photos: list[PhotoIn] = Field(default_factory=list, max_length=MAX_PHOTOS)
    client_ref: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Your own id for this report: filing it again with the same "
                    "client_ref answers the report filed first (a retry files nothing "
                    "twice).")


class PublicReportBody(Body):
    matter: str = Field(default="UNCLASSIFIED", max_length=64,
                        description="What the resident thinks it is; it lands in triage "
                        "(UNCLASSIFIED) whatever it says.")
    grid: str | None = Field(default=None, max_length=64)
    point: Point | None = None
    description: str = Field(min_length=1, max_length=2000)
    photos: list[PhotoIn] = Field(default_factory=list, max_length=MAX_PHOTOS)


class RatingBody(Body):
    rating: Rating = Field(description="satisfied (满意), basically_satisfied (基本满意), "
                           "dissatisfied (不满意).")
    note: str = Field(default="", max_length=2000)


class NoteBody(Body):
    note: str = Field(default="", max_length=2000)
    photos: list[PhotoIn] = Field(default_factory=list, max_length=MAX_PHOTOS)


class ReportOut(Out):
    report_id: str
    filed_at: int
    unit: str = Field(description="The reporter's unit, or `public`.")
    person: str
    matter: str = Field(description="The matter the reporter chose.")
    taken_as: str = Field(description="The matter the desk took it as (UNCLASSIFIED for "
                          "the public intake: triage).")
    grid: str
    point: list[float] | None
    description: str
    photos: list[str] = Field(description="Photo ids: GET /v1/alerts/{alert_id}/photos/{id}.")
    client_ref: str
    alert_id: str = Field(description="The alert it opened or joined (empty only while "
                          "the desk has not taken it yet).")
    joined: Literal["open", "evidence", "reopen"] | None = Field(
        description="open: it opened the alert; evidence: it joined the open alert of the "
                    "same matter at the same place; reopen: it reopened a closed one.")
    state: AlertStatus | None = Field(description="The alert's state now.")
    resolved: bool = Field(description="The alert is closed (resolved or a false alarm).")
    rateable: bool = Field(description="It may be rated now (closed, not rated yet).")
    rating: Rating | None
    rated_at: int | None

    @classmethod
    def of(cls, v: ReportView) -> ReportOut:
        f = v.report.filed
        return cls(
            report_id=v.report.report_id, filed_at=v.report.filed_at, unit=f.unit,
            person=f.person, matter=f.matter, taken_as=f.taken_as, grid=f.grid,
            point=list(f.point) if f.point is not None else None,
            description=f.description, photos=list(f.photos), client_ref=f.client_ref,
            alert_id=v.report.alert_id, joined=v.report.joined,
            state=v.alert.state if v.alert is not None else None,
            resolved=v.alert is not None and not v.alert.is_open, rateable=v.rateable,
            rating=v.rating.rating if v.rating is not None else None,
            rated_at=v.rating.at if v.rating is not None else None)


class ReportList(Out):
    count: int
    reports: list[ReportOut]


class PublicReportOut(Out):
    report_id: str
    follow_key: str = Field(description="Shown once: the bearer token to follow and rate "
                            "this report (GET /v1/public/reports/{id}).")
    report: ReportOut


class RateLimit:
    """At most ``per`` requests per client address in any ``window_ns`` (a sliding
    window on the desk's clock), in memory: a restart forgets it."""

    def __init__(self, per: int, window_ns: int, clock: Clock) -> None:
        self.per = per
        self.window_ns = window_ns
        self.clock = clock
        self._seen: dict[str, deque[int]] = {}

    def take(self, address: str) -> int | None:
        """None if the address may go on (counted); else seconds until it may."""
        now = self.clock()
        seen = self._seen.setdefault(address, deque())
        while seen and seen[0] <= now - self.window_ns:
            seen.popleft()
        if len(seen) >= self.per:
            return max(1, -(-(seen[0] + self.window_ns - now) // 10**9))
        seen.append(now)
        if len(self._seen) > 100_000:  # forget the quietest addresses first
            for key in [k for k, v in self._seen.items() if not v][:50_000]:
                del self._seen[key]
        return None


_follow = HTTPBearer(auto_error=False, description="A public report's follow key.")
FollowKey = Annotated[HTTPAuthorizationCredentials | None, Depends(_follow)]


def router(desk: Desk, cfg: ConfigSet, clock: Clock, photos: PhotoStore) -> APIRouter:
    app = APIRouter()
    settings = cfg.hub.reports
    reporting = Reporting.of(desk)
    limit = RateLimit(settings.public.per_address, ns(settings.public.window), clock)

    def decode(given: list[PhotoIn]) -> list[tuple[Photo, bytes]]:
        out: list[tuple[Photo, bytes]] = []
        for i, p in enumerate(given):
            try:
                data = base64.b64decode(p.data, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(422, f"photos.{i}: not base64") from None
            try:
                out.append((check(data, max_bytes=settings.photo_max_bytes), data))
            except PhotoTooLarge as exc:
                raise ApiError(413, f"photos.{i}: {exc}") from None
            except BadPhoto as exc:
                raise ApiError(422, f"photos.{i}: {exc}") from None
        return out

    async def store(checked: list[tuple[Photo, bytes]]) -> tuple[str, ...]:
        for photo, data in checked:
            await photos.put(photo, data)
        return tuple(dict.fromkeys(p.id for p, _ in checked))

    def where(caller: Unit | None, grid: str | None,
              point: list[float] | None) -> tuple[str, tuple[float, float] | None]:
        at = (point[0], point[1]) if point is not None else None
        try:
            unit = locate(cfg, grid=grid, point=at)
        except NowhereKnown as exc:
            raise ApiError(422, str(exc)) from None
        if caller is not None and not inside(unit.path, caller.path):
            raise ApiError(403, OUTSIDE)
        return unit.id, at

    def may_follow(caller: Unit, person: str, v: ReportView) -> bool:
        f = v.report.filed
        if f.unit == caller.id and (not person or f.person in ("", person)):
            return True
        grid = cfg.units.get(f.grid)
        return grid is not None and inside(grid.path, caller.path)

    async def view(rid: str) -> ReportView:
        try:
            return await reporting.view(rid, clock())
        except NoSuchReport as exc:
            raise ApiError(404, str(exc)) from None

    @app.post("/v1/reports", response_model=ReportOut, status_code=201, tags=["reports"],
              responses={**ERRORS, **PHOTO_ERRORS,
                         200: {"model": ReportOut, "description": "Filed before under "
                               "this client_ref: the report as it stands."}})
    async def file_report(unit: Caller, person: CallerPerson, body: ReportBody,
                          response: Response) -> ReportOut:
        """File a report (a grid worker's, or any unit's): it goes through the desk like
        a sensor's anomaly (tier, route, deadlines, incidents), and a report of the same
        matter at the same place joins the open alert as evidence."""
        grid, point = where(unit, body.grid, body.point)
        checked = decode(body.photos)
        if desk.policy.matter(body.matter) is None:
            raise ApiError(422, f"matter {body.matter!r} is not in the catalog; "
                                "UNCLASSIFIED sends it to triage")
        ids = await store(checked)
        try:
            report, new = await reporting.file(
                unit=unit.id, person=person, matter=body.matter, grid=grid, point=point,
                description=body.description, photos=ids, now=clock(),
                client_ref=body.client_ref or "")
        except BadAction as exc:
            raise ApiError(422, str(exc)) from None
        if not new:
            response.status_code = 200
        return ReportOut.of(await view(report.report_id))

    @app.get("/v1/reports", response_model=ReportList, responses=ERRORS, tags=["reports"])
    async def list_reports(
        unit: Caller, person: CallerPerson,
        area: Annotated[bool, Query(description="Every report in your area (a town's "
                                    "triage), not only those your token filed.")] = False,
    ) -> ReportList:
        """The reports your token filed (a unit's token: the unit's), oldest first; with
        ``area=true`` every report whose place is in your subtree, the public's too."""
        await reporting.start(clock())
        if area:
            chosen = [r for r in reporting.book.all()
                      if (g := cfg.units.get(r.filed.grid)) is not None
                      and inside(g.path, unit.path)]
        else:
            chosen = reporting.mine(unit.id, person)
        found = [ReportOut.of(await view(r.report_id)) for r in chosen]
        return ReportList(count=len(found), reports=found)

    @app.get("/v1/reports/{report_id}", response_model=ReportOut, responses=ERRORS,
             tags=["reports"])
    async def get_report(unit: Caller, person: CallerPerson, report_id: ReportId
                         ) -> ReportOut:
        """A report: its reporter's unit, or a unit whose area it is in, may follow it."""
        v = await view(report_id)
        if not may_follow(unit, person, v):
            raise ApiError(403, OUTSIDE)
        return ReportOut.of(v)

    async def rate(rid: str, rating: Rating, note: str) -> ReportOut:
        try:
            return ReportOut.of(await reporting.rate(rid, rating, now=clock(), note=note))
        except NoSuchReport as exc:
            raise ApiError(404, str(exc)) from None
        except (IllegalTransition, AlreadyRated) as exc:
            raise ApiError(409, str(exc)) from None

    @app.post("/v1/reports/{report_id}/rating", response_model=ReportOut,
              responses=ACTION_ERRORS, tags=["reports"])
    async def rate_report(unit: Caller, person: CallerPerson, report_id: ReportId,
                          body: RatingBody) -> ReportOut:
        """The reporter rates the handling once the alert is closed (resolved or a false
        alarm): 满意, 基本满意 or 不满意, a step of the alert's ledger counted in the
        satisfaction rate. Only the reporter (their unit's token, or their own) may; a
        second rating is a 409."""
        v = await view(report_id)
        f = v.report.filed
        if f.unit != unit.id or (person and f.person not in ("", person)):
            raise ApiError(403, "only the report's reporter rates it")
        return await rate(report_id, body.rating, body.note)

    # ------------------------------------------------------------------ the public

    def address(request: Request) -> str:
        return request.client.host if request.client is not None else "unknown"

    def public_on() -> None:
        if not settings.public.enabled:
            raise ApiError(404, "the public intake is off (hub.reports.public.enabled)")

    def follow_key(rid: str, creds: HTTPAuthorizationCredentials | None) -> None:
        if creds is None or not reporting.follows(rid, creds.credentials):
            raise ApiError(401, "send the report's follow key: 'Authorization: Bearer "
                                "<follow_key>'")

    @app.post("/v1/public/reports", response_model=PublicReportOut, status_code=201,
              tags=["public"], openapi_extra={"security": []},
              responses={404: {"model": Problem, "description": "The public intake is "
                               "off."}, **PHOTO_ERRORS,
                         429: {"model": Problem, "description": "Too many reports from "
                               "this address; Retry-After says when."}})
    async def public_report(request: Request, body: PublicReportBody) -> PublicReportOut:
        """A resident's report, without a token, when the town turned the public intake
        on (off by default). It lands in triage (UNCLASSIFIED, handled by the town of the
        place: hub.reports.triage). Rate-limited per client address."""
        public_on()
        if body.photos and not settings.public.photos:
            raise ApiError(422, "the public intake takes no photos here "
                                "(hub.reports.public.photos)")
        grid, point = where(None, body.grid, body.point)
        checked = decode(body.photos)
        wait = limit.take(address(request))
        if wait is not None:
            raise ApiError(429, f"too many reports from your address; try again in "
                                f"{wait} s", headers={"Retry-After": str(wait)})
        ids = await store(checked)
        key = secrets.token_urlsafe(24)
        report, _ = await reporting.file(
            unit=PUBLIC, person="", matter=body.matter if desk.policy.matter(body.matter)
            else "UNCLASSIFIED", grid=grid, point=point, description=body.description,
            photos=ids, now=clock(), follow_key=key)
        return PublicReportOut(report_id=report.report_id, follow_key=key,
                               report=ReportOut.of(await view(report.report_id)))

    @app.get("/v1/public/reports/{report_id}", response_model=ReportOut, tags=["public"],
             responses={401: {"model": Problem, "description": "No follow key, or not "
                              "this report's."},
                        404: {"model": Problem, "description": "No such report, or the "
                              "public intake is off."}})
    async def public_get(report_id: ReportId, creds: FollowKey) -> ReportOut:
        """A resident follows their report with its follow key."""
        public_on()
        await reporting.start(clock())
        follow_key(report_id, creds)
        return ReportOut.of(await view(report_id))

    @app.post("/v1/public/reports/{report_id}/rating", response_model=ReportOut,
              tags=["public"],
              responses={401: {"model": Problem, "description": "No follow key, or not "
                               "this report's."},
                         404: {"model": Problem, "description": "No such report, or the "
                               "public intake is off."},
                         409: {"model": Problem, "description": "Not closed yet, or "
                               "rated already."}})
    async def public_rate(report_id: ReportId, creds: FollowKey,
                          body: RatingBody) -> ReportOut:
        """A resident rates the handling of their report once it is closed."""
        public_on()
        await reporting.start(clock())
        follow_key(report_id, creds)
        return await rate(report_id, body.rating, body.note)

    # ------------------------------------------------------------------ notes, photos

    @app.post("/v1/alerts/{alert_id}/notes", response_model=AlertDetail,
              responses={**ACTION_ERRORS, **PHOTO_ERRORS}, tags=["actions"],
              operation_id="note")
    async def note(unit: Caller, person: CallerPerson, alert_id: AlertId,
                   body: NoteBody) -> AlertDetail:
        """A note on the record, with 0-5 photos (before and after photos of a
        disposal), changing nothing else: in any state, closed too. The same note again
        as the alert's last step writes nothing (a retry is safe)."""
        await visible(desk, unit, alert_id)
        checked = decode(body.photos)
        ids = await store(checked)
        try:
            change = await desk.act(alert_id, "note", unit.id, now=clock(), note=body.note,
                                    person=person, photos=ids)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        except BadAction as exc:
            raise ApiError(422, str(exc)) from None
        except IllegalTransition as exc:
            raise ApiError(409, str(exc)) from None
        except Unchanged as exc:
            return await alert_detail(desk, exc.state)
        return await alert_detail(desk, change.alert)

    @app.get("/v1/alerts/{alert_id}/photos/{photo_id}", tags=["alerts"],
             response_class=Response, responses={
                 **ERRORS, 200: {"description": "The photo as it was sent.",
                                 "content": {"image/jpeg": {}, "image/png": {}}}})
    async def photo(unit: Caller, alert_id: AlertId, photo_id: PhotoId) -> Response:
        """A photo of the alert (a report's or a note's), to a unit that may see the
        alert; 403 "outside your area" to any other."""
        state = await visible(desk, unit, alert_id)
        if not any(photo_id in t.photos for t in await desk.history(state.alert_id)):
            raise ApiError(404, f"{alert_id} has no photo {photo_id}")
        data = await photos.get(photo_id)
        if data is None:
            raise ApiError(404, f"photo {photo_id} is not in the hub's photo store")
        media = "image/png" if photo_id.endswith(".png") else "image/jpeg"
        return Response(data, media_type=media,
                        headers={"Cache-Control": "private, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})

    return app


__all__ = [
    "PHOTO_ROUTES",
    "NoteBody",
    "PhotoIn",
    "PublicReportBody",
    "RateLimit",
    "RatingBody",
    "ReportBody",
    "ReportList",
    "ReportOut",
    "photo_routes",
    "router",
]
