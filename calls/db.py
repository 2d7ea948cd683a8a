"""Database work from async code, typed: Channels' ``database_sync_to_async`` (which also closes
stale connections around each call, as a long-running worker needs) carries no type information.
And the consumers' dispatch without Channels' connection sweep before every message."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async as _database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def database_sync_to_async(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    wrapped: Callable[P, Coroutine[Any, Any, R]] = _database_sync_to_async(func)
    return wrapped


class DirectDispatch:
    """For a Channels consumer: each message goes straight to its handler.

    Channels (4.3) first closes the process's old database connections, before every message of
    every consumer, on the one thread that all of them share: with thousands of desk tabs, every
    push to a page queued there behind the others and behind every tab's database reads. Each
    database call of ours closes old connections around itself already (``database_sync_to_async``,
    ``calls.persist.in_parallel``), and a push touches no database."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message.get('type')!r}")
        await handler(message)
