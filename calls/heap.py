"""The worker's garbage collector, kept off the live path.

CPython's full collection walks every object the process holds, and nothing else runs meanwhile. A
worker holds thousands of long-lived sessions: at 1,000 agents a full collection held the event loop
for 100-600 ms, every 5-15 s, and every event that arrived meanwhile reached its desk that much later.

So what survives a full collection is moved out of the collector's way (``gc.freeze``): the next
full collection walks only what was kept since the last one, a few tens of milliseconds' worth. A
frozen object that dies is still freed at once unless it is in a reference cycle; a cycle of frozen
objects that dies waits for the next thaw. So every ``GC_REFREEZE_SECONDS`` the worker thaws and
collects everything once (which freezes the survivors again).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from django.conf import settings

log = logging.getLogger("switchboard.heap")


def refreeze_seconds() -> float:
    return float(getattr(settings, "GC_REFREEZE_SECONDS", 900))


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def collect_all() -> None:
    """Thaw, and collect every object once (the survivors are frozen again)."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    log.info(
        "collected %d objects and froze %d in %.0f ms",
        collected,
        gc.get_freeze_count(),
        (time.perf_counter() - started) * 1000,
    )


async def steward() -> None:
    """Until cancelled: freeze what each full collection leaves, and thaw and collect everything
    every ``GC_REFREEZE_SECONDS`` (``0``: never). Cancelled, it thaws and collects: the process is as
    before, and what died frozen is freed now, not at some later collection."""
    gc.callbacks.append(_freeze_survivors)
    try:
        while interval := refreeze_seconds():
            await asyncio.sleep(interval)
            collect_all()
        await asyncio.Future()
    finally:
        gc.callbacks.remove(_freeze_survivors)
        gc.unfreeze()
        gc.collect()
