"""The group-send benchmark, tiny: ``bench/layer.py`` runs both layers to the end and prints figures for
each, and its ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER_DB = 10  # bench/layer.py's own; test_bench_sessions 11, faults 12, bench/sessions.py 13


def test_the_layer_bench_times_both_layers_and_compares_them(redis_url: str) -> None:
    command = ["bench/layer.py", "--sends", "200", "--rounds", "1", "--redis-db", str(LAYER_DB)]
    done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("command: ")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("LAYER-RESULT "))
    result = json.loads(line.removeprefix("LAYER-RESULT "))
    for figures in result["medians"].values():
        assert figures["sends_per_s"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert set(result["ratios"]) == {"sends_per_s", "cpu_ms_per_send", "p50_ms", "p99_ms"}
