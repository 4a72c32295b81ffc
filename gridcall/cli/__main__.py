"""``python -m gridcall.cli …``: the ``gridcall`` command."""

from gridcall.cli import app

app(prog_name="gridcall")
