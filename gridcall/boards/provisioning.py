"""Grafana provisioning files: the InfluxDB data source (InfluxQL) and a file provider
for the dashboards.

``write_provisioning(out, ...)`` writes::

    out/provisioning/datasources/gridcall.yaml   → mount at /etc/grafana/provisioning/datasources
    out/provisioning/dashboards/gridcall.yaml    → mount at /etc/grafana/provisioning/dashboards
    out/dashboards/<uid>.json                    → mount at ``dashboards_path``

The data source always speaks InfluxQL (``jsonData.version: InfluxQL``), whatever the
InfluxDB:

- **1.x** (1.6 … 1.11): database ``dbName``; with authentication, ``user`` and
  ``secureJsonData.password`` from the environment variables named.
- **2.x**: InfluxQL goes through ``/query`` with a DBRP mapping (database/retention policy
  → bucket; ``influx v1 dbrp create``, done by deploy/town-centre's init script). The
  token travels as a custom header ``Authorization: Token …``; ``dbName`` is the mapped
  database name.
- **3.x** (Core/Enterprise, Cloud Dedicated/Serverless): InfluxQL on ``/query`` with the
  database name and the same ``Authorization: Token …`` header (3.x has no DBRP to set up:
  the database is the bucket).

Secrets never land in the files: Grafana expands ``${NAME}`` from its own environment
when it reads provisioning (so ``$`` in literal values would need ``$$``; ours have none).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from gridcall.boards.grafana import DATASOURCE_TYPE, DATASOURCE_UID, JSON, Dashboard
from gridcall.config import ConfigSet
from gridcall.wire.errors import InvariantError

FOLDER_UID = "gridcall"
FOLDER_TITLE = "gridcall"
DASHBOARDS_PATH = "/var/lib/grafana/dashboards/gridcall"
"""Where the file provider looks, inside Grafana's container."""

InfluxVersion = Literal[1, 2, 3]


class MissingSecret(KeyError):
    """An environment variable a data source needs is not set; says which and why."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class DatasourceSpec:
    url: str
    """InfluxDB's URL as *Grafana* reaches it (in compose: ``http://influxdb:8086``)."""
    database: str = "gridcall"
    version: InfluxVersion = 1
    user_env: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    name: str = "gridcall InfluxDB"
    uid: str = DATASOURCE_UID

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"InfluxDB URL {self.url!r}: give http:// or https://")
        if not self.database.strip():
            raise ValueError("the InfluxQL database name is empty: give --database or "
                             "hub.yaml's influx.database (api 1) / bucket (api 2)")
        if self.version in (2, 3) and not self.token_env:
            raise ValueError(f"InfluxDB {self.version}.x needs a token: name the environment "
                             "variable that holds it (--influx-token-env)")

    @classmethod
    def for_config(cls, cfg: ConfigSet, *, url: str | None = None,
                   version: InfluxVersion | None = None, database: str | None = None,
                   token_env: str | None = None) -> DatasourceSpec:
        """From hub.yaml's ``influx`` section (the InfluxDB the hub writes to), each part
        overridable; without one, InfluxDB 1.x at localhost:8086, database gridcall."""
        influx = cfg.hub.influx
        if influx is None:
            # `is None`, not `or`: an empty --database is refused, not silently replaced
            return cls(url=url or "http://localhost:8086",
                       database="gridcall" if database is None else database,
                       version=version or 1, token_env=token_env)
        v: InfluxVersion = version or influx.api
        return cls(
            url=url or influx.url,
            # for 2.x the DBRP database is named after the bucket (our init script does so)
            database=(database if database is not None
                      else influx.database if influx.api == 1 else influx.bucket),
            version=v,
            user_env=influx.username_env if v == 1 else None,
            password_env=influx.password_env if v == 1 else None,
            token_env=token_env or (influx.token_env if v != 1 else None))

    def _values(self, resolve: Mapping[str, str] | None) -> tuple[JSON, JSON, JSON]:
        """``(top-level, jsonData, secureJsonData)`` with ``${NAME}`` placeholders, or the
        values from ``resolve`` (the environment) when given."""

        def secret(name: str, what: str) -> str:
            if resolve is None:
                return "${" + name + "}"
            try:
                return resolve[name]
            except KeyError:
                raise MissingSecret(f"{what}: environment variable {name} is not set") from None

        top: JSON = {}
        json_data: JSON = {"version": "InfluxQL", "dbName": self.database, "httpMode": "POST"}
        secure: JSON = {}
        if self.version == 1:
            if self.user_env:
                top["user"] = secret(self.user_env, "InfluxDB user")
            if self.password_env:
                secure["password"] = secret(self.password_env, "InfluxDB password")
        else:
            if self.token_env is None:  # refused in __post_init__
                raise InvariantError("a v2 InfluxDB datasource without token_env")
            json_data["httpHeaderName1"] = "Authorization"
            secure["httpHeaderValue1"] = "Token " + secret(self.token_env, "InfluxDB token")
        return top, json_data, secure

    def provisioning(self) -> JSON:
        """The ``datasources:`` entry of a provisioning file (secrets as ``${NAME}``)."""
        top, json_data, secure = self._values(None)
        entry: JSON = {"name": self.name, "uid": self.uid, "type": DATASOURCE_TYPE,
                       "access": "proxy", "url": self.url, "isDefault": True,
                       "editable": False, **top, "jsonData": json_data}
        if secure:
            entry["secureJsonData"] = secure
        return entry

    def api_body(self, environ: Mapping[str, str] | None = None) -> JSON:
        """The body of ``POST /api/datasources`` with secrets read from ``environ``
        (default: this process's environment); :class:`MissingSecret` names a missing one."""
        top, json_data, secure = self._values(os.environ if environ is None else environ)
        body: JSON = {"name": self.name, "uid": self.uid, "type": DATASOURCE_TYPE,
                      "access": "proxy", "url": self.url, "isDefault": True, **top,
                      "jsonData": json_data}
        if secure:
            body["secureJsonData"] = secure
        return body

    def needed_env(self) -> tuple[str, ...]:
        names = (self.user_env, self.password_env) if self.version == 1 else (self.token_env,)
        return tuple(n for n in names if n)


