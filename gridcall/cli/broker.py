"""``gridcall broker acl``: the MQTT broker's logins and ACL, from the config set.

Writes mosquitto 2's ``acl`` and ``passwd`` into ``--out``; the passwords come from the
``credentials`` file (0600, generated once per login, never rewritten:
:mod:`gridcall.broker.credentials`). docs/security.md says who may do what.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gridcall.cli.common import Command, ConfigDir, fail, load_config_set, out, typer_app
from gridcall.config import SAMPLE_DISTRICT

broker_app = typer_app("The MQTT broker's logins and ACL, written from the config set.")

ACL_FILE = "acl"
PASSWORD_FILE = "passwd"
CREDENTIALS_FILE = "credentials"


def _write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` whole (a temporary file renamed over it), created with ``mode``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)


@broker_app.command("acl", cls=Command)
def broker_acl(
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR", help=(
        "Where to write acl and passwd (mosquitto's acl_file and password_file)."))],
    config_dir: ConfigDir = SAMPLE_DISTRICT,
    credentials: Annotated[Path | None, typer.Option(metavar="FILE", help=(
        "The logins' passwords (user password per line, 0600); missing ones are "
        "generated and appended, existing ones never changed. Default: DIR/credentials."
    ))] = None,
) -> None:
    """Write the broker's password file and ACL for every login the config implies.

    Each agent (login: its id) may publish only its own readings, events and status (its
    last will too); the hub (login: hub.client_id) reads those and alone writes alerts;
    each unit's app (login: app-UNIT) reads only its subtree's alerts; each system of
    external.yaml (login: ext-SYSTEM) may publish only its own events."""
    from gridcall.broker.credentials import CredentialsError, ensure_credentials
    from gridcall.broker.mosquitto import acl_file, password_file
    from gridcall.broker.policy import policy

    cfg = load_config_set(config_dir)
    try:
        principals = policy(cfg)
    except ValueError as exc:
        raise fail(str(exc), 1) from None
    secrets_path = credentials or out_dir / CREDENTIALS_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        passwords, new = ensure_credentials(secrets_path, [p.user for p in principals])
    except (CredentialsError, OSError) as exc:
        raise fail(str(exc), 1) from None
    _write(out_dir / ACL_FILE, acl_file(principals), 0o644)
    # 0640: salted hashes of random passwords, but nobody else's business; the broker's
    # group must read it (deploy/town-centre/README.md: chgrp 1883)
    _write(out_dir / PASSWORD_FILE, password_file(principals, passwords), 0o640)
    roles = Counter(p.role for p in principals)
    out.print(f"wrote {escape(str(out_dir / ACL_FILE))} and "
              f"{escape(str(out_dir / PASSWORD_FILE))}: {len(principals)} logins "
              f"({roles['hub']} hub, {roles['agent']} agents, {roles['app']} unit apps, "
              f"{roles['system']} systems); "
              f"passwords in {escape(str(secrets_path))} ({len(new)} new)",
              highlight=False, soft_wrap=True)
