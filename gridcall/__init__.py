"""gridcall: IoT edge-to-hub sensing and alerts for grid-based urban governance.

Kept light on purpose: every ``import gridcall.x`` runs this first, so it holds the
version and nothing else (tests/test_import_graph.py checks it).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gridcall")
except PackageNotFoundError:  # a checkout on PYTHONPATH that was never installed
    __version__ = "0+unknown"
