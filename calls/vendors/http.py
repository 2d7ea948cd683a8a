"""What every vendor's HTTP client shares: one TLS context per process and the client's settings.

Loading the CA bundle into a new TLS context costs most of a megabyte, and a worker holds one
client per agent session, so every client of a process shares one context per verification mode.
"""

from __future__ import annotations

import functools
import ssl

import certifi
import httpx

from calls.voice import Unavailable

TIMEOUT_SECONDS = 10.0


@functools.cache
def tls_context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context(cafile=certifi.where())
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def client(base_url: str, *, verify: bool, timeout: float = TIMEOUT_SECONDS) -> httpx.AsyncClient:
    tls = tls_context(verify)
    return httpx.AsyncClient(
        base_url=base_url,
        verify=tls,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        # Connection failures happen before anything is sent, so retrying them is safe for writes too.
        transport=httpx.AsyncHTTPTransport(retries=1, verify=tls),
        headers={"Accept": "application/json"},
    )


def unreachable(exc: httpx.HTTPError) -> Unavailable:
    """An httpx failure in the desk's words; only its type, since its text may carry the request."""
    return Unavailable(f"Voice API unreachable: {type(exc).__name__}")
