"""The few HTTP primitives the simulator's plain ASGI app needs: a request, a response, a router.

The simulator is a plain ASGI application rather than Django views so that thousands of held
CometD long-polls are cheap coroutines and the simulator stays independent of the desk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

MAX_BODY = 1 << 20


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def strict_json(body: bytes | str) -> Any:
    """JSON as RFC 8259 has it: no NaN, no Infinity (nor a number too large to be finite); nesting
    too deep to parse is a ``ValueError`` like any other malformed body, never a crash."""
    try:
        return json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError as exc:
        raise ValueError("the JSON is nested too deeply") from exc


def dumps(value: Any) -> bytes:
    """Strict JSON out: what is not JSON (NaN, Infinity) raises rather than goes on the wire."""
    return json.dumps(value, allow_nan=False).encode()


class HttpError(Exception):
    """Raised by a handler to answer with a JSON error body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    root: str
    scheme: str
    host: str
    client: str = ""
    params: dict[str, str] = field(default_factory=dict)
    receive: Callable[[], Awaitable[dict[str, Any]]] | None = None

    async def gone(self) -> None:
        """Returns once the client has gone away (a held poll's client that died, say)."""
        if self.receive is None:
            await asyncio.Event().wait()
            return
        while (await self.receive())["type"] != "http.disconnect":
            pass

    @property
    def cookies(self) -> dict[str, str]:
        jar = SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except Exception:
            return {}
        return {key: morsel.value for key, morsel in jar.items()}

    @property
    def base_url(self) -> str:
        """The absolute URL of the app's mount point, as the client reached it."""
        return f"{self.scheme}://{self.host}{self.root}"

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(value[6:].strip(), validate=True).decode("latin-1")
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(":")
        return (user, password) if sep else None

    def json(self) -> Any:
        """The body as strict JSON (``strict_json``); a body that is not is the caller's error, not ours."""
        if not self.body:
            return {}
        try:
            return strict_json(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, {"statusCode": 10, "statusMessage": f"Malformed JSON body: {exc}"}) from exc


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[list[tuple[bytes, bytes]], bytes]:
        payload = b"" if self.body is None else dumps(self.body)
        headers = [(b"content-type", b"application/json;charset=utf-8"), (b"cache-control", b"no-store")]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        for name, value in self.cookies.items():
            headers.append((b"set-cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Lax".encode()))
        headers.append((b"content-length", str(len(payload)).encode()))
        return headers, payload


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Routes ``(method, path pattern)`` to handlers; ``{name}`` matches one path segment."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/") or "/")
        self._routes.append((method, re.compile(f"^{regex}/?$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """The handler and its path parameters, and whether the path exists for another method."""
        path_known = False
        for route_method, regex, handler in self._routes:
            match = regex.match(path)
            if match:
                if route_method == method:
                    return handler, match.groupdict(), True
                path_known = True
        return None, {}, path_known


async def read_request(
    scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], path: str
) -> Request:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, {"statusCode": 10, "statusMessage": "Request body too large"})
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    server = scope.get("server") or ("127.0.0.1", 80)
    host = headers.get("host") or f"{server[0]}:{server[1]}"
    client = scope.get("client") or ("", 0)
    return Request(
        method=scope["method"].upper(),
        path=path,
        query=parse_qs(scope.get("query_string", b"").decode("latin-1")),
        headers=headers,
        body=b"".join(chunks),
        root=scope.get("root_path", ""),
        scheme=scope.get("scheme", "http"),
        host=host,
        client=client[0] if client else "",
        receive=receive,
    )


async def send_response(send: Callable[[dict[str, Any]], Awaitable[None]], response: Response) -> None:
    headers, payload = response.encode()
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
