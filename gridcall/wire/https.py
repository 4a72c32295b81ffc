"""How gridcall's HTTPS clients (the InfluxDB sinks) check the server and prove who they
are; the MQTT side is :class:`gridcall.wire.broker.TlsSettings`."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from gridcall.wire.broker import TlsFileError, file_problem


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
        """A client context; :class:`TlsFileError` naming a file that cannot be used."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_file is None:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            try:
                ctx.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TlsFileError(f"CA file {self.ca_file}: {file_problem(exc)}") from None
        if self.certfile is not None:
            try:
                ctx.load_cert_chain(self.certfile, self.keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise TlsFileError(f"client certificate {self.certfile}: "
                                   f"{file_problem(exc)}") from None
        return ctx
