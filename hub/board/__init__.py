"""The board wing: what the command centre sees.

Owns the board measurements (``feed``), the built-in board's view model (``view``) and
its web routes (``web``), the writers of board and indicator measurements to InfluxDB
(``writer``, ``indicator_writer``), and the page's assets (``index.html``, ``board.js``,
``board.css``, shipped as package data).

May import: ``gridcall.wire``, ``gridcall.config``, the desk wing and the sinks of the
ingest wing. Never notify.
"""
