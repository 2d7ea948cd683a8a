"""What every vendor's HTTP client shares: one TLS context per process, the client's settings, and
the count of failed requests (calls.metrics.VOICE_API_ERRORS).

Loading the CA bundle into a new TLS context costs most of a megabyte, and a worker holds one
client per agent session, so every client of a process shares one context per verification mode.
"""

from __future__ import annotations

import functools
import ssl

import certifi
import httpx

from calls.metrics import VOICE_API_ERRORS
from calls.voice import Unavailable

TIMEOUT_SECONDS = 10.0
# How long an idle connection is kept for the next request: longer than a session's periodic
# resync (VOICE_SESSION_RESYNC_SECONDS, 60 s), so that it does not open a connection each time,
# at 2,000 agents some 30 a second. A connection the server has closed meanwhile is not reused.
KEEPALIVE_SECONDS = 90.0
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_SECONDS)


@functools.cache
def tls_context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context(cafile=certifi.where())
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that fail, by kind, for one vendor; passes everything through unchanged.

    Below the client, so each request on the wire counts once, whatever its caller makes of it
    (retries, a refusal in the response body, a poll that ends in a timeout).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, vendor: str) -> None:
        self.inner = inner
        self.vendor = vendor

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TimeoutException:
            self.count("timeout")
            raise
        except httpx.ConnectError:
            self.count("refused")
            raise
        except httpx.TransportError:
            self.count("transport")
            raise
        if response.status_code >= 500:
            self.count("http_5xx")
        elif response.status_code >= 400:
            self.count("http_4xx")
        return response

    def count(self, kind: str) -> None:
        VOICE_API_ERRORS.labels(vendor=self.vendor, kind=kind).inc()

    async def aclose(self) -> None:
        await self.inner.aclose()


def client(
    base_url: str, *, verify: bool, timeout: float = TIMEOUT_SECONDS, vendor: str = "unknown"
) -> httpx.AsyncClient:
    """A client for one vendor's Voice API; ``vendor`` labels its failures in the metrics."""
    tls = tls_context(verify)
    return httpx.AsyncClient(
        base_url=base_url,
        verify=tls,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        # Connection failures happen before anything is sent, so retrying them is safe for writes too.
        transport=CountingTransport(
            httpx.AsyncHTTPTransport(retries=1, verify=tls, limits=LIMITS),
            vendor,
        ),
        headers={"Accept": "application/json"},
    )


def unreachable(exc: httpx.HTTPError) -> Unavailable:
    """An httpx failure in the desk's words; only its type, since its text may carry the request."""
    return Unavailable(f"Voice API unreachable: {type(exc).__name__}")
