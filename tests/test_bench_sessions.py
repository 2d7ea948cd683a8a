"""The session benchmark, tiny: ``bench/sessions.py`` in the production shape (voicesim, daphne, two
session workers, PostgreSQL, Redis) with 10 agents on both vendors and 20 calls, run to the end, a worker
takeover with a 3 s lease included: its table and its ``SESSIONS-RESULT`` line, with figures that make
sense. Then the sweep's report (Markdown and plot) from that run's result, as ``--sweep`` writes it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.multiprocess

ROOT = Path(__file__).resolve().parent.parent
LAYER_DB = 11  # faults 12, bench/sessions.py by default 13, test_multiprocess 14, test_runworker 15
RUN_TIMEOUT_S = 240
LEASE_S = 3
COMMAND = [
    "bench/sessions.py",
    *("--agents", "10", "--vendor", "both", "--calls", "20", "--warmup", "2", "--rate", "20"),
    *("--workers", "2", "--lease", str(LEASE_S)),
    *("--bare-sample", "5", "--clicks", "4", "--click-agents", "2", "--renders", "10"),
    *("--redis-db", str(LAYER_DB), "--timeout", str(RUN_TIMEOUT_S - 20)),
]


@pytest.fixture(scope="module")
def bench_run(postgres_url: str, redis_url: str) -> tuple[str, dict[str, Any]]:
    """The bench's output and its result, once for the module."""
    done = subprocess.run(
        [sys.executable, *COMMAND], cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("SESSIONS-RESULT "))
    return done.stdout, json.loads(line.removeprefix("SESSIONS-RESULT "))


def test_a_tiny_run_on_both_vendors_prints_its_table_with_every_figure(
    bench_run: tuple[str, dict[str, Any]],
) -> None:
    output, result = bench_run

    assert output.startswith("command: ")
    assert "| vendor | agents | workers / daphnes | calls/s asked / achieved |" in output
    assert "| genesys | 10 | 2 / 1 | 20 / " in output
    assert "| huawei | 10 | 2 / 1 | 20 / " in output
    assert result["ok"] is True
    assert (result["agents"], result["calls"], result["workers"], result["daphnes"]) == (10, 20, 2, 1)
    assert result["pushes_lost"] == 0
    assert 0 < result["achieved_rate"] <= 30
    assert result["bring_up_missing"] == 0 and result["bring_up_s"] > 0
    assert 0 < result["bring_up_connected_s"] <= result["bring_up_s"]
    assert result["worker_kib_per_session"] > 0 and result["daphne_kib_per_socket"] > 0
    assert set(result["waited_for_cpu_s"]) == {*result["cpu_s"]}
    assert all(seconds >= 0 for seconds in result["waited_for_cpu_s"].values())
    assert "seconds ready to run but waiting for a CPU meanwhile" in output
    assert {"voicesim", "worker-1", "worker-2", "bench"} <= set(result["bring_up_cpu_s"])
    assert result["bring_up_cpu_s"]["worker-1"] + result["bring_up_cpu_s"]["worker-2"] > 0
    assert result["worker_ms_per_start"] > 0
    assert "ms of worker CPU per session start" in output


def test_a_killed_worker_s_sessions_are_back_on_the_other_once_their_lease_has_run_out(
    bench_run: tuple[str, dict[str, Any]],
) -> None:
    output, result = bench_run

    assert 0 < result["takeover_sessions"] <= 10 and result["lease_s"] == LEASE_S
    # A worker renews its leases every third of a lease: they run out 2/3 to 1 lease after the kill.
    assert LEASE_S * 2 / 3 <= result["takeover_s"] < LEASE_S + 60
    assert f"takeover: a worker killed with {result['takeover_sessions']} sessions" in output


@pytest.mark.parametrize("vendor", ["genesys", "huawei"])
def test_each_vendor_has_the_desk_against_its_bare_client_the_clicks_and_the_page(
    bench_run: tuple[str, dict[str, Any]], vendor: str
) -> None:
    figures = bench_run[1]["vendors"][vendor]

    assert (figures["agents"], figures["bare_agents"]) == (5, 5)
    assert (figures["click_error"], figures["render_error"]) == ("", "")
    assert figures["compared_calls"] > 0
    assert figures["desk_missing"] == 0 and figures["bare_missing"] == 0
    for name in ("desk_ms", "bare_ms", "click_desk_ms", "click_direct_ms", "render_ms"):
        p50, p99 = figures[name]
        assert 0 < p50 <= p99 < 30_000, (name, figures[name])
    assert all(value > 0 for value in (*figures["ratio"], *figures["click_ratio"]))
    assert figures["render_cards"] == 5


