"""Which Voice API client an agent login gets: one place that knows the dialects.

The desk's views keep one client per agent login and event loop, so an action reuses the Voice
API session (cookie, CSRF token) instead of logging in again.
"""

from __future__ import annotations

import asyncio
import weakref

from .genesys import GenesysClient, VoiceApiError
from .models import AgentLogin, VoiceServer

_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[int, tuple[tuple[str, ...], GenesysClient]]
] = weakref.WeakKeyDictionary()


def new_client(login: AgentLogin) -> GenesysClient:
    server = login.server
    if server.dialect != VoiceServer.GENESYS:
        raise VoiceApiError(f"The {server.get_dialect_display()} dialect is not supported yet")
    return GenesysClient(server.base_url, login.username, login.password, verify=server.verify_tls)


def shared_client(login: AgentLogin) -> GenesysClient:
    """This event loop's client for the login; a changed server or credentials gets a fresh one."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (login.server.base_url, str(login.server.verify_tls), login.username, login.password)
    cached = per_loop.get(login.pk)
    if cached and cached[0] == key:
        return cached[1]
    if cached:
        asyncio.get_running_loop().create_task(cached[1].aclose())
    client = new_client(login)
    per_loop[login.pk] = (key, client)
    return client
