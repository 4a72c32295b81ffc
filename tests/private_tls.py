"""A private certificate authority made with openssl, and a mosquitto of a test's own with a
TLS listener that requires client certificates: for the transport-security tests
(tests/test_tls.py), never touching the shared servers.

:func:`make_pki` writes, in a folder of its own:

- ``ca.crt``/``ca.key``: the test CA; ``other-ca.crt``: a CA nobody's certificate chains
  to (the "unknown CA" case);
- ``broker.crt``/``broker.key``: the broker's certificate, naming only
  ``broker.gridcall.test`` (so dialling 127.0.0.1 without ``server_name`` is a name
  mismatch);
- ``https.crt``/``https.key``: an HTTPS server certificate for ``IP:127.0.0.1`` (InfluxDB's
  and the API's);
- ``client.crt``/``client.key``: a client certificate signed by the CA;
  ``stranger.crt``/``stranger.key``: one signed by the other CA.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.private_servers import MOSQUITTO, _stop, _wait
from tests.servers import unused_tcp_port

BROKER_NAME = "broker.gridcall.test"


@dataclass(frozen=True)
class Pki:
    folder: Path

    def __getitem__(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise KeyError(f"{name} is not in the test PKI at {self.folder}")
        return path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr}")


def _ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN=gridcall test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)


def _leaf(name: str, ca: str, cwd: Path, *, alt: str, usage: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)
    ext = cwd / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
             f"extendedKeyUsage={usage}"]
    if alt:
        lines.append(f"subjectAltName={alt}")
    ext.write_text("\n".join(lines) + "\n", encoding="ascii")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name,
             cwd=cwd)


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    _ca("ca", folder)
    _ca("other-ca", folder)
    _leaf("broker", "ca", folder, alt=f"DNS:{BROKER_NAME}", usage="serverAuth")
    _leaf("https", "ca", folder, alt="IP:127.0.0.1", usage="serverAuth")
    _leaf("client", "ca", folder, alt="", usage="clientAuth")
    _leaf("stranger", "other-ca", folder, alt="", usage="clientAuth")
    return Pki(folder)


class TlsMosquitto:
    """mosquitto with one TLS listener on loopback that requires a client certificate
    signed by the test CA (``require_certificate true``); TLS 1.2 and newer."""

    def __init__(self, folder: Path, pki: Pki) -> None:
        self.folder = folder
        self.pki = pki
        self.port = unused_tcp_port()
        self.url = f"mqtts://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        conf.write_text(f"""user root
listener {self.port} 127.0.0.1
cafile {self.pki["ca.crt"]}
certfile {self.pki["broker.crt"]}
keyfile {self.pki["broker.key"]}
require_certificate true
tls_version tlsv1.2
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
""", encoding="utf-8")
        log = self.folder / "mosquitto.log"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT)
        _wait(self._ready, self.proc, "private TLS mosquitto", log)
        return self

    def _ready(self) -> bool:
        import socket
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        _stop(self.proc)
