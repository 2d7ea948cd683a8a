"""Saving an agent's desk behind its pushes: in order per agent, in batches, retried, never lost.

The session worker pushes a change the moment it knows it (``calls.live``) and hands the write to
the agent's ``Writer``. A writer runs its agent's pending writes in order, all that have queued in
one transaction, on a thread pool shared by every agent of the process (``DB_WRITE_CONCURRENCY``
threads, each with its own database connection): one slow agent never holds up another, and a
burst for many agents is written in parallel. A batch that fails is retried; one that still fails
is logged and counted, and the session is told, so that a resync from the Voice API rebuilds the
saved state (the switch is the source of truth).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from . import metrics
from .db import database_sync_to_async

log = logging.getLogger("switchboard.persist")

P = ParamSpec("P")
R = TypeVar("R")
Write = Callable[[], None]
# Attempts at one batch before the writer gives up on it and asks for a resync.
ATTEMPTS = 4


def write_concurrency() -> int:
    return max(1, int(getattr(settings, "DB_WRITE_CONCURRENCY", 8)))


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=write_concurrency(), thread_name_prefix="db-write")


def in_parallel(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``func`` as a coroutine that runs on the process's pool of database threads. SQLite takes
    one writer at a time (and its shared in-memory test database fails a second one at once), so
    there everything stays on Django's one thread for database work instead."""
    if connection.vendor == "sqlite":
        return database_sync_to_async(func)
    return sync_to_async(_on_pool_thread(func), thread_sensitive=False, executor=_executor())


def _on_pool_thread(func: Callable[P, R]) -> Callable[P, R]:
    """Around each call, as Channels does for its database thread: a broken or old connection is
    not reused, and the connection goes back to the pool."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return run


class NotOwner(Exception):
    """The batch's fence failed: another process owns what the batch would write."""


def _run(
    batch: list[Write], fence: Callable[[], bool] | None, begin: Callable[[], None] | None = None
) -> None:
    """One batch in one transaction, once ``fence`` (run first, inside it) says the writes are ours;
    ``begin`` then, before the writes (each attempt at a batch starts it again)."""
    with transaction.atomic():
        if fence is not None and not fence():
            raise NotOwner
        if begin is not None:
            begin()
        for write in batch:
            write()


class Writer:
    """One agent's writes, in the order they were put; ``after`` runs once each batch is saved.

    ``fence`` runs first in each batch's transaction: when it says the agent's session is no longer
    this process's (another worker has taken it over), the batch is dropped, never retried, and
    ``lost`` is called: two owners' writes must never interleave. ``begin`` runs next, before
    the batch's writes."""

    pending_total = 0

    def __init__(
        self,
        login_id: int,
        *,
        after: Callable[[], Awaitable[None]],
        failed: Callable[[], None],
        fence: Callable[[], bool] | None = None,
        lost: Callable[[], None] = lambda: None,
        begin: Callable[[], None] | None = None,
    ) -> None:
        self.login_id = login_id
        self._after = after
        self._failed = failed
        self._fence = fence
        self._lost = lost
        self._begin = begin
        self._pending: list[Write] = []
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._held = False

    def put(self, write: Write) -> None:
        self._pending.append(write)
        Writer.pending_total += 1
        metrics.WRITE_QUEUE_DEPTH.set(Writer.pending_total)
        self._idle.clear()
        self._start()

    def hold(self) -> None:
        """The writes put from now on wait for ``resume``, and are then saved in one batch: a session
        coming up saves what it learns as it does (its credentials, the first resync, its connection)
        in one transaction rather than one each."""
        self._held = True

    def resume(self) -> None:
        self._held = False
        self._start()

    def _start(self) -> None:
        if self._pending and not self._held and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drain(), name=f"db-write-{self.login_id}")

    async def flush(self) -> None:
        """Until every write put so far is saved (or given up on); held ones once resumed."""
        await self._idle.wait()

    async def close(self) -> None:
        """Saves what is pending, bounded in time: a stopping session leaves nothing unsaved
        that it could still save."""
        try:
            await asyncio.wait_for(asyncio.shield(self.flush()), timeout=10)
        except TimeoutError:
            log.warning("login %s: %d writes still pending at stop", self.login_id, len(self._pending))

    async def _drain(self) -> None:
        while self._pending and not self._held:
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            finally:
                Writer.pending_total -= len(batch)
                metrics.WRITE_QUEUE_DEPTH.set(Writer.pending_total)
            try:
                await self._after()
            except Exception:
                log.exception("login %s: after a write", self.login_id)
        if not self._pending:
            self._idle.set()

    async def _write(self, batch: list[Write]) -> None:
        run = in_parallel(_run)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(ATTEMPTS),
                wait=wait_exponential(multiplier=0.1, max=2),
                retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(NotOwner),
                reraise=True,
            ):
                with attempt:
                    await run(batch, self._fence, self._begin)
        except NotOwner:
            log.warning(
                "login %s: another worker holds the session now; %d writes left to it",
                self.login_id,
                len(batch),
            )
            self._lost()
        except Exception as exc:
            metrics.WRITES_FAILED.inc()
            log.error(
                "login %s: %d writes failed after %d attempts (%s); a resync will repair the saved state",
                self.login_id,
                len(batch),
                ATTEMPTS,
                type(exc).__name__,
            )
            self._failed()
