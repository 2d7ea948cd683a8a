"""Counters that keep a double click, a stuck key or a password guesser from reaching the Voice API
or an account: duplicate actions, action storms and failed sign-ins, kept in Django's cache.

The cache is Redis when REDIS_URL is set, so every desk process shares the counters; the
in-memory default counts per process, which suits the one-process demo. A cache that fails lets
requests through (and says so in the log): an outage must not stop agents from working.

The action limits hold under concurrency: on Redis one script checks both (the storm's sliding
window and the duplicate) atomically, in one round trip; in the one-process default a lock guards
each user's window and last action.
Sign-ins are throttled per username whatever the address, and per address whatever the username,
with a wait that doubles with each failure (``admit_sign_in``).

Keys are hashed: the cache never holds a username, an address or a phone number in clear.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

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


class Admission(enum.Enum):
    ADMITTED = "admitted"
    STORM = "storm"  # beyond ACTION_RATE_LIMIT: refused
    DUPLICATE = "duplicate"  # the user's previous action again within the duplicate window


# In Redis, both limits in one round trip, atomically. KEYS[1]: a sorted set per user of the
# actions admitted in the last window (scored by the server's clock in ms, so desk processes'
# clocks need not agree): drop the old, count, admit or not. KEYS[2]: the user's last action (its
# hash), kept for the duplicate window: the same again is a duplicate, and does not extend it.
# ARGV: storm window ms, storm count, a token, duplicate window ms (0: none), the action's hash.
# Returns 0 (storm), 1 (admitted) or 2 (duplicate).
ADMIT_ACTION = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], ms, now[1] .. now[2] .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if tonumber(ARGV[4]) > 0 then
    if redis.call('GET', KEYS[2]) == ARGV[5] then
        return 2
    end
    redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[4])
end
return 1
"""
# Forget the user's last action (KEYS[1]) if it is still this one (ARGV[1]).
FORGET_ACTION = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
ADMISSIONS = {0: Admission.STORM, 1: Admission.ADMITTED, 2: Admission.DUPLICATE}

# In the one-process default: the times of each user's admitted actions and their last action, per
# cache location, behind a lock that the event loop and sync threads alike may take (nothing waits
# while holding it).
_windows: dict[str, collections.deque[float]] = {}
_last: dict[str, tuple[str, float]] = {}
_windows_lock = threading.Lock()
SWEEP_EVERY = 1000
_admitted = 0


def _admit_locally(user: str, action: str, limit: Limit, duplicate_window: float) -> Admission:
    global _admitted
    now = time.monotonic()
    with _windows_lock:
        window = _windows.setdefault(user, collections.deque())
        while window and window[0] <= now - limit.seconds:
            window.popleft()
        if len(window) >= limit.count:
            return Admission.STORM
        window.append(now)
        _admitted += 1
        if _admitted % SWEEP_EVERY == 0:  # forget users whose windows have emptied
            since = now - max(limit.seconds, duplicate_window)
            for stale in [k for k, times in _windows.items() if not times or times[-1] <= since]:
                del _windows[stale]
                _last.pop(stale, None)
        if duplicate_window > 0:
            last = _last.get(user)
            if last is not None and last[0] == action and now - last[1] < duplicate_window:
                return Admission.DUPLICATE
            _last[user] = (action, now)
        return Admission.ADMITTED


def _forget_locally(user: str, action: str) -> None:
    with _windows_lock:
        last = _last.get(user)
        if last is not None and last[0] == action:
            del _last[user]


def _redis_client(backend: RedisCache, key: str) -> Any:
    return backend._cache.get_client(key, write=True)


def _admit_in_redis(
    backend: RedisCache, user: str, action: str, limit: Limit, duplicate_window: float
) -> Admission:
    storm_key = backend.make_and_validate_key(_key("storm", user))
    last_key = backend.make_and_validate_key(_key("last-action", user))
    token = secrets.token_hex(4)  # two actions in one microsecond are still two
    result = _redis_client(backend, storm_key).eval(
        ADMIT_ACTION,
        2,
        storm_key,
        last_key,
        max(1, math.ceil(limit.seconds * 1000)),
        limit.count,
        token,
        math.ceil(duplicate_window * 1000) if duplicate_window > 0 else 0,
        action,
    )
    return ADMISSIONS[int(result)]


def _action(user_id: int, fingerprint: str) -> str:
    """The action's hash: the cache never holds an action (a number dialled, say) in clear."""
    return _key("action", user_id, fingerprint)


def _local_key(user: str) -> str:
    """The user's windows in this process, apart for each cache location (each test has its own)."""
    location = str(settings.CACHES.get("default", {}).get("LOCATION", ""))
    return f"{location}:{_key('storm', user)}"


async def admit_action(user_id: int, fingerprint: str) -> Admission:
    """Whether the user's action may go, both limits at once (one round trip to Redis):

    - STORM when it is beyond ACTION_RATE_LIMIT: more than ``count`` admitted in the last ``seconds``
      (a sliding window; refused actions are not counted);
    - DUPLICATE when the user sent exactly this one within ACTION_DUPLICATE_WINDOW_SECONDS and nothing
      else since (a double click): of two identical requests arriving together exactly one goes. A
      different action in between forgets the earlier one: Hold, Retrieve, Hold is three actions,
      not a repeat;
    - ADMITTED otherwise: counted, and remembered.

    A cache that fails lets the action through."""
    return await sync_to_async(_admit, thread_sensitive=False)(user_id, fingerprint)


def _admit(user_id: int, fingerprint: str) -> Admission:
    user, action = str(user_id), _action(user_id, fingerprint)
    limit = _action_limit()
    duplicate_window = float(settings.ACTION_DUPLICATE_WINDOW_SECONDS)
    backend = caches["default"]
    try:
        if isinstance(backend, RedisCache):
            return _admit_in_redis(backend, user, action, limit, duplicate_window)
        return _admit_locally(_local_key(user), action, limit, duplicate_window)
    except Exception:
        _cache_failed("counting actions")
        return Admission.ADMITTED


