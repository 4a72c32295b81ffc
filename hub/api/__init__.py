"""The API wing: the hub's HTTP interface.

Owns the FastAPI application (``app``, which assembles the routers), its models
(``models``), who may call and see what (``auth``, over the hashed bearer tokens of
``tokens``), one router per concern (``alerts``, ``indicators``, ``agents``, ``board``)
and the server that runs it in the hub's loop (``server``).

May import: ``gridcall.wire``, ``gridcall.config``, the desk wing and the board wing.
Nothing in the hub imports the API wing but the hub's composition and a standby's
read-only API (``gridcall.hub.standby``); outside the hub, the CLI.
"""
