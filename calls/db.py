"""Database work from async code, typed: Channels' ``database_sync_to_async`` (which also closes
stale connections around each call, as a long-running worker needs) carries no type information."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async as _database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def database_sync_to_async(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    wrapped: Callable[P, Coroutine[Any, Any, R]] = _database_sync_to_async(func)
    return wrapped
