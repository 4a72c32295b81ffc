"""deploy/town-centre, checked statically.

No container engine runs on this machine (nor in CI), so ``docker compose config`` and
``docker compose up`` cannot run here. Instead: the compose file parses and has the four
services on their ports; every file it (and the Dockerfile) mounts or copies exists in the
repository; every variable it reads is documented in the README and .env.example; the
hub's hub.yaml loads with the sample config set and names hosts that are compose
services; the hub's command line is one the CLI accepts; the init script is valid bash;
and the checked-in Grafana provisioning is exactly what ``gridcall boards build`` writes.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from gridcall.boards.dashboards import grafana_duration
from gridcall.cli import app
from gridcall.config import SAMPLE_DISTRICT, load_config

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "town-centre"
BUILD_ARGS = ["--influx-version", "2", "--influx-url", "http://influxdb:8086",
              "--influx-token-env", "INFLUX_TOKEN"]
_VAR = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _default(text: str) -> str:
    """``${VAR:-default}`` → default (what compose uses when VAR is unset)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def _binds(service: dict[str, Any]) -> list[tuple[Path, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target, *_ = _default(volume).split(":")
        if source.startswith((".", "/")):
            out.append(((DEPLOY / source).resolve(), target))
    return out


def test_four_services_on_their_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"mosquitto", "influxdb", "grafana", "hub"}
    ports = {name: [str(p).rsplit(":", 1)[-1] for p in s.get("ports", [])]
             for name, s in services.items()}
    assert ports == {"mosquitto": ["8883"], "influxdb": ["8086"], "grafana": ["3000"],
                     "hub": ["8470"]}
    assert services["influxdb"]["image"].startswith("influxdb:2")
    assert services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert set(services["hub"]["depends_on"]) == {"mosquitto", "influxdb"}
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
             if not v.startswith((".", "/", "$"))}
    assert named == set(compose["volumes"])


