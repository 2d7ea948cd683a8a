"""The desk's non-HTTP routes: WebSocket paths for browsers and channel names for workers."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from calls.worker import CHANNEL, VoiceSessionsConsumer
from desktop.consumers import DesktopConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/desktop/", DesktopConsumer.as_asgi()),
]

# Channel name -> consumer. Each channel is served by `python manage.py runworker <name>` when
# the channel layer is Redis, and by `rundesk` itself on the in-memory layer.
channel_routes: dict[str, Any] = {
    CHANNEL: VoiceSessionsConsumer.as_asgi(),  # python manage.py runworker voice-sessions
}
