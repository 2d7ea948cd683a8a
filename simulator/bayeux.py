"""A Bayeux 1.0 (CometD) server over the long-polling transport, in plain asyncio.

This module owns the Bayeux protocol only: clients and their ids, meta channels, subscriptions with
wildcards, per-client message queues, held ``/meta/connect`` long-polls, and the expiry of clients that
stop polling. It knows nothing of HTTP sessions or of Genesys: the dialect module authenticates each
request and passes the principal (the agent's login) in, and publishes notifications to a principal.

A client belongs to the principal that handshook it; a client id presented by any other principal is
treated as unknown, so ids cannot be used across agents even if one leaked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from simulator.web import HttpError, Request, Response

CONNECTION_TYPE = "long-polling"

HANDSHAKE = "/meta/handshake"
CONNECT = "/meta/connect"
SUBSCRIBE = "/meta/subscribe"
UNSUBSCRIBE = "/meta/unsubscribe"
DISCONNECT = "/meta/disconnect"

UNKNOWN_CLIENT = "402::unknown client"

_DROPPED = "dropped"
_DISCONNECTED = "disconnected"

# How often expired clients are looked for, relative to max_interval: often enough that a client
# outlives max_interval by at most a quarter of it, rarely enough to cost nothing.
_SWEEPS_PER_INTERVAL = 4
_MAX_SWEEP_PERIOD_S = 1.0
_MIN_SWEEP_PERIOD_S = 0.01


@dataclass(slots=True, eq=False)
class _Client:
    """One handshaken client: what it listens to, what awaits delivery, and its held connect."""

    client_id: str
    principal: str
    last_active: float
    subscriptions: set[str] = field(default_factory=set)
    queue: list[dict[str, Any]] = field(default_factory=list)
    # The future a held connect awaits; resolving it to True tells that connect it was superseded.
    waiter: asyncio.Future[bool] | None = None
    connected: bool = False
    gone: str | None = None


def _settle(future: asyncio.Future[bool], superseded: bool = False) -> None:
    if not future.done():
        future.set_result(superseded)


def channel_error(name: Any, *, wildcards: bool) -> str | None:
    """Why ``name`` is not a valid channel name, or None when it is.

    Wildcards are allowed only as the whole last segment, as Bayeux 1.0 defines them.
    """
    if not isinstance(name, str) or not name:
        return "channel must be a non-empty string"
    if not name.startswith("/"):
        return "channel must start with /"
    segments = name[1:].split("/")
    for index, segment in enumerate(segments):
        if not segment:
            return "channel has an empty segment"
        if any(ch.isspace() for ch in segment):
            return "channel has white space"
        if "*" in segment:
            if not wildcards:
                return "wildcards are only valid in subscriptions"
            if segment not in ("*", "**") or index != len(segments) - 1:
                return "wildcard * or ** must be the whole last segment"
    return None


def matching_patterns(channel: str) -> set[str]:
    """Every subscription that receives a message published on ``channel``: itself and its wildcards."""
    segments = channel[1:].split("/")
    patterns = {channel, "/" + "/".join([*segments[:-1], "*"])}
    for depth in range(len(segments)):
        patterns.add("/" + "/".join([*segments[:depth], "**"]))
    return patterns


class BayeuxServer:
    """Bayeux 1.0 over long-polling for authenticated principals; one instance per simulated endpoint."""

    def __init__(
        self, *, timeout_ms: int = 30000, interval_ms: int = 0, max_interval_ms: int = 10000
    ) -> None:
        self.timeout_ms = timeout_ms
        self.interval_ms = interval_ms
        self.max_interval_ms = max_interval_ms
        self._clients: dict[str, _Client] = {}
        self._by_principal: dict[str, dict[str, _Client]] = {}
        self._ids = itertools.count(1)
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    # Public interface used by the dialect module.

    async def handle(self, request: Request, principal: str) -> Response:
        """Answer one long-polling HTTP request: a Bayeux message or a batch of them.

        Replies come in request order, except that a connect is handled last (it may be held) and its
        reply follows the messages it delivers, as CometD servers order them.
        """
        messages = self._parse(request)
        replies: list[dict[str, Any]] = []
        connect: dict[str, Any] | None = None
        for message in messages:
            if message["channel"] != CONNECT:
                replies.append(self._handle_message(message, principal))
            elif connect is None:
                connect = message
            else:
                replies.append(self._failure(message, "400::only one connect per request"))
        if connect is not None:
            replies.extend(await self._connect(connect, principal))
        return Response(body=replies)

    def publish(self, principal: str, channel: str, data: dict[str, Any]) -> int:
        """Queue a message for each of the principal's clients subscribed to ``channel``; never blocks.

        ``data`` is copied through JSON once here, so a caller mutating it later cannot change what
        clients receive, and data that is not JSON fails in the caller rather than in a client's poll.
        """
        problem = channel_error(channel, wildcards=False)
        if problem or channel.startswith("/meta/"):
            raise ValueError(f"cannot publish on {channel!r}: {problem or 'meta channel'}")
        clients = self._by_principal.get(principal)
        if not clients:
            return 0
        patterns = matching_patterns(channel)
        targets = [c for c in clients.values() if not c.subscriptions.isdisjoint(patterns)]
        if not targets:
            return 0
        snapshot = json.loads(json.dumps(data, allow_nan=False))
        message = {"channel": channel, "data": snapshot, "id": str(next(self._ids))}
        for client in targets:
            client.queue.append(message)
            if client.waiter is not None:
                _settle(client.waiter)
        return len(targets)

    def drop_all(self) -> int:
        """Forget every client, as a server restart would; held connects learn they are unknown."""
        clients = list(self._clients.values())
        for client in clients:
            self._remove(client, _DROPPED)
        return len(clients)

    def drop_principal(self, principal: str) -> int:
        """Forget one principal's clients, e.g. because its HTTP session was invalidated."""
        clients = list(self._by_principal.get(principal, {}).values())
        for client in clients:
            self._remove(client, _DROPPED)
        return len(clients)

    def client_count(self) -> int:
        return len(self._clients)

    async def close(self) -> None:
        """Answer every held connect now and stop the sweeper; later connects are never held."""
        self._closed = True
        for client in self._clients.values():
            if client.waiter is not None:
                _settle(client.waiter)
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and not sweeper.done():
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    # Request parsing and replies.

    @staticmethod
    def _parse(request: Request) -> list[dict[str, Any]]:
        # A batch is checked whole before any of it runs, so a malformed one has no side effects.
        if not request.body.strip():
            raise _bad_request("Empty body: expected a Bayeux message or a JSON array of them")
        payload = request.json()
        if isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list) or not payload:
            raise _bad_request("Expected a Bayeux message or a non-empty JSON array of them")
        for index, message in enumerate(payload):
            if not isinstance(message, dict):
                raise _bad_request(f"Bayeux message {index} is not a JSON object")
            if not isinstance(message.get("channel"), str):
                raise _bad_request(f"Bayeux message {index} has no channel")
        return payload

    @staticmethod
    def _reply(message: dict[str, Any], successful: bool = True) -> dict[str, Any]:
        reply: dict[str, Any] = {"channel": message["channel"], "successful": successful}
        if "id" in message:
            reply["id"] = message["id"]
        client_id = message.get("clientId")
        if isinstance(client_id, str):
            reply["clientId"] = client_id
        return reply

    def _failure(self, message: dict[str, Any], error: str, **extra: Any) -> dict[str, Any]:
        reply = self._reply(message, successful=False)
        reply["error"] = error
        reply.update(extra)
        return reply

    def _unknown_client(self, message: dict[str, Any]) -> dict[str, Any]:
        return self._failure(message, UNKNOWN_CLIENT, advice={"reconnect": "handshake", "interval": 0})

    def _advice(self) -> dict[str, Any]:
        return {"reconnect": "retry", "interval": self.interval_ms, "timeout": self.timeout_ms}

    def _client_for(self, message: dict[str, Any], principal: str) -> _Client | None:
        client_id = message.get("clientId")
        if not isinstance(client_id, str):
            return None
        client = self._clients.get(client_id)
        if client is None or client.principal != principal:
            return None
        return client

    # Meta channels other than connect, and publishes.

    def _handle_message(self, message: dict[str, Any], principal: str) -> dict[str, Any]:
        channel = message["channel"]
        if channel == HANDSHAKE:
            return self._handshake(message, principal)
        if channel in (SUBSCRIBE, UNSUBSCRIBE, DISCONNECT):
            client = self._client_for(message, principal)
            if client is None:
                return self._unknown_client(message)
            if channel == DISCONNECT:
                self._remove(client, _DISCONNECTED)
                return self._reply(message)
            return self._subscription(message, client, subscribe=channel == SUBSCRIBE)
        if channel.startswith("/meta/"):
            return self._failure(message, "400::unknown meta channel")
        if self._client_for(message, principal) is None:
            return self._unknown_client(message)
        # Notifications flow from the switch to the agent only; nothing a client says is broadcast.
        return self._failure(message, "403::publish denied")

    def _handshake(self, message: dict[str, Any], principal: str) -> dict[str, Any]:
        offered = message.get("supportedConnectionTypes")
        if isinstance(offered, list) and CONNECTION_TYPE not in offered:
            return self._failure(
                message,
                "403::unsupported connection types",
                supportedConnectionTypes=[CONNECTION_TYPE],
                advice={"reconnect": "none", "interval": 0},
            )
        client = _Client(
            client_id=secrets.token_urlsafe(24), principal=principal, last_active=time.monotonic()
        )
        self._clients[client.client_id] = client
        self._by_principal.setdefault(principal, {})[client.client_id] = client
        self._ensure_sweeper()
        reply = self._reply(message)
        reply.update(
            version="1.0",
            supportedConnectionTypes=[CONNECTION_TYPE],
            clientId=client.client_id,
            advice=self._advice(),
        )
        return reply

    def _subscription(self, message: dict[str, Any], client: _Client, *, subscribe: bool) -> dict[str, Any]:
        requested = message.get("subscription")
        names: list[Any] = requested if isinstance(requested, list) else [requested]
        extra = {"subscription": requested} if "subscription" in message else {}
        if requested is None or not names:
            return self._failure(message, "400::missing subscription", **extra)
        for name in names:
            problem = channel_error(name, wildcards=True)
            if problem:
                return self._failure(message, f"400::invalid subscription, {problem}", **extra)
            if name.startswith("/meta/") or name == "/meta":
                return self._failure(message, "403::meta channels cannot be subscribed", **extra)
        if subscribe:
            client.subscriptions.update(names)
        else:
            client.subscriptions.difference_update(names)
        reply = self._reply(message)
        reply["subscription"] = requested
        return reply

    # Connect: the long poll.

    async def _connect(self, message: dict[str, Any], principal: str) -> list[dict[str, Any]]:
        client = self._client_for(message, principal)
        if client is None:
            return [self._unknown_client(message)]
        connection_type = message.get("connectionType")
        if connection_type is not None and connection_type != CONNECTION_TYPE:
            return [
                self._failure(
                    message, "400::unsupported connection type", advice={"reconnect": "none", "interval": 0}
                )
            ]
        if client.waiter is not None:
            _settle(client.waiter, superseded=True)
        superseded = False
        # The first connect answers at once so the client learns the advice and is known to be polling.
        if client.connected and not client.queue and not self._closed:
            timeout = self._hold_timeout(message)
            if timeout > 0:
                superseded = await self._hold(client, timeout)
        client.connected = True
        if client.gone == _DISCONNECTED:
            reply = self._reply(message)
            reply["advice"] = {"reconnect": "none", "interval": 0}
            return [reply]
        if client.gone is not None or self._clients.get(client.client_id) is not client:
            return [self._unknown_client(message)]
        delivered: list[dict[str, Any]] = []
        if not superseded:
            delivered, client.queue = client.queue, []
        client.last_active = time.monotonic()
        reply = self._reply(message)
        reply["advice"] = self._advice()
        return [*delivered, reply]

    def _hold_timeout(self, message: dict[str, Any]) -> float:
        """Seconds to hold: the server's timeout, or less when the client asks (CometD clients send 0)."""
        timeout_ms: float = self.timeout_ms
        advice = message.get("advice")
        if isinstance(advice, dict):
            asked = advice.get("timeout")
            if isinstance(asked, int | float) and not isinstance(asked, bool) and asked >= 0:
                timeout_ms = min(timeout_ms, asked)
        return timeout_ms / 1000

    async def _hold(self, client: _Client, hold_s: float) -> bool:
        """Wait for a message, the timeout, or the client's end; True if another connect took over."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        client.waiter = waiter
        timer = loop.call_later(hold_s, _settle, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            # A superseding connect has installed its own waiter; leave it alone.
            if client.waiter is waiter:
                client.waiter = None
                client.last_active = time.monotonic()

    # Client life-cycle.

    def _remove(self, client: _Client, why: str) -> None:
        if self._clients.get(client.client_id) is client:
            del self._clients[client.client_id]
        siblings = self._by_principal.get(client.principal)
        if siblings is not None:
            siblings.pop(client.client_id, None)
            if not siblings:
                del self._by_principal[client.principal]
        client.gone = why
        client.queue = []
        if client.waiter is not None:
            _settle(client.waiter)

    def _ensure_sweeper(self) -> None:
        loop = asyncio.get_running_loop()
        sweeper = self._sweeper
        # A sweeper left on another (since closed) loop would never run again, so it does not count.
        if self._closed or (sweeper is not None and not sweeper.done() and sweeper.get_loop() is loop):
            return
        self._sweeper = loop.create_task(self._sweep(), name="bayeux-sweeper")

    async def _sweep(self) -> None:
        # Ends once no client is left, so an idle server holds no task; the next handshake restarts it.
        max_interval = self.max_interval_ms / 1000
        period = min(_MAX_SWEEP_PERIOD_S, max(_MIN_SWEEP_PERIOD_S, max_interval / _SWEEPS_PER_INTERVAL))
        while self._clients:
            await asyncio.sleep(period)
            self._expire(time.monotonic())

    def _expire(self, now: float) -> int:
        """Remove clients with no connect held for longer than max_interval; returns how many."""
        deadline = now - self.max_interval_ms / 1000
        stale = [c for c in self._clients.values() if c.waiter is None and c.last_active < deadline]
        for client in stale:
            self._remove(client, _DROPPED)
        return len(stale)


def _bad_request(message: str) -> HttpError:
    return HttpError(400, {"statusCode": 10, "statusMessage": message})
