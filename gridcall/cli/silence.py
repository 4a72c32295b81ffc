"""``gridcall hub silence add|list|lift``: maintenance windows, through the running hub's
HTTP API (``/v1/silences``, docs/api.md), as the unit whose token is given: the desk is
the one writer of its ledgers, so the command asks it rather than writing the store.

Registered on the ``hub`` group by :mod:`gridcall.cli`. The API address and the token
come from ``--api``/``--token`` or ``GRIDCALL_API``/``GRIDCALL_TOKEN``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from gridcall.cli.common import Command, fail, out, typer_app

silence_app = typer_app("Silence an agent, a sensor, a grid or a matter for maintenance "
                        "(through the hub's API).")

Api = Annotated[str, typer.Option("--api", envvar="GRIDCALL_API", metavar="URL",
                                  help="The hub's API (gridcall hub run --api).")]
Token = Annotated[str, typer.Option("--token", envvar="GRIDCALL_TOKEN", metavar="TOKEN",
                                    help="Your unit's token (gridcall hub token issue).",
                                    show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
DEFAULT_API = "http://127.0.0.1:8470"


def _call(api: str, token: str, method: str, path: str,
          body: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> Any:
    """The API's JSON answer; exit 1 with its ``detail`` on a refusal, 2 if unreachable."""
    import httpx

    try:
        response = httpx.request(method, api.rstrip("/") + path, json=body, params=params,
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError as exc:
        raise fail(f"hub API at {api} did not answer: {exc}", 2) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise fail(f"{response.status_code}: {detail}", 1)
    return response.json()


def _when(ns_: int) -> str:
    from gridcall.wire.clock import utc_text

    return utc_text(ns_, with_seconds=False)


def _line(s: dict[str, Any]) -> str:
    """One silence on one line (a table would wrap at 80 columns)."""
    return (f"{s['silence_id']}  {s['status']:<7}  {s['scope']} {s['id']}  "
            f"{_when(s['start'])} → {_when(s['ends_at'])} UTC  by {s['author']}  "
            f"muted {s['muted']}  {s['reason']}")


@silence_app.command("add", cls=Command)
def silence_add(
    reason: Annotated[str, typer.Option(help="Who works on what (kept in the ledger).")],
    agent: Annotated[str | None, typer.Option(help="An edge agent (gateway) id.")] = None,
    sensor: Annotated[str | None, typer.Option(help="A sensor id.")] = None,
    grid: Annotated[str | None, typer.Option(help="A grid id.")] = None,
    matter: Annotated[str | None, typer.Option(help="A matter code (in your subtree).")
                      ] = None,
    for_: Annotated[str | None, typer.Option("--for", metavar="DURATION",
                                             help="How long: 90m, 8h, 7d.")] = None,
    until: Annotated[str | None, typer.Option(metavar="TIME", help="Until an ISO time "
                                              "(UTC unless it says).")] = None,
    start: Annotated[str | None, typer.Option(metavar="TIME", help="From an ISO time "
                                              "(default now).")] = None,
    api: Api = DEFAULT_API,
    token: Token = "",
    as_json: Json = False,
) -> None:
    """Silence one agent, sensor, grid or matter for maintenance.

    Its anomalies are kept as evidence but open no alert and send nothing. Longer than
    your level may set is refused with the level that may."""
    from gridcall.config.base import parse_duration
    from gridcall.wire.clock import from_iso

    scopes = {k: v for k, v in (("agent", agent), ("sensor", sensor), ("grid", grid),
                                ("matter", matter)) if v is not None}
    if len(scopes) != 1:
        raise fail("give exactly one of --agent, --sensor, --grid, --matter")
    if (for_ is None) == (until is None):
        raise fail("give exactly one of --for DURATION or --until TIME")
    if not token:
        raise fail("no token: --token or GRIDCALL_TOKEN (gridcall hub token issue UNIT)")
    ((kind, ident),) = scopes.items()
    body: dict[str, Any] = {"scope": kind, "id": ident, "reason": reason}
    try:
        if start is not None:
            body["start"] = from_iso(start)
        if until is not None:
            body["end"] = from_iso(until)
        else:
            body["duration_s"] = max(1, round(parse_duration(for_).total_seconds()))
    except ValueError as exc:
        raise fail(str(exc)) from None
    silence = _call(api, token, "POST", "/v1/silences", body)
    if as_json:
        typer.echo(json.dumps(silence, ensure_ascii=False))
        return
    out.print(f"{silence['silence_id']}: {kind} {escape(ident)} silenced "
              f"{_when(silence['start'])} → {_when(silence['end'])} UTC by "
              f"{silence['author']}", highlight=False)


@silence_app.command("list", cls=Command)
def silence_list(
    current: Annotated[bool, typer.Option(help="Only pending and active ones.")] = False,
    unit: Annotated[str | None, typer.Option(help="A unit in your subtree.")] = None,
    api: Api = DEFAULT_API,
    token: Token = "",
    as_json: Json = False,
) -> None:
    """The silences that may hold in your subtree, oldest first."""
    if not token:
        raise fail("no token: --token or GRIDCALL_TOKEN (gridcall hub token issue UNIT)")
    params: dict[str, Any] = {"current": current}
    if unit is not None:
        params["unit"] = unit
    answer = _call(api, token, "GET", "/v1/silences", params=params)
    if as_json:
        typer.echo(json.dumps(answer, ensure_ascii=False))
        return
    if not answer["silences"]:
        out.print(f"no silences for {answer['unit']}")
        return
    for silence in answer["silences"]:
        out.print(_line(silence), markup=False, highlight=False, soft_wrap=True)


@silence_app.command("lift", cls=Command)
def silence_lift(
    silence: Annotated[str, typer.Argument(metavar="SILENCE", help="Its id (SI000001).")],
    note: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    api: Api = DEFAULT_API,
    token: Token = "",
) -> None:
    """End SILENCE now (one set in your subtree)."""
    if not token:
        raise fail("no token: --token or GRIDCALL_TOKEN (gridcall hub token issue UNIT)")
    lifted = _call(api, token, "POST", f"/v1/silences/{silence}/lift", {"note": note})
    out.print(f"{lifted['silence_id']} lifted at {_when(lifted['ends_at'])} UTC; it held "
              f"back {lifted['muted']} anomaly event(s)", highlight=False)
