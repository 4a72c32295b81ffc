"""``python -m gridcall …``: the ``gridcall`` command, for a checkout that is not installed
(``PYTHONPATH=. python -m gridcall demo``)."""

from gridcall.cli import app

app(prog_name="gridcall")
