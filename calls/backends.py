"""Which Voice API backend an agent login gets, and the credentials its session shares.

The session worker owns each agent's Voice API session and saves its credentials (encrypted, on
the agent login) whenever they change; the desk's views borrow them through ``borrowed``, one
backend per login and event loop so connections to the Voice API are reused.
"""

from __future__ import annotations

import asyncio
import json
import weakref

from .models import AgentLogin
from .vendors import backend_class
from .voice import Agent, Credentials, Server, VoiceBackend

_borrowed: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[int, tuple[tuple[str, ...], VoiceBackend]]
] = weakref.WeakKeyDictionary()


def credentials_of(login: AgentLogin) -> Credentials:
    try:
        credentials = json.loads(login.voice_session or "{}")
    except ValueError:
        return {}
    return credentials if isinstance(credentials, dict) else {}


def backend_for(login: AgentLogin, credentials: Credentials | None = None) -> VoiceBackend:
    server = login.server
    return backend_class(server.dialect)(
        Server(base_url=server.base_url, verify_tls=server.verify_tls),
        Agent(username=login.username, password=login.password, dn=login.dn, place=login.place),
        credentials,
    )


def borrowed(login: AgentLogin) -> VoiceBackend:
    """This event loop's backend for the login, carrying the owner's current credentials."""
    per_loop = _borrowed.setdefault(asyncio.get_running_loop(), {})
    server = login.server
    key = (server.dialect, server.base_url, str(server.verify_tls), login.username, login.dn, login.place)
    cached = per_loop.get(login.pk)
    if cached and cached[0] == key:
        backend = cached[1]
    else:
        if cached:
            asyncio.get_running_loop().create_task(cached[1].aclose())
        backend = backend_for(login)
        per_loop[login.pk] = (key, backend)
    backend.credentials = credentials_of(login)
    return backend
