"""Key material a lab deployment makes for itself, so the embedded default needs no set-up.

Kept in files under the data directory (mode 0600) and never printed: whoever can read the data
directory can read the data anyway. A production deployment is given its keys instead.

Several processes may start on one data directory at once (`spine serve --workers N`): each
writes its candidate to a file of its own and links it into place, which succeeds for exactly
one of them, so every process reads the same, complete key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def lab_secret(data_dir: Path, name: str) -> str:
    path = data_dir / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        candidate = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                os.link(candidate, path)  # never replaces, and the file is complete when it appears
        finally:
            candidate.unlink()
    return path.read_text().strip()