def test_every_mounted_or_copied_file_exists_in_the_repository(
        compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source, target in _binds(service):
            assert source.exists(), f"{name}: mounts {source} at {target}, which is missing"
    build = compose["services"]["hub"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == REPO
    dockerfile = context / build["dockerfile"]
    copied = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (context / source).exists(), f"{dockerfile.name}: COPY {source}"
                copied.append(source.rstrip("/"))
    packages = re.search(r'include = \[([^\]]*)\]', (REPO / "pyproject.toml").read_text())
    assert packages
    for pattern in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert pattern in copied, f"hub.Dockerfile does not copy package {pattern}"


def test_grafana_mounts_are_where_the_provisioning_points(compose: dict[str, Any]) -> None:
    binds = dict((t, s) for s, t in _binds(compose["services"]["grafana"]))
    assert binds["/etc/grafana/provisioning/datasources"] == (
        DEPLOY / "grafana/provisioning/datasources")
    assert binds["/etc/grafana/provisioning/dashboards"] == (
        DEPLOY / "grafana/provisioning/dashboards")
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/gridcall.yaml").read_text())["providers"][0]
    assert binds[provider["options"]["path"]] == DEPLOY / "grafana/dashboards"
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (DEPLOY / "grafana/dashboards" / Path(home).name).exists()


def test_every_variable_is_documented_and_in_the_example_env(compose: dict[str, Any]) -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    variables = set(_VAR.findall(text))
    assert {"INFLUX_TOKEN", "INFLUX_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= variables
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    example = {line.split("=", 1)[0] for line in
               (DEPLOY / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    for name in variables:
        assert f"| `{name}` |" in readme, f"{name} is not in README's variables table"
        assert name in example, f"{name} is not in .env.example"


def test_the_hub_config_loads_and_names_compose_services(
        compose: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(SAMPLE_DISTRICT, config)
    shutil.copy(DEPLOY / "gridcall/hub.yaml", config / "hub.yaml")
    cfg = load_config(config)
    assert cfg.hub.influx is not None
    assert cfg.hub.influx.api == 2
    services = set(compose["services"])
    assert urlsplit(cfg.hub.broker.url).hostname in services
    assert urlsplit(cfg.hub.influx.url).hostname in services
    hub = compose["services"]["hub"]
    assert cfg.hub.influx.token_env in hub["environment"]
    assert Path(cfg.hub.store_path).parent == Path(
        next(v for v in hub["volumes"] if v.startswith("hub-state:")).split(":")[1])
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/gridcall.yaml").read_text())
    (ds,) = datasource["datasources"]
    assert urlsplit(ds["url"]).hostname in services
    token_var = _VAR.search(ds["secureJsonData"]["httpHeaderValue1"])
    assert token_var
    assert token_var.group(1) in compose["services"]["grafana"]["environment"]


def test_the_boards_now_panels_span_the_deployed_hubs_writes_between_full_snapshots(
        tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(SAMPLE_DISTRICT, config)
    shutil.copy(DEPLOY / "gridcall/hub.yaml", config / "hub.yaml")
    boards = load_config(config).hub.boards
    window = grafana_duration((boards.full_every + 1) * boards.interval.total_seconds())
    board = json.loads((DEPLOY / "grafana/dashboards/gridcall-town.json").read_text())
    windows = {p["timeFrom"] for p in board["panels"] if "timeFrom" in p}
    assert windows == {window}


def test_the_hub_command_is_one_the_cli_accepts(compose: dict[str, Any]) -> None:
    command = compose["services"]["hub"]["command"]
    assert command[:3] == ["gridcall", "hub", "run"]
    result = CliRunner().invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output
    for option in (c for c in command if c.startswith("--")):
        assert option in result.output
    dockerfile = (DEPLOY / "hub.Dockerfile").read_text()
    assert '"gridcall", "hub", "run"' in dockerfile


def test_the_dbrp_init_script_is_executable_bash() -> None:
    script = DEPLOY / "influxdb/init-dbrp.sh"
    assert script.stat().st_mode & 0o111
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stderr
    assert "influx v1 dbrp create" in script.read_text()


def test_checked_in_grafana_files_are_what_boards_build_writes(tmp_path: Path) -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert " ".join(BUILD_ARGS[:2]) in readme
    assert " ".join(BUILD_ARGS[4:]) in readme
    result = CliRunner().invoke(app, ["boards", "build", "--out", str(tmp_path),
                                      "-c", str(SAMPLE_DISTRICT), *BUILD_ARGS])
    assert result.exit_code == 0, result.output
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    kept = sorted(p.relative_to(DEPLOY / "grafana")
                  for p in (DEPLOY / "grafana").rglob("*") if p.is_file())
    assert fresh == kept
    for rel in fresh:
        assert (DEPLOY / "grafana" / rel).read_bytes() == (tmp_path / rel).read_bytes(), (
            f"deploy/town-centre/grafana/{rel} is stale: regenerate it as README.md says")


def _conf(name: str) -> list[str]:
    """Every value of ``name`` in the deployed mosquitto.conf (comments left out)."""
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    return re.findall(rf"^{name}\s+(\S+)\s*$", conf, re.MULTILINE)


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where ``container_path`` of a bind-mounted folder lies in the repository."""
    for source, target in _binds(service):
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target.rstrip("/")) + 1:]
    raise AssertionError(f"{container_path} is in no bind mount of {service['image']}")


def test_the_broker_has_no_anonymous_listener_and_its_logins_come_from_broker_acl(
        compose: dict[str, Any]) -> None:
    """Issue 16, item 3: no anonymous access; the password file and ACL are the ones
    `gridcall broker acl` writes into the folder mounted for them (README says so), and
    the only published port is the TLS listener's."""
    assert _conf("allow_anonymous") == ["false"]
    assert _conf("per_listener_settings") == ["false"]
    mosquitto = compose["services"]["mosquitto"]
    (passwd,) = _conf("password_file")
    (acl,) = _conf("acl_file")
    auth = _host_path(mosquitto, passwd).parent
    assert auth == _host_path(mosquitto, acl).parent == DEPLOY / "mosquitto" / "auth"
    assert (_host_path(mosquitto, passwd).name, _host_path(mosquitto, acl).name) == (
        "passwd", "acl")
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "gridcall broker acl -c config/examples/huangpu --out " \
           "deploy/town-centre/mosquitto/auth" in readme
    assert sorted(_conf("listener")) == ["1883", "8883"]
    assert mosquitto["ports"] == ["8883:8883"]  # 1883 stays on the compose network
    for key in ("certfile", "keyfile"):
        (path,) = _conf(key)
        assert _host_path(mosquitto, path).parent == DEPLOY / "mosquitto" / "certs"


def test_the_generated_and_secret_files_are_never_committed() -> None:
    for folder in ("auth", "certs"):
        ignore = (DEPLOY / "mosquitto" / folder / ".gitignore").read_text(encoding="utf-8")
        assert "*" in ignore.splitlines()


def test_only_the_brokers_tls_listener_is_published_beyond_loopback(
        compose: dict[str, Any]) -> None:
    """The agents in the field need the broker's TLS port; InfluxDB, Grafana and the API
    are for people at this machine or behind its TLS proxy (Grafana was on every
    interface, with its admin login over plain HTTP)."""
    public = {name: [str(p) for p in s.get("ports", []) if not str(p).startswith("127.0.0.1:")]
              for name, s in compose["services"].items()}
    assert {name: p for name, p in public.items() if p} == {"mosquitto": ["8883:8883"]}


def test_the_api_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    hub = compose["services"]["hub"]
    assert [str(p) for p in hub["ports"]] == ["127.0.0.1:8470:8470"]
    env = hub["environment"]
    cfg_text = (DEPLOY / "gridcall" / "hub.yaml").read_text(encoding="utf-8")
    hub_yaml = yaml.safe_load(cfg_text)["hub"]
    assert env[hub_yaml["broker"]["username_env"]] == hub_yaml["client_id"]
    assert hub_yaml["broker"]["password_env"] in env


def test_the_deployed_mosquitto_conf_runs_with_broker_acl_files_and_tls(
        compose: dict[str, Any], tmp_path: Path) -> None:
    """The deployment's mosquitto.conf itself, run by Debian's mosquitto 2 with the
    container folders mapped to temporary ones (files from `gridcall broker acl` and the
    test CA) and its two listeners on free loopback ports: the hub logs in on the plain
    one, an agent over TLS; anonymous clients are refused."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from gridcall.broker.credentials import read_credentials
    from tests.private_servers import MOSQUITTO, _stop, _wait
    from tests.private_tls import BROKER_NAME, make_pki
    from tests.servers import unused_tcp_port

    auth = tmp_path / "auth"
    result = CliRunner().invoke(app, ["broker", "acl", "-c", str(SAMPLE_DISTRICT),
                                      "--out", str(auth)])
    assert result.exit_code == 0, result.output
    passwords = read_credentials(auth / "credentials")
    pki = make_pki(tmp_path / "pki")
    certs = tmp_path / "certs"
    certs.mkdir()
    for theirs, ours in (("broker.crt", "server.crt"), ("broker.key", "server.key"),
                         ("ca.crt", "ca.crt")):
        shutil.copy(pki[theirs], certs / ours)
    plain, tls = unused_tcp_port(), unused_tcp_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    conf = (conf.replace("/mosquitto/auth/", f"{auth}/")
            .replace("/mosquitto/certs/", f"{certs}/")
            .replace("/mosquitto/data/", f"{tmp_path}/")
            .replace("listener 1883", f"listener {plain} 127.0.0.1")
            .replace("listener 8883", f"listener {tls} 127.0.0.1"))
    assert "/mosquitto/" not in conf
    (tmp_path / "mosquitto.conf").write_text("user root\n" + conf, encoding="utf-8")
    log = tmp_path / "mosquitto.log"
    proc = subprocess.Popen([MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def listening() -> bool:
        import socket
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", tls)) == 0

    def connect(port: int, user: str | None, *, over_tls: bool = False) -> int:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user is not None:
            client.username_pw_set(user, passwords[user])
        if over_tls:  # verified against the CA; its name (BROKER_NAME) checked below,
            # as the test dials 127.0.0.1
            context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
            context.check_hostname = False
            client.tls_set_context(context)
        got: list[int] = []
        client.on_connect = lambda c, u, f, rc, p=None: got.append(rc.value)
        client.connect("127.0.0.1", port)
        for _ in range(200):  # bounded
            client.loop(0.05)
            if got:
                break
        if over_tls and got == [0]:
            cert = client.socket().getpeercert()  # type: ignore[union-attr]
            names = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
            assert names == [BROKER_NAME]
        client.disconnect()
        return got[0]

    try:
        _wait(listening, proc, "the deployed mosquitto.conf", log)
        assert connect(plain, "gridcall-hub") == 0
        assert connect(tls, "edge-dongyuan", over_tls=True) == 0
        assert connect(plain, None) == 135
        assert connect(tls, None, over_tls=True) == 135
    finally:
        _stop(proc)
