"""Counters that keep a double click, a stuck key or a password guesser from reaching the Voice API
or an account: duplicate actions, action storms and failed sign-ins, kept in Django's cache.

The cache is Redis when REDIS_URL is set, so every desk process shares the counters; the
in-memory default counts per process, which suits the one-process demo. A cache that fails lets
requests through (and says so in the log): an outage must not stop agents from working.

Keys are hashed: the cache never holds a username, an address or a phone number in clear.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger("switchboard.ratelimit")

PREFIX = "ratelimit"


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: float

    @classmethod
    def parse(cls, value: str) -> Limit:
        """``"30/10"``: at most 30 in 10 seconds."""
        count, _, seconds = value.partition("/")
        return cls(int(count), float(seconds))


def _key(kind: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:40]
    return f"{PREFIX}:{kind}:{digest}"


def _ttl(seconds: float) -> int:
    # Redis keeps whole seconds (Django rounds down); never let a window end early.
    return max(1, math.ceil(seconds))


def _cache_failed(what: str) -> None:
    log.warning("the cache failed while %s; letting the request through", what, exc_info=True)


# --- Agent actions ---


def _action_limit() -> Limit:
    return Limit.parse(settings.ACTION_RATE_LIMIT)


def action_window_seconds() -> int:
    return _ttl(_action_limit().seconds)


async def action_storm(user_id: int) -> bool:
    """Counts one action of the user; whether it is beyond ACTION_RATE_LIMIT (a fixed window)."""
    limit = _action_limit()
    window = int(time.time() // limit.seconds)
    key = _key("storm", user_id, window)
    try:
        await cache.aadd(key, 0, _ttl(limit.seconds * 2))
        count = await cache.aincr(key)
    except Exception:
        _cache_failed("counting actions")
        return False
    return count > limit.count


async def claim_action(user_id: int, fingerprint: str) -> bool:
    """Whether the action may go: False when the user sent exactly this one within the duplicate
    window and nothing else since (a double click); True otherwise, and it is remembered.

    ``add`` is atomic, so of two identical requests arriving together exactly one goes. A different
    action in between forgets the earlier one: Hold, Retrieve, Hold is three actions, not a repeat.
    """
    window = float(settings.ACTION_DUPLICATE_WINDOW_SECONDS)
    if window <= 0:
        return True
    key = _key("action", user_id, fingerprint)
    last_key = _key("last-action", user_id)
    now = time.time()
    try:
        if not await cache.aadd(key, now, _ttl(window)):
            sent_at = await cache.aget(key)
            if sent_at is not None and now - float(sent_at) < window:
                return False
            await cache.aset(key, now, _ttl(window))
        previous = await cache.aget(last_key)
        if previous and previous != key:
            await cache.adelete(previous)
        await cache.aset(last_key, key, _ttl(window))
    except Exception:
        _cache_failed("checking for a duplicate action")
    return True


async def release_action(user_id: int, fingerprint: str) -> None:
    """Forgets an action that was refused or failed, so the agent may try it again at once."""
    try:
        await cache.adelete(_key("action", user_id, fingerprint))
    except Exception:
        _cache_failed("forgetting an action")


# --- Sign-in ---


def _login_limit() -> Limit:
    return Limit.parse(settings.LOGIN_FAILURE_LIMIT)


def login_lockout_minutes() -> int:
    return max(1, math.ceil(_login_limit().seconds / 60))


def _login_key(username: str, address: str) -> str:
    return _key("login-failures", username.strip().casefold(), address)


def login_failed(username: str, address: str) -> bool:
    """Counts a failed sign-in for this username from this address; whether it is now locked."""
    limit = _login_limit()
    key = _login_key(username, address)
    try:
        cache.add(key, 0, _ttl(limit.seconds))
        locked = cache.incr(key) >= limit.count
        if locked:
            cache.touch(key, _ttl(limit.seconds))  # the lockout lasts its full period from now
        return locked
    except Exception:
        _cache_failed("counting a failed sign-in")
        return False


def login_succeeded(username: str, address: str) -> None:
    try:
        cache.delete(_login_key(username, address))
    except Exception:
        _cache_failed("clearing failed sign-ins")


async def login_locked(username: str, address: str) -> bool:
    """Whether this username may not sign in from this address for now (LOGIN_FAILURE_LIMIT reached)."""
    try:
        failures = await cache.aget(_login_key(username, address))
    except Exception:
        _cache_failed("checking failed sign-ins")
        return False
    return failures is not None and int(failures) >= _login_limit().count


# --- Anything else ---


async def first_in(name: str, seconds: float) -> bool:
    """True for the first call with this name in ``seconds``, False for the others."""
    try:
        return bool(await cache.aadd(_key("once", name), 1, _ttl(seconds)))
    except Exception:
        _cache_failed("throttling")
        return True
