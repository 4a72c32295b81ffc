"""The board wing: what the command centre sees, without HTTP.

Owns the board measurements (``feed``), the built-in board's view model (``view``), the
live changes its pages stream (``changes``), the writers of board and indicator
measurements to InfluxDB (``writer``, ``indicator_writer``), what of a snapshot to write
when only what changed is written (``diff``) and the service that runs them on the hub's
schedule (``service``), and the page's assets (``index.html``, ``board.js``, and the
report form and closure panel ``report.js`` and ``audits.js``, which call the API through
``board.js``'s fetch helper; ``board.css``; shipped as package data). The page's
routes are the API's (:mod:`gridcall.hub.api.board`).

May import: ``gridcall.wire``, ``gridcall.config``, the desk wing and the sinks of the
ingest wing. Never notify or api.
"""
