"""The Voice API's HTTP client as every vendor module uses it (``calls.vendors.http``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import pytest

from calls.vendors import http


class LookupRecorder:
    """A finder ahead of Python's own that notes every module looked for and finds nothing itself."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        self.names.append(name)
        return None


@contextmanager
def module_lookups() -> Iterator[list[str]]:
    """The names of the modules looked for on disk meanwhile (a module imported already is not)."""
    recorder = LookupRecorder()
    sys.meta_path.insert(0, recorder)
    try:
        yield recorder.names
    finally:
        sys.meta_path.remove(recorder)


@pytest.mark.asyncio
async def test_a_warm_client_looks_for_no_module_on_disk_for_each_request(simulator: str) -> None:
    """httpcore asks which async library runs it on every lock and event of a request, by importing
    ``sniffio``: were it missing, each request would search the disk for it, several times over."""
    client: Any = http.client(simulator, verify=False, vendor="genesys")
    async with client:
        await client.get("/control/state")

        with module_lookups() as looked_for:
            for _ in range(3):
                assert (await client.get("/control/state")).status_code == 200

    assert looked_for == []


def test_a_session_keeps_its_voice_api_connection_between_periodic_resyncs(settings: Any) -> None:
    """httpx closes a connection idle for 5 s; a resync every minute would open one each time."""
    client = http.client("http://127.0.0.1:9/", verify=True, vendor="genesys")
    pool = client._transport.inner._pool  # type: ignore[attr-defined]

    assert pool._keepalive_expiry > settings.VOICE_SESSION_RESYNC_SECONDS
