"""The API wing: the hub's HTTP interface.

Owns the FastAPI application and its models (``app``), the bearer tokens (``tokens``)
and the server that runs it (``server``).

May import: ``gridcall.wire``, ``gridcall.config``, the desk wing and the board wing.
Nothing imports the API wing but the hub's composition and the CLI.
"""
