"""`manage.py rundesk`: the whole desk in one process, ready for a demo on a fresh checkout.

1. Apply migrations.
2. On the embedded default, create the demo agents; create the admin user if missing.
3. Serve the ASGI app with Daphne.
4. Once Daphne listens, serve the worker channels on the same event loop when the channel layer
   is the in-memory one, which cannot reach a `runworker` in another process.
5. Then point the embedded voice server at this run's address, and have the in-process worker
   reopen the agent sessions that should run (a restart cut them).
"""

from __future__ import annotations

# Daphne installs Twisted's asyncio reactor on import; it must come before anything imports Twisted.
from daphne.server import Server  # isort: skip

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from channels.routing import ChannelNameRouter, get_default_application
from channels.worker import Worker
from daphne.access import AccessLogGenerator
from daphne.endpoints import build_endpoint_description_strings
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from calls.db import database_sync_to_async
from calls.demo import create_demo_agent_logins, point_embedded_server
from calls.worker import CHANNEL as VOICE_SESSIONS
from calls.worker import release_all_leases
from desktop.routing import channel_routes

logger = logging.getLogger("switchboard.rundesk")
# Connections the kernel queues until the desk accepts them; Twisted's default is 50, and a burst
# beyond it (every page reconnecting at once) waits a second or more for SYNs sent again.
LISTEN_BACKLOG = 1024


def start_session_workers(routes: Mapping[str, Any], layer: BaseChannelLayer) -> list[asyncio.Task[Any]]:
    """Serves every channel in ``routes`` on the current event loop; nothing when there is none."""
    if not routes:
        return []
    worker = Worker(application=ChannelNameRouter(dict(routes)), channels=list(routes), channel_layer=layer)
    loop = asyncio.get_event_loop()
    tasks = [
        loop.create_task(worker.handle(), name="session-workers"),
        # Reaps finished consumer instances and logs their exceptions, as `runworker` does.
        loop.create_task(worker.application_checker(), name="session-workers-checker"),
    ]
    for task in tasks:
        task.add_done_callback(_report_stopped_worker)
    return tasks


def _report_stopped_worker(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.critical("In-process worker %s stopped", task.get_name(), exc_info=task.exception())


def http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def embedded_simulator_url(host: str, port: int) -> str:
    """The embedded simulator's root as the worker reaches it: a wildcard address is not one to
    connect to, so it becomes the loopback of its family."""
    loopback = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    return http_url(loopback, port) + "sim"


async def bring_sessions_back(simulator_url: str | None, layer: BaseChannelLayer | None) -> None:
    """1. Point the embedded voice server at ``simulator_url`` (its port may differ from the last run).
    2. With the in-memory layer (``layer`` given) this process is the only worker there is: leases
       left by an earlier run of it are stale, so hand them back at once instead of waiting them out.
    3. Ask the in-process worker on ``layer`` to reconcile: sessions that should run are opened again."""
    try:
        if simulator_url:
            # The ORM is synchronous and this runs on Daphne's event loop.
            await database_sync_to_async(point_embedded_server)(simulator_url)
        if layer is not None and VOICE_SESSIONS in channel_routes:
            await database_sync_to_async(release_all_leases)()
            await layer.send(VOICE_SESSIONS, {"type": "session.reconcile"})
    except Exception:
        logger.exception("could not bring the agent sessions back")


class Command(BaseCommand):
    help = "Migrates, creates the demo users, and serves the desk (web, WebSocket, workers) in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
        parser.add_argument(
            "--reset-admin", action="store_true", help="give the existing admin user a new random password"
        )

    def handle(self, *args: Any, host: str, port: int, reset_admin: bool, **options: Any) -> None:
        verbosity: int = options["verbosity"]
        call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0))
        logins = create_demo_agent_logins(self.stdout) if settings.SIMULATOR_ENABLED else []
        admin_password = self.ensure_admin(reset=reset_admin)
        # Migrations ran in this thread; requests run in others. Do not keep this connection idle.
        connections.close_all()

        # Held here: the event loop keeps only weak references to tasks.
        tasks: list[asyncio.Task[Any]] = []

        def ready() -> None:
            actual_port = server.listening_addresses[0][1] if server.listening_addresses else port
            self.stdout.write(f"Switchboard desk ready at {http_url(host, actual_port)}")
            for username, password in logins:
                self.stdout.write(f"  demo login: {username} / {password}")
            if admin_password:
                self.stdout.write(f"  admin login: admin / {admin_password}")
            layer = get_channel_layer()
            in_process = isinstance(layer, InMemoryChannelLayer)
            if in_process:
                tasks.extend(start_session_workers(channel_routes, layer))
            elif channel_routes:
                names = " ".join(sorted(channel_routes))
                self.stdout.write(f"  session workers: run `python manage.py runworker {names}`")
            simulator_url = embedded_simulator_url(host, actual_port) if settings.SIMULATOR_ENABLED else None
            comeback = bring_sessions_back(simulator_url, layer if in_process else None)
            tasks.append(asyncio.get_event_loop().create_task(comeback, name="bring-sessions-back"))
            self.stdout.flush()

        server = Server(
            application=get_default_application(),
            endpoints=[
                f"{endpoint}:backlog={LISTEN_BACKLOG}"
                for endpoint in build_endpoint_description_strings(host=host, port=port)
            ],
            ready_callable=ready,
            action_logger=AccessLogGenerator(self.stdout) if verbosity >= 2 else None,
            verbosity=verbosity,
        )
        server.run()

    def ensure_admin(self, *, reset: bool) -> str | None:
        """The new admin password when one was set now, else None (it was printed when set)."""
        user_model = get_user_model()
        admin = user_model.objects.filter(username="admin").first()
        if admin is not None and not reset:
            return None
        password = secrets.token_urlsafe(12)
        if admin is None:
            user_model.objects.create_superuser("admin", email="", password=password)
        else:
            admin.set_password(password)
            admin.save(update_fields=["password"])
        return password