def _plot_module() -> ModuleType:
    pytest.importorskip("matplotlib", reason="matplotlib comes with the project's bench extra")
    spec = importlib.util.spec_from_file_location("bench_plot", ROOT / "bench" / "plot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sweep_report_has_the_table_the_plot_the_command_and_the_machine(
    bench_run: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    plot = _plot_module()
    failed = {"ok": False, "agents": 20, "rate": 20.0, "workers": 2, "error": "exited with 1"}

    markdown, image = plot.write_report(
        [bench_run[1], failed],
        tmp_path,
        command=".venv/bin/python bench/sessions.py --sweep --sweep-agents 10",
        machine={"nproc": "2", "memory": "4.0 GiB", "cpu": "a CPU", "system": "Linux", "python": "3.11"},
        generated="today",
        sweep_rate=20.0,
        sweep_rate_agents=10,
    )

    page = markdown.read_text()
    assert "    .venv/bin/python bench/sessions.py --sweep --sweep-agents 10" in page
    assert "2 CPUs (`nproc`), 4.0 GiB of memory" in page
    assert "![Desk and bare p99 against agents and against call rate](performance.png)" in page
    assert "| genesys | 10 | 2 / 1 | 20 / " in page and "| huawei | 10 | 2 / 1 | 20 / " in page
    takeover = f"{bench_run[1]['takeover_s']:.1f} ({bench_run[1]['takeover_sessions']}, {LEASE_S})"
    assert f"| 10 | 2 / 1 | {bench_run[1]['bring_up_s']:.1f}" in page and f"| {takeover} |" in page
    assert "- 20 agents, 20 calls/s, 2 worker(s): exited with 1" in page
    assert image.read_bytes().startswith(b"\x89PNG")


def _sessions_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sessions", ROOT / "bench" / "sessions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_the_layer_watch_samples_its_queues_often_and_scans_the_keyspace_rarely(redis_url: str) -> None:
    """A SCAN holds Redis for every key of the layer: at each 20 ms sample it starved the desk's pushes."""
    import asyncio

    import redis.asyncio as aioredis

    url = redis_url.rsplit("/", 1)[0] + f"/{LAYER_DB}"
    redis = aioredis.Redis.from_url(url)
    await redis.flushdb()
    await redis.zadd("asgispecific.daphne!", {"message": 1.0})
    for group in range(200):
        await redis.zadd(f"asgi:group:{group}", {"channel": 1.0})

    def calls(stats: dict[str, Any], command: str) -> int:
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    before = await redis.info("commandstats")
    watch = _sessions_module().LayerQueueWatch(url)
    watch.start()
    await asyncio.sleep(1.0)
    await watch.stop()
    after = await redis.info("commandstats")
    await redis.flushdb()
    await redis.aclose()

    assert watch.peak == 1
    assert calls(after, "zcard") - calls(before, "zcard") >= 20
    assert calls(after, "scan") - calls(before, "scan") <= 2


async def test_a_layer_watch_whose_client_swallows_its_cancellation_still_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py may swallow a task's cancellation (redis/redis-py#2028): the watch ends all the same,
    or the event loop's close would wait on its sampler for good."""
    import asyncio

    watch = _sessions_module().LayerQueueWatch("redis://127.0.0.1:9/0")

    async def keys(**_: Any) -> AsyncIterator[bytes]:
        yield b"asgispecific.daphne!"

    async def swallowing(key: bytes) -> int:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.01)
        return 1

    monkeypatch.setattr(watch.redis, "scan_iter", keys)
    monkeypatch.setattr(watch.redis, "zcard", swallowing)
    watch.start()
    await asyncio.sleep(0.1)
    await watch.stop()

    assert watch.task is not None and watch.task.done()
    assert watch.peak == 1
