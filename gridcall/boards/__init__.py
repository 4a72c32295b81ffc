"""Grafana as code: the district's risk boards as Grafana dashboards JSON, the provisioning
files that load them, and an uploader for Grafana's HTTP API.

Why ``gridcall/boards/`` and not ``hub/boards/``: this is a deploy-time tool run by the CLI
(``gridcall boards build|push``), never by the hub's runtime; it reads only ``config/`` and
knows nothing of the desk. Keeping it out of ``hub/`` keeps the hub free of Grafana and
avoids a ``hub/boards/`` beside ``hub/board/`` (the hub's own built-in web board, served
at ``/board``), two names one letter apart for different things.

- :mod:`gridcall.boards.grafana`: the few Grafana JSON shapes we use (panels, InfluxQL
  targets, template variables, annotations, dashboards), as typed frozen values.
- :mod:`gridcall.boards.dashboards`: the three boards (district overview, town board,
  sensor drill-down) built from a config set.
- :mod:`gridcall.boards.provisioning`: the data source (InfluxQL on InfluxDB 1.x, 2.x via
  DBRP, 3.x) and the file provider, written as Grafana provisioning YAML.
- :mod:`gridcall.boards.macros`: Grafana's macro and template-variable substitution, so
  tests (and ``gridcall boards check``-like tools) can run every query on a real InfluxDB.
- :mod:`gridcall.boards.push`: upload through Grafana's HTTP API with httpx.
"""

from gridcall.boards.dashboards import BoardSchema, build_dashboards
from gridcall.boards.grafana import DATASOURCE_UID, SCHEMA_VERSION, Dashboard
from gridcall.boards.provisioning import DatasourceSpec, write_provisioning

__all__ = ["DATASOURCE_UID", "SCHEMA_VERSION", "BoardSchema", "Dashboard", "DatasourceSpec",
           "build_dashboards", "write_provisioning"]
