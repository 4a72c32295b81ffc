"""Closure control and audits over HTTP (docs/desk.md, "Closure control and audits"): the
closes awaiting approval and the audit queue of the caller's subtree, and the approving
level's and the auditor's actions on them. A grid's resolve or false alarm of a
high-tier alert needs no route of its own: ``POST .../resolve`` answers with the alert's
``pending_close`` set."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from gridcall.config import ConfigSet, Unit
from gridcall.hub.api.alerts import alert_detail
from gridcall.hub.api.auth import AlertId, Caller, CallerPerson, subtree, visible
from gridcall.hub.api.models import (
    ACTION_ERRORS,
    ERRORS,
    OUTSIDE,
    ActionBody,
    AlertDetail,
    AlertOut,
    ApiError,
    Body,
    Out,
)
from gridcall.hub.desk.audits import DEFAULT_AUDITS, approver_needed
from gridcall.hub.desk.desk import (
    BadAction,
    Change,
    Desk,
    NotFound,
    NotPermitted,
    OutsideSubtree,
    UnknownUnit,
)
from gridcall.hub.desk.lifecycle import AlertState, IllegalTransition
from gridcall.wire.clock import Clock


class RejectBody(Body):
    reason: str = Field(min_length=1, max_length=2000,
                        description="Why the close is rejected; required.")
    note: str = Field(default="", max_length=2000)


class AuditBody(Body):
    verdict: Literal["pass", "fail"]
    note: str = Field(default="", max_length=2000, description="What the auditor found; "
                      "required for a fail: the alert reopens with it as the reason.")


class PendingOut(Out):
    """A close awaiting approval."""

    alert: AlertOut
    requested: str = Field(description="resolve or false_alarm.")
    requested_by: str
    requested_at: int
    approver_level: str = Field(description="The level that approves it (closure.approval "
                                "in matters.yaml).")
    may_approve: bool = Field(description="Whether the caller may approve or reject it.")


class PendingList(Out):
    unit: str
    count: int
    pending: list[PendingOut]


class AuditItemOut(Out):
    """A closing in the audit queue (or audited)."""

    alert: AlertOut
    closed_at: int
    closed_by: str = Field(description="The unit whose step closed it.")
    closed_as: str = Field(description="resolved or false_alarm.")
    audit: str = Field(description="sampled (waiting for an auditor), pass.")


class AuditList(Out):
    unit: str
    status: str
    count: int
    audit_pass_rate: float | None = Field(description="Passed / audited over the alerts "
                                          "of the subtree whose latest closing was "
                                          "audited (a failed one reopened, so it counts "
                                          "in the indicators' audit-pass rate instead).")
    may_audit: bool = Field(description="Whether the caller may record verdicts "
                            "(audits.by in matters.yaml).")
    items: list[AuditItemOut]


def router(desk: Desk, cfg: ConfigSet, clock: Clock) -> APIRouter:
    """``/v1/approvals``, ``/v1/audits`` and the approve, reject and audit actions."""
    app = APIRouter()

    async def acting(unit: Unit, alert_id: str, *, do: str, person: str, note: str = "",
                     reason: str = "", verdict: str = "") -> AlertDetail:
        await visible(desk, unit, alert_id)
        try:
            change: Change
            if do == "approve":
                change = await desk.approve_close(alert_id, unit.id, now=clock(), note=note,
                                                  person=person)
            elif do == "reject":
                change = await desk.reject_close(alert_id, unit.id, now=clock(),
                                                 reason=reason, note=note, person=person)
            else:
                change = await desk.audit(alert_id, unit.id, verdict, now=clock(),
                                          note=note, person=person)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        except OutsideSubtree:
            raise ApiError(403, OUTSIDE) from None
        except NotPermitted as exc:
            raise ApiError(403, str(exc)) from None
        except IllegalTransition as exc:
            raise ApiError(409, str(exc)) from None
        except (BadAction, UnknownUnit) as exc:
            raise ApiError(422, str(exc)) from None
        return await alert_detail(desk, change.alert)

    async def closer(state: AlertState) -> str:
        """The unit whose step closed the alert (the approver, for a close that waited)."""
        history = await desk.history(state.alert_id)
        return next((t.actor for t in reversed(history)
                     if t.action in ("resolve", "false_alarm")), "")

    def pending_out(state: AlertState, caller: Unit) -> PendingOut:
        level = cfg.matters.closure.approver_level(state.tier) or "district"
        return PendingOut(
            alert=AlertOut.of(state, desk.incident_id(state.alert_id)),
            requested=state.pending, requested_by=state.pending_by,
            requested_at=state.pending_at, approver_level=level,
            may_approve=approver_needed(cfg.matters.closure, state, caller) is None)

    @app.get("/v1/approvals", response_model=PendingList, responses=ERRORS,
             tags=["closure and audits"])
    def approvals(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
    ) -> PendingList:
        """Closes awaiting approval in the subtree, oldest request first, each with the
        level that approves it and whether the caller may."""
        root = subtree(cfg, unit, of)
        found = desk.pending_approvals(unit=root.id)
        return PendingList(unit=root.id, count=len(found),
                           pending=[pending_out(s, unit) for s in found])

    @app.post("/v1/alerts/{alert_id}/approve", response_model=AlertDetail,
              responses=ACTION_ERRORS, tags=["closure and audits"], operation_id="approve")
    async def approve(unit: Caller, person: CallerPerson, alert_id: AlertId,
                      body: ActionBody | None = None) -> AlertDetail:
        """Approve the close pending on the alert (a unit of the approving level or
        above): the caller's own resolve or false alarm, drawn for audit like any
        closing. 403 below the approving level, 409 if no close is pending."""
        return await acting(unit, alert_id, do="approve", person=person,
                            note=(body or ActionBody()).note)

    @app.post("/v1/alerts/{alert_id}/reject", response_model=AlertDetail,
              responses=ACTION_ERRORS, tags=["closure and audits"], operation_id="reject")
    async def reject(unit: Caller, person: CallerPerson, alert_id: AlertId,
                     body: RejectBody) -> AlertDetail:
        """Reject the close pending on the alert, with a reason: it stays open and its
        deadlines run again, moved on by the time the request waited."""
        return await acting(unit, alert_id, do="reject", person=person, note=body.note,
                            reason=body.reason)

    @app.get("/v1/audits", response_model=AuditList, responses=ERRORS,
             tags=["closure and audits"])
    async def audit_queue(
        unit: Caller,
        of: Annotated[str | None, Query(alias="unit", description="A unit in your subtree "
                                        "(default: yours).")] = None,
        status: Annotated[Literal["sampled", "pass"], Query(
            description="sampled: the queue, waiting for an auditor; pass: audited and "
            "passed.")] = "sampled",
    ) -> AuditList:
        """The closings drawn for audit in the subtree (the district sees all), oldest
        closing first."""
        root = subtree(cfg, unit, of)
        found = await desk.audit_listing(unit=root.id, status=status)
        passed = await desk.audit_count(unit=root.id, status="pass")
        failed = await desk.audit_count(unit=root.id, status="fail")
        rate = passed / (passed + failed) if passed + failed else None
        items = [AuditItemOut(
            alert=AlertOut.of(s, desk.incident_id(s.alert_id)), closed_at=s.closed_at or 0,
            closed_by=await closer(s), closed_as=s.state, audit=s.audit) for s in found]
        rules = cfg.matters.audits or DEFAULT_AUDITS
        return AuditList(unit=root.id, status=status, count=len(items),
                         audit_pass_rate=rate, may_audit=rules.may_audit(unit.level),
                         items=items)

    @app.post("/v1/alerts/{alert_id}/audit", response_model=AlertDetail,
              responses=ACTION_ERRORS, tags=["closure and audits"], operation_id="audit")
    async def audit(unit: Caller, person: CallerPerson, alert_id: AlertId,
                    body: AuditBody) -> AlertDetail:
        """An auditor's verdict on the alert's latest closing (audits.by's level or
        above: 403 below it). A fail needs a note (422 without) and reopens the alert
        with it as the reason; a closing is audited once (409 the second time)."""
        return await acting(unit, alert_id, do="audit", person=person, note=body.note,
                            verdict=body.verdict)

    return app


