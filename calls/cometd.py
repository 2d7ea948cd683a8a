"""CometD (Bayeux) notifications: the only module that uses aiocometd.

aiocometd takes no headers or cookies argument, so an ``Extension`` puts the Voice API session
on every outgoing request. It re-handshakes by itself when the server forgets the client
(``402::unknown client``); messages published in between are lost, so the stream reports every
re-handshake as ``RESYNC`` and the caller re-reads the server's state before trusting events.
Anything else that ends the stream surfaces as ``StreamLost``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiocometd_noloop import Client, ConnectionType, Extension
from aiocometd_noloop.exceptions import AiocometdException

RESYNC = ("", None)


class StreamLost(Exception):
    """The notification stream ended; reconnect, then resynchronise."""


class _SessionExtension(Extension):
    def __init__(self, headers: Callable[[], dict[str, str]]) -> None:
        self.headers = headers
        self.handshakes = 0

    async def outgoing(self, payload: list[dict[str, Any]], headers: dict[str, str]) -> None:
        headers.update(self.headers())

    async def incoming(self, payload: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        for message in payload:
            if message.get("channel") == "/meta/handshake" and message.get("successful"):
                self.handshakes += 1


class NotificationStream:
    """``async with NotificationStream(...) as stream: async for channel, data in stream``.

    Yields ``RESYNC`` after the server lost and re-created the CometD session."""

    def __init__(
        self,
        url: str,
        channels: list[str],
        headers: Callable[[], dict[str, str]],
        *,
        verify: bool = True,
        connection_timeout: float = 10.0,
    ) -> None:
        self._extension = _SessionExtension(headers)
        self._client = Client(
            url,
            ConnectionType.LONG_POLLING,
            connection_timeout=connection_timeout,
            extensions=[self._extension],
            ssl=None if verify else False,
        )
        self._channels = channels
        self._handshakes_seen = 0
        self._pending: tuple[str, Any] | None = None

    async def __aenter__(self) -> NotificationStream:
        try:
            await self._client.open()
            for channel in self._channels:
                await self._client.subscribe(channel)
        except AiocometdException as exc:
            await self._close_quietly()
            raise StreamLost(f"CometD handshake or subscribe failed: {exc!r}") from exc
        self._handshakes_seen = self._extension.handshakes
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close_quietly()

    async def _close_quietly(self) -> None:
        try:
            await self._client.close()
        except (AiocometdException, OSError):
            pass

    def __aiter__(self) -> NotificationStream:
        return self

    async def __anext__(self) -> tuple[str, Any]:
        if self._pending is not None:
            message, self._pending = self._pending, None
            return message
        try:
            raw = await self._client.receive()
        except AiocometdException as exc:
            raise StreamLost(f"CometD stream ended: {exc!r}") from exc
        message = (str(raw.get("channel", "")), raw.get("data"))
        if self._extension.handshakes > self._handshakes_seen:
            self._handshakes_seen = self._extension.handshakes
            self._pending = message
            return RESYNC
        return message
