"""CometD (Bayeux) notifications: the only module that uses aiocometd.

aiocometd takes no headers or cookies argument, so an ``Extension`` puts the Voice API session
on every outgoing request. aiocometd also retries failed connects and re-handshakes by itself
(``402::unknown client``) without telling its caller, so the extension watches the traffic: a
connect sent while the previous one got no successful answer, or a second handshake, yields
``RECONNECTING``; the first successful connect after that yields ``RESYNC`` (messages may have
been lost meanwhile), and the caller re-reads the server's state before trusting events again.
Anything that ends the stream surfaces as ``StreamLost``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiocometd_noloop import Client, ConnectionType, Extension
from aiocometd_noloop.exceptions import AiocometdException

from calls.voice import RestartNow, Unavailable

RESYNC = ("", None)
RECONNECTING = ("", "reconnecting")
CLOSE_TIMEOUT_SECONDS = 2.0


class StreamLost(Unavailable):
    """The notification stream ended; reconnect, then resynchronise."""


class _SessionExtension(Extension):  # type: ignore[misc]  # aiocometd has no types
    def __init__(
        self, headers: Callable[[], dict[str, str]], signal: Callable[[tuple[str, Any]], None]
    ) -> None:
        self.headers = headers
        self.signal = signal
        self.handshakes = 0
        self.connect_pending = False
        self.degraded = False

    async def outgoing(self, payload: list[dict[str, Any]], headers: dict[str, str]) -> None:
        headers.update(self.headers())
        for message in payload:
            if not isinstance(message, dict):
                continue
            channel = message.get("channel")
            retrying = (channel == "/meta/handshake" and self.handshakes > 0) or (
                channel == "/meta/connect" and self.connect_pending
            )
            if retrying and not self.degraded:
                self.degraded = True
                self.signal(RECONNECTING)
            if channel == "/meta/connect":
                self.connect_pending = True

    async def incoming(self, payload: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        for message in payload:
            # A server error page can reach here as something other than Bayeux messages.
            if not isinstance(message, dict) or not message.get("successful"):
                continue
            if message.get("channel") == "/meta/handshake":
                self.handshakes += 1
            elif message.get("channel") == "/meta/connect":
                self.connect_pending = False
                if self.degraded:
                    self.degraded = False
                    self.signal(RESYNC)


class NotificationStream:
    """``async with NotificationStream(...) as stream: async for channel, data in stream``."""

    def __init__(
        self,
        url: str,
        channels: list[str],
        headers: Callable[[], dict[str, str]],
        *,
        verify: bool = True,
        connection_timeout: float = 10.0,
    ) -> None:
        self._queue: asyncio.Queue[tuple[str, Any] | BaseException] = asyncio.Queue()
        self._extension = _SessionExtension(headers, self._queue.put_nowait)
        self._client = Client(
            url,
            ConnectionType.LONG_POLLING,
            connection_timeout=connection_timeout,
            extensions=[self._extension],
            ssl=None if verify else False,
        )
        self._channels = channels
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> NotificationStream:
        try:
            await self._client.open()
            for channel in self._channels:
                await self._client.subscribe(channel)
        except AiocometdException as exc:
            await self._close_quietly()
            raise StreamLost(f"CometD handshake or subscribe failed: {exc!r}") from exc
        self._pump = asyncio.create_task(self._forward())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pump:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self._close_quietly()

    async def _forward(self) -> None:
        try:
            while True:
                raw = await self._client.receive()
                if isinstance(raw, dict):
                    self._queue.put_nowait((str(raw.get("channel", "")), raw.get("data")))
        except AiocometdException as exc:
            self._queue.put_nowait(StreamLost(f"CometD stream ended: {exc!r}"))

    async def _close_quietly(self) -> None:
        # aiocometd's done-callback on its connect task reads the result of the task it cancels on
        # close, and the CancelledError (a BaseException) escapes it as an ERROR with a traceback
        # on every sign-out: the task is stopped on purpose here, so nobody need read it.
        transport = getattr(self._client, "_transport", None)
        task = getattr(transport, "_connect_task", None)
        if transport is not None and isinstance(task, asyncio.Future) and not task.done():
            task.remove_done_callback(transport._connect_done)
        # Closing sends a disconnect, which aiocometd retries while the server is down: bound it,
        # so a session (and a worker draining on SIGTERM) never waits on a dead server.
        with contextlib.suppress(AiocometdException, OSError, TimeoutError):
            await asyncio.wait_for(self._client.close(), CLOSE_TIMEOUT_SECONDS)

    @property
    def reconnecting(self) -> bool:
        """aiocometd is retrying: notifications may be missed until a connect succeeds."""
        return bool(self._extension.degraded)

    def abort(self, reason: str) -> None:
        """End the stream now: its owner opens a new one (and resyncs) sooner than aiocometd would."""
        self._queue.put_nowait(RestartNow(reason))

    def __aiter__(self) -> NotificationStream:
        return self

    async def __anext__(self) -> tuple[str, Any]:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item
