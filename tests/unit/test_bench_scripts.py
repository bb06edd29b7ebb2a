"""Every benchmark still starts: `--help` runs its imports, and lists the `--smoke` that `.ci/run` runs.

The smoke runs themselves take minutes with the peers and run in `.ci/run`; this shows a broken
import in the suite too, in a second or so per script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "bench").glob("bench_*.py"))


def test_the_bench_scripts_are_found() -> None:
    # An empty parametrization would pass by skipping: `.ci/run` globs the same pattern.
    assert "bench_spine.py" in [script.name for script in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_a_bench_script_imports_and_takes_smoke(script: Path) -> None:
    answer = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert answer.returncode == 0, answer.stderr
    assert "--smoke" in answer.stdout, f"{script.name} has no --smoke, which .ci/run runs it with"
