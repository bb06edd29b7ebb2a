"""Key material a lab deployment makes for itself, so the embedded default needs no set-up.

Kept in files under the data directory (mode 0600) and never printed: whoever can read the data
directory can read the data anyway. A production deployment is given its keys instead.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def lab_secret(data_dir: Path, name: str) -> str:
    path = data_dir / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path.read_text().strip()
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
    return path.read_text().strip()
