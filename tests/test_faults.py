"""The fault campaign, small: ``bench/faults.py`` in the production shape (voicesim, two daphne, two
session workers, PostgreSQL, Redis), nine runs from a fixed seed, one of each fault kind it draws, and
not one violation: every agent's screen equals the switch within 2 s of each fault's end, no call is
missing from the history, no card is shown twice. Redis is restarted only where the bench can run a
``redis-server`` of its own; on a shared Redis that run draws another fault.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.multiprocess

ROOT = Path(__file__).resolve().parent.parent
RUNS = 9
SEED = 5
LAYER_DB = 12  # with a shared Redis; test_multiprocess uses 14, test_runworker 15, bench/sessions.py 13
FAULTS = ",".join(
    (
        "cometd_drop",
        "voice_api_503",
        "voice_api_slow",
        "worker_kill",
        "worker_takeover",
        "socket_drop",
        "page_reload",
        "switch_reset",
        "redis_restart",
    )
)
CAMPAIGN_TIMEOUT_S = 240


def test_a_small_fault_campaign_finds_no_violation(postgres_url: str, request: pytest.FixtureRequest) -> None:
    command = [
        sys.executable,
        "bench/faults.py",
        "--runs",
        str(RUNS),
        "--seed",
        str(SEED),
        "--faults",
        FAULTS,
    ]
    if shutil.which("redis-server") is None:
        redis_url: str = request.getfixturevalue("redis_url")
        command += ["--redis-url", f"{redis_url.rsplit('/', 1)[0]}/{LAYER_DB}"]

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=CAMPAIGN_TIMEOUT_S)

    output = done.stdout + done.stderr
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("FAULTS-RESULT ")), None)
    assert line is not None, output[-8000:]
    figures = json.loads(line.removeprefix("FAULTS-RESULT "))
    assert figures["violations"] == [], output[-8000:]
    assert figures["runs"] == RUNS
    assert sorted(figures["faults"]) == sorted(FAULTS.split(",")), output[-8000:]  # each kind once
    assert done.returncode == 0, output[-8000:]