def dashboard_json(dashboard: Dashboard, datasource_uid: str = DATASOURCE_UID) -> str:
    """The dashboard file's text: stable (same config → same bytes), names kept readable."""
    return json.dumps(dashboard.to_json(datasource_uid), ensure_ascii=False, indent=2) + "\n"


def _yaml(header: str, data: JSON) -> str:
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def write_provisioning(out: Path, dashboards: Sequence[Dashboard],
                       datasource: DatasourceSpec, *, dashboards_path: str = DASHBOARDS_PATH
                       ) -> list[Path]:
    """Write the data source, the dashboard provider and one JSON file per dashboard under
    ``out``; returns the files written. Files of other names in ``out`` are left alone."""
    datasources = out / "provisioning" / "datasources" / "gridcall.yaml"
    providers = out / "provisioning" / "dashboards" / "gridcall.yaml"
    written: list[Path] = []
    for path in (datasources, providers):
        path.parent.mkdir(parents=True, exist_ok=True)
    datasources.write_text(_yaml(
        "# Written by `gridcall boards build`: the InfluxDB data source (InfluxQL).\n"
        f"# InfluxDB {datasource.version}.x"
        + ("" if datasource.version == 1 else "; the token comes from Grafana's environment")
        + ".\n",
        {"apiVersion": 1, "datasources": [datasource.provisioning()]}), encoding="utf-8")
    providers.write_text(_yaml(
        "# Written by `gridcall boards build`: load the gridcall dashboards from files.\n",
        {"apiVersion": 1, "providers": [{
            "name": "gridcall", "orgId": 1, "type": "file", "folder": FOLDER_TITLE,
            "folderUid": FOLDER_UID, "disableDeletion": False, "allowUiUpdates": False,
            "updateIntervalSeconds": 60,
            "options": {"path": dashboards_path, "foldersFromFilesStructure": False}}]}),
        encoding="utf-8")
    written += [datasources, providers]
    folder = out / "dashboards"
    folder.mkdir(parents=True, exist_ok=True)
    for dashboard in dashboards:
        path = folder / f"{dashboard.uid}.json"
        path.write_text(dashboard_json(dashboard, datasource.uid), encoding="utf-8")
        written.append(path)
    return written
