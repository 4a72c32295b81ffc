"""How gridcall's HTTPS clients (the InfluxDB sinks) check the server and prove who they
are; the MQTT side is :class:`gridcall.wire.broker.TlsSettings`, and both contexts are
built by :func:`gridcall.wire.tls.client_context`."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from gridcall.wire.tls import TlsFileError, client_context


@dataclass(frozen=True, slots=True)
class HttpsSettings:
    """How an ``https://`` client (the InfluxDB sinks) checks the server and proves who
    it is: ``ca_file`` (None: the system's CAs), ``verify`` (False skips the check of
    chain and name: the caller warns), ``certfile``/``keyfile`` (a client certificate)."""

    ca_file: Path | None = None
    verify: bool = True
    certfile: Path | None = None
    keyfile: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A client context (:func:`gridcall.wire.tls.client_context`, as the MQTT
        clients' is); :class:`TlsFileError` naming a file that cannot be used."""
        return client_context(ca_file=self.ca_file, certfile=self.certfile,
                              keyfile=self.keyfile, verify=self.verify)


__all__ = ["HttpsSettings", "TlsFileError"]
