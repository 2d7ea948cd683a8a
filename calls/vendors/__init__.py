"""The Voice API vendors the desk speaks: one module each, behind ``calls.voice.VoiceBackend``.

This folder is the only place that knows a vendor: its URLs, its JSON, its event names, httpx and
aiocometd. The registry below picks the implementation by a voice server's dialect.
"""

from __future__ import annotations

from calls.voice import VoiceApiError, VoiceBackend

from .genesys import GenesysBackend
from .huawei import HuaweiBackend

BACKENDS: dict[str, type[VoiceBackend]] = {
    backend.dialect: backend for backend in (GenesysBackend, HuaweiBackend)
}
DIALECTS = [(dialect, backend.label) for dialect, backend in BACKENDS.items()]


def backend_class(dialect: str) -> type[VoiceBackend]:
    try:
        return BACKENDS[dialect]
    except KeyError:
        raise VoiceApiError(f"The desk does not speak the {dialect!r} dialect.") from None
