"""What a benchmark ran on: code version and machine load, printed with the figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """`<commit>` plus a note when the service's code has uncommitted changes (figures depend on them)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "status",
                "--porcelain",
                "--",
                "app",
                "adapters",
                "domain",
                "projections",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{commit} + {len(changed)} uncommitted file(s) of the service" if changed else commit


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def header(title: str) -> str:
    return f"{title}\n  code {code_version()}; python {sys.version.split()[0]}; {load()}"
