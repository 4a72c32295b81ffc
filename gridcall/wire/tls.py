"""TLS client contexts, owned once: the MQTT clients' (:class:`gridcall.wire.broker.TlsSettings`,
paho's and aiomqtt's) and the HTTPS clients' (:class:`gridcall.wire.https.HttpsSettings`,
the InfluxDB sinks') are both built by :func:`client_context`, so a CA file, a client
certificate, the minimum version and the errors naming a bad file mean the same on both.

A leaf: the standard library only.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any, Literal

TlsVersion = Literal["1.2", "1.3"]
_TLS_VERSIONS: dict[str, ssl.TLSVersion] = {"1.2": ssl.TLSVersion.TLSv1_2,
                                            "1.3": ssl.TLSVersion.TLSv1_3}


class TlsFileError(ValueError):
    """A CA file, client certificate or key cannot be used: names the file and why."""


def file_problem(exc: OSError | ssl.SSLError) -> str:
    """Why a PEM file could not be used, for a :class:`TlsFileError`."""
    if isinstance(exc, ssl.SSLError):
        return f"not a usable PEM file ({exc.reason or exc})"
    return exc.strerror or str(exc)


class _NamedServerContext(ssl.SSLContext):
    """An SSL context that checks the server's certificate against ``server_name`` instead
    of the host the client dialled (paho passes its host as ``server_hostname``): for a
    server reached by address whose certificate names it otherwise."""

    server_name: str | None = None

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if self.server_name is not None:
            kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *args: Any,
                 **kwargs: Any) -> ssl.SSLObject:
        if self.server_name is not None:
            kwargs["server_hostname"] = self.server_name
        return super().wrap_bio(incoming, outgoing, *args, **kwargs)


def client_context(*, ca_file: Path | None = None, certfile: Path | None = None,
                   keyfile: Path | None = None, min_version: TlsVersion = "1.2",
                   server_name: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """A client context: the server's chain and name verified against ``ca_file`` (None:
    the system's CAs), unless ``verify`` is False (the caller warns: only the HTTPS
    settings offer it); ``certfile``/``keyfile`` our client certificate (``keyfile`` may be
    left out when ``certfile`` holds both); ``min_version`` the oldest TLS accepted;
    ``server_name`` the name the certificate must carry when it is not the dialled host.
    :class:`TlsFileError` naming a file that is missing or not a usable certificate or
    key."""
    ctx = _NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and name
    ctx.minimum_version = _TLS_VERSIONS[min_version]
    ctx.server_name = server_name
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_file is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFileError(f"CA file {ca_file}: {file_problem(exc)}") from None
    if certfile is not None:
        try:
            ctx.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            key = f" with key {keyfile}" if keyfile is not None else ""
            raise TlsFileError(f"client certificate {certfile}{key}: "
                               f"{file_problem(exc)}") from None
    return ctx


__all__ = ["TlsFileError", "TlsVersion", "client_context", "file_problem"]
