"""The Redis cache's connections, one pool per process.

Django keeps a cache object per context, and a server runs every request in a context of its own, so
each request builds the Redis cache's client afresh. With redis-py's own pool class that means a new
pool, and so a new connection (a TCP handshake and the client's greeting), for every request that
counts a click or a sign-in. ``SharedConnectionPool`` hands every such client the process's pool for
the same server and options.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

_pools: dict[tuple[Any, ...], SharedConnectionPool] = {}
_pools_lock = threading.Lock()


class SharedConnectionPool(redis.ConnectionPool):
    """As redis-py's pool; ``from_url`` returns the one this process made for the same arguments."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SharedConnectionPool:
        key = (url, *sorted(kwargs.items()))
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = super().from_url(url, **kwargs)
            return pool
