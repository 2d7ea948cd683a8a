"""A bare Genesys Voice API client for the simulator's own tests: raw httpx and aiocometd.

Deliberately independent of the desk's client in ``calls/``: these tests check the wire, so
they speak it by hand, as any third-party GWS client would.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from aiocometd_noloop import Client, ConnectionType, Extension


class CookieExtension(Extension):
    """aiocometd takes no cookies argument: the session cookie rides on every outgoing request."""

    def __init__(self, cookies: httpx.Cookies) -> None:
        self.cookies = cookies

    async def outgoing(self, payload: list[dict[str, Any]], headers: dict[str, str]) -> None:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    async def incoming(self, payload: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
        return None


class GenesysAgent:
    def __init__(self, base_url: str, login: str, password: str | None = None) -> None:
        self.api = f"{base_url}/genesys/api/v2"
        self.http = httpx.AsyncClient(base_url=self.api, auth=(login, password or login), timeout=10)
        self.csrf = ""
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.me: dict[str, Any] = {}

    async def __aenter__(self) -> GenesysAgent:
        response = await self.http.get("/me", params={"subresources": "*"})
        response.raise_for_status()
        self.csrf = response.headers["X-CSRF-TOKEN"]
        self.me = response.json()["user"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self.http.aclose()

    @property
    def device_id(self) -> str:
        return self.me["devices"][0]["id"]

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, json=body, headers={"X-CSRF-TOKEN": self.csrf})

    async def operation(self, call_id: str, name: str, **params: Any) -> httpx.Response:
        return await self.post(f"/me/calls/{call_id}", {"operationName": name, **params})

    async def ok(self, call_id: str, name: str, **params: Any) -> None:
        response = await self.operation(call_id, name, **params)
        assert response.status_code == 200, response.text
        assert response.json() == {"statusCode": 0}

    async def start_session(self) -> None:
        response = await self.post(
            "/me", {"operationName": "StartContactCenterSession", "channels": ["voice"]}
        )
        assert response.json() == {"statusCode": 0}, response.text

    async def dial(self, number: str, **params: Any) -> None:
        response = await self.post(
            f"/me/devices/{self.device_id}/calls",
            {"operationName": "Dial", "destination": {"phoneNumber": number}, **params},
        )
        assert response.json() == {"statusCode": 0}, response.text

    async def calls(self) -> list[dict[str, Any]]:
        response = await self.http.get("/me/calls", params={"fields": "*"})
        return response.json()["calls"]

    async def listen(self, *channels: str) -> None:
        """Subscribe with a real CometD client; messages land in ``self.messages``."""
        self._listener = asyncio.create_task(self._listen(channels or ("/v2/me/calls",)))
        await asyncio.wait_for(self._subscribed.wait(), 10)

    async def _listen(self, channels: tuple[str, ...]) -> None:
        extension = CookieExtension(self.http.cookies)
        async with Client(
            f"{self.api}/notifications", ConnectionType.LONG_POLLING, extensions=[extension]
        ) as client:
            for channel in channels:
                await client.subscribe(channel)
            self._subscribed.set()
            async for message in client:
                await self.messages.put(message)

    async def next(self, wait: float = 5) -> dict[str, Any]:
        return await asyncio.wait_for(self.messages.get(), wait)

    async def no_more(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self.messages.empty(), f"unexpected notification: {self.messages.get_nowait()}"
