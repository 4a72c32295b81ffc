"""The broker policy as mosquitto 2's files: ``acl_file`` and ``password_file``.

The password file is written here, in Python, rather than by ``mosquitto_passwd``: that
tool is installed only with the broker (not on the hub's machine or in its image), it
takes a password either at a prompt or on its command line (where ``ps`` shows it), and
it rewrites the file one user per run. The format is mosquitto 2's ``$7$``: PBKDF2 with
SHA-512, a 12-byte random salt and 101 iterations, base64 (what ``mosquitto_passwd``
writes; tests/test_broker_acl.py logs in to a real mosquitto with it). 101 iterations
are mosquitto's own choice; the passwords themselves are random (192 bits,
:mod:`gridcall.broker.credentials`), so more stretching would add nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping

from gridcall.broker.policy import Principal

ITERATIONS = 101
SALT_BYTES = 12

ACL_HEADER = """\
# mosquitto acl_file written by `gridcall broker acl` from the config set; do not edit:
# change the config and run it again. What is not granted here is refused (an unknown
# login may do nothing); docs/security.md explains each grant.
"""


def password_hash(password: str, *, salt: bytes | None = None,
                  iterations: int = ITERATIONS) -> str:
    """``$7$<iterations>$<salt>$<hash>``, the form mosquitto 2 reads."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode('ascii')}"
            f"${base64.b64encode(digest).decode('ascii')}")


def password_file(principals: Iterable[Principal], passwords: Mapping[str, str]) -> str:
    """One ``user:hash`` line per login, in the policy's order."""
    lines = []
    for p in principals:
        if ":" in p.user:
            raise ValueError(f"broker login {p.user!r}: mosquitto user names cannot hold ':'")
        lines.append(f"{p.user}:{password_hash(passwords[p.user])}\n")
    return "".join(lines)


def acl_file(principals: Iterable[Principal]) -> str:
    """A ``user`` block per login with its ``topic read|write`` lines; nothing else."""
    out = [ACL_HEADER]
    for p in principals:
        out.append(f"\n# {p.about}\nuser {p.user}\n")
        out.extend(f"topic {g.access} {g.topic}\n" for g in p.grants)
    return "".join(out)
