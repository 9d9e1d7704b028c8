"""The deploy checks need helm: the project's own script installs it (built once from the Go
module proxy into the cache). No helm is a failure, never a skip: CI must cover the chart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="session")
def helm() -> str:
    given = os.environ.get("HELM")
    if given:
        return given
    # Up to a few minutes the first time on a machine (go install), instant afterwards.
    result = subprocess.run(
        [str(ROOT / "scripts" / "install-helm.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/install-helm.sh failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]
