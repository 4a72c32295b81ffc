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

from tests.private_servers import PrivateMosquitto

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


class TlsMosquitto(PrivateMosquitto):
    """mosquitto with one TLS listener on loopback that requires a client certificate
    signed by the test CA (``require_certificate true``); TLS 1.2 and newer; no
    persistence."""

    scheme = "mqtts"

    def __init__(self, folder: Path, pki: Pki) -> None:
        self.pki = pki
        super().__init__(folder, persistence=False)

    def _listener(self) -> str:
        return (f"listener {self.port} 127.0.0.1\n"
                f"cafile {self.pki['ca.crt']}\n"
                f"certfile {self.pki['broker.crt']}\n"
                f"keyfile {self.pki['broker.key']}\n"
                "require_certificate true\n"
                "tls_version tlsv1.2\n"
                "allow_anonymous true\n")
