"""Files only gridcall's own user reads: the hub's store and ledger, the edge outbox, the
ingest spool, the folder of the API's tokens file. New folders are made 0700 and new
files 0600 (SQLite gives its ``-wal`` and ``-shm`` files the database file's mode),
whatever the process's umask; a database that an older gridcall left readable by others
is narrowed to 0600 when opened. A folder that already exists is left as it is: it may be
the working directory, or a service's ``StateDirectory=`` whose mode systemd owns."""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(folder: Path) -> None:
    """Make ``folder`` and any missing parent, each new one 0700; OSError as raised."""
    missing: list[Path] = []
    here = folder
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for part in reversed(missing):
        try:
            part.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(part, FOLDER_MODE)  # mkdir's mode is cut by the umask; this is not


def private_file(path: Path) -> None:
    """Make ``path`` (empty) 0600 if it does not exist, and narrow it to 0600 if others
    may read it; its folder is made with :func:`private_folder`."""
    private_folder(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
