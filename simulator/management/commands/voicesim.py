"""`manage.py voicesim`: the Voice API simulator on its own port, without the desk or a database.

It serves the Genesys Web Services API v2 (REST and CometD) under ``/genesys/api/v2``, the Huawei
CC-Gateway AgentGateway (REST and event polling) under ``/huawei/agentgateway/resource``, and,
unless turned off, the control API under ``/control``; all of them under ``--prefix`` if given.
"""

from __future__ import annotations

# Daphne installs Twisted's asyncio reactor on import; it must come before anything imports Twisted.
from daphne.server import Server  # isort: skip

import ipaddress
import os
from typing import Any

from daphne.endpoints import build_endpoint_description_strings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# Twisted's default is 50: a burst of connections beyond it waits a second or more for the
# client's SYN to be sent again (the kernel drops what overflows the queue).
LISTEN_BACKLOG = 1024


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = (
        "Serves the Voice API simulator over HTTP: Genesys Web Services API v2 (REST and CometD) at "
        "/genesys/api/v2, Huawei CC-Gateway AgentGateway (REST and event polling) at "
        "/huawei/agentgateway/resource, and the control API at /control."
    )
    # The simulator stands alone: no system checks of the desk, no database.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8090, help="TCP port (default 8090)")
        parser.add_argument(
            "--prefix", default="", help='path prefix to serve under, e.g. "/sim" (default none)'
        )
        parser.add_argument(
            "--no-control", dest="control_enabled", action="store_false", help="turn the control API off"
        )
        parser.add_argument(
            "--control-token",
            default=os.environ.get("SIMULATOR_CONTROL_TOKEN", ""),
            help="the token the control API requires (Authorization: Bearer <token>); default "
            "SIMULATOR_CONTROL_TOKEN. Needed to serve the control API beyond loopback",
        )
        parser.add_argument(
            "--backlog",
            type=int,
            default=LISTEN_BACKLOG,
            help="connections the kernel queues until the simulator accepts them (default "
            f"{LISTEN_BACKLOG}): thousands of agents' sessions connect at once when a worker starts",
        )
        parser.add_argument(
            "--answer-delay-ms",
            type=int,
            default=1500,
            help="how long desk phones and outside parties take to answer (default 1500)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from simulator.asgi import build_app

        host: str = options["host"]
        token: str = options["control_token"]
        if options["control_enabled"] and not token and not _loopback(host):
            raise CommandError(
                f"--host {host} serves the control API beyond this machine: give it a token "
                "(--control-token or SIMULATOR_CONTROL_TOKEN), or turn it off (--no-control)"
            )
        app = build_app(
            prefix=options["prefix"],
            control_enabled=options["control_enabled"],
            answer_delay_ms=options["answer_delay_ms"],
            control_token=token,
        )

        def ready() -> None:
            port = server.listening_addresses[0][1] if server.listening_addresses else options["port"]
            shown = f"[{host}]" if ":" in host else host
            self.stdout.write(f"Voice API simulator listening on http://{shown}:{port}/")
            self.stdout.flush()

        server = Server(
            application=app,
            endpoints=[
                f"{endpoint}:backlog={options['backlog']}"
                for endpoint in build_endpoint_description_strings(host=host, port=options["port"])
            ],
            ready_callable=ready,
            verbosity=options["verbosity"],
        )
        server.run()