def _forget(user_id: int, fingerprint: str) -> None:
    user, action = str(user_id), _action(user_id, fingerprint)
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        last_key = backend.make_and_validate_key(_key("last-action", user))
        _redis_client(backend, last_key).eval(FORGET_ACTION, 1, last_key, action)
    else:
        _forget_locally(_local_key(user), action)


async def release_action(user_id: int, fingerprint: str) -> None:
    """Forgets an action that was refused or failed, so the agent may try it again at once."""
    try:
        await sync_to_async(_forget, thread_sensitive=False)(user_id, fingerprint)
    except Exception:
        _cache_failed("forgetting an action")


# --- Sign-in ---

# How long failed sign-ins are remembered after the last one.
FAILURE_MEMORY_S = 24 * 3600


@dataclass(frozen=True)
class Throttled:
    """A sign-in refused before its password is checked: wait ``seconds``; ``by`` says whether the
    username or the address has failed too often."""

    seconds: int
    by: str


def _user_limit() -> Limit:
    return Limit.parse(settings.LOGIN_FAILURE_LIMIT)


def _address_limit() -> Limit:
    return Limit.parse(settings.LOGIN_ADDRESS_FAILURE_LIMIT)


def _delay(failures: int, limit: Limit) -> float:
    """1 s at the limit, doubling with each failure past it, at most ``limit.seconds``."""
    return float(min(2.0 ** min(failures - limit.count, 32), limit.seconds))


def _user_keys(username: str) -> tuple[str, str]:
    name = username.strip().casefold()
    return _key("login-user", name), _key("login-user-gate", name)


def _address_keys(address: str) -> tuple[str, str]:
    return _key("login-address", address), _key("login-address-gate", address)


def _count(key: str, delta: int = 1) -> int:
    """Atomic in Redis (INCRBY) and in the in-memory cache (its sync incr holds its lock)."""
    cache.add(key, 0, FAILURE_MEMORY_S)
    count = int(cache.incr(key, delta))
    cache.touch(key, FAILURE_MEMORY_S)
    return count


def _through_gate(gate: str, seconds: float) -> float:
    """0 when this attempt may go, and then the gate closes behind it for ``seconds``; otherwise
    the seconds until it opens. ``add`` is atomic: of attempts arriving together, one goes."""
    for _ in range(2):
        now = time.time()
        if cache.add(gate, now + seconds, _ttl(seconds)):
            return 0.0
        opens = cache.get(gate)
        if opens is not None and float(opens) > now:
            return float(opens) - now
        cache.delete(gate)  # opened in between (Redis keeps whole seconds)
    return 1.0


def _admit_sign_in(username: str, address: str) -> Throttled | None:
    limit = _address_limit()
    failures_key, gate = _address_keys(address)
    failures = int(cache.get(failures_key) or 0)
    if failures >= limit.count:
        wait = _through_gate(gate, _delay(failures, limit))
        if wait:
            return Throttled(math.ceil(wait), "address")
    limit = _user_limit()
    attempts_key, gate = _user_keys(username)
    # Counted before the password is checked, so guesses sent together each take a number.
    attempt = _count(attempts_key)
    if attempt >= limit.count:
        wait = _through_gate(gate, _delay(attempt, limit))
        if wait:
            _count(attempts_key, -1)  # not checked: not a failure
            return Throttled(math.ceil(wait), "username")
    return None


async def admit_sign_in(username: str, address: str) -> Throttled | None:
    """Whether a sign-in may have its password checked now; ``Throttled`` when it may not.

    1. The address, whatever the username (against spraying one password over many names): past
       LOGIN_ADDRESS_FAILURE_LIMIT failures, one attempt per wait, the wait doubling per failure.
    2. The username, whatever the address (a guesser with many addresses gets no further): every
       attempt counts until a sign-in succeeds; from LOGIN_FAILURE_LIMIT on, one attempt per wait:
       1 s, doubling with each failure, at most the limit's seconds. The real user waits seconds.
    """
    try:
        return await sync_to_async(_admit_sign_in, thread_sensitive=False)(username, address)
    except Exception:
        _cache_failed("checking failed sign-ins")
        return None


def login_failed(username: str, address: str) -> int:
    """Counts a failed sign-in from this address (the username's attempt is already counted); the
    seconds the username's next attempt must wait, 0 when it need not."""
    try:
        failures_key, gate = _address_keys(address)
        failures = _count(failures_key)
        limit = _address_limit()
        if failures >= limit.count:  # the address's next attempt waits from this failure on
            seconds = _delay(failures, limit)
            cache.set(gate, time.time() + seconds, _ttl(seconds))
        attempts_key, gate = _user_keys(username)
        if int(cache.get(attempts_key) or 0) < _user_limit().count:
            return 0
        opens = cache.get(gate)
        return max(0, math.ceil(float(opens) - time.time())) if opens is not None else 0
    except Exception:
        _cache_failed("counting a failed sign-in")
        return 0


def login_succeeded(username: str, address: str) -> None:
    """The username's count starts again; the address's failures stand (a sprayer may own one account)."""
    try:
        cache.delete_many(list(_user_keys(username)))
    except Exception:
        _cache_failed("clearing failed sign-ins")


# --- Anything else ---


async def first_in(name: str, seconds: float) -> bool:
    """True for the first call with this name in ``seconds``, False for the others."""
    try:
        return bool(await cache.aadd(_key("once", name), 1, _ttl(seconds)))
    except Exception:
        _cache_failed("throttling")
        return True
