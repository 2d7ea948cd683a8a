"""The session worker's garbage collector: what survives a full collection is left out of the next."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from calls import heap
from calls.models import AgentLogin
from calls.worker import AgentSession
from tests.desk import RunningWorker, ready_desk


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen, as a fresh process does."""
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.fixture
async def steward(settings: Any) -> AsyncIterator[None]:
    settings.GC_REFREEZE_SECONDS = 0.3
    task = asyncio.create_task(heap.steward())
    await asyncio.sleep(0)
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Node:
    """An object that can be in a reference cycle and be watched by a weak reference."""

    other: Any = None


def frozen_cycle() -> weakref.ref[Node]:
    """A reference cycle that is alive when a full collection freezes it, and dead right after."""
    node = Node()
    node.other = node
    dead = weakref.ref(node)
    gc.collect()
    del node
    return dead


@pytest.mark.asyncio
async def test_what_survives_a_full_collection_is_left_out_of_the_next(steward: None) -> None:
    held = Node()
    gc.collect()
    assert gc.get_freeze_count() > 0
    assert not any(found is held for found in gc.get_objects())


@pytest.mark.asyncio
async def test_a_cycle_that_died_frozen_is_freed_at_the_next_thaw(steward: None) -> None:
    dead = frozen_cycle()
    gc.collect()
    assert dead() is not None, "a frozen cycle waits for the thaw"
    await asyncio.sleep(0.5)
    assert dead() is None


@pytest.mark.asyncio
async def test_a_stopped_steward_leaves_the_collector_as_it_found_it() -> None:
    callbacks = list(gc.callbacks)
    task = asyncio.create_task(heap.steward())
    await asyncio.sleep(0)
    gc.collect()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert gc.callbacks == callbacks
    assert gc.get_freeze_count() == 0


@pytest.mark.asyncio
async def test_a_stopped_steward_frees_at_once_what_died_frozen() -> None:
    """Not at some later collection, in the middle of whatever runs then."""
    task = asyncio.create_task(heap.steward())
    await asyncio.sleep(0)
    dead = frozen_cycle()

    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert dead() is None


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_workers_session_is_left_out_of_collections_once_it_is_up(
    simulator: str, agent1: AgentLogin, worker: RunningWorker
) -> None:
    desk = await ready_desk(agent1)
    gc.collect()
    assert not [found for found in gc.get_objects() if isinstance(found, AgentSession)]
    await desk.close()
