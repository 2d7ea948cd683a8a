"""The demo agents of the embedded default: their desk users, the embedded simulator's voice server
and an agent login for each of them on it."""

from __future__ import annotations

from typing import TextIO

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from .models import AgentLogin, VoiceServer

# Username == password == the simulator's seeded login, on the simulator's seeded DN (spec/simulator.md).
DEMO_AGENTS = {"agent1": "5005", "agent2": "5001", "agent4": "15000"}

EMBEDDED_SERVER_NAME = "Embedded simulator"
# Where the embedded simulator answers on rundesk's default address; rundesk corrects it once it listens.
DEFAULT_EMBEDDED_URL = "http://127.0.0.1:8000/sim/genesys"


def create_demo_agent_logins(stdout: TextIO) -> list[tuple[str, str]]:
    """Creates what is missing of the demo: the agents' users, the embedded simulator's voice server
    and each agent's login on it. Returns the agents' (username, password) pairs for the desk.

    Idempotent, and it never overwrites: an operator may have changed a password or a login on purpose.
    """
    user_model = get_user_model()
    logins = []
    with transaction.atomic():
        server = embedded_server()
        for name, dn in DEMO_AGENTS.items():
            user, created = user_model.objects.get_or_create(
                username=name, defaults={"password": make_password(name)}
            )
            if created:
                stdout.write(f"Created demo agent {name}\n")
            _, created = AgentLogin.objects.get_or_create(
                user=user,
                defaults={
                    "server": server,
                    "username": name,
                    "password": name,
                    "dn": dn,
                    "place": f"place_{dn}",
                },
            )
            if created:
                stdout.write(f"Created agent login {name} (DN {dn}) on {server}\n")
            logins.append((name, name))
    return logins


def embedded_server() -> VoiceServer:
    """The voice server that stands for the simulator inside this desk, made on first use."""
    server = VoiceServer.objects.filter(embedded=True).order_by("pk").first()
    if server is None:
        server = VoiceServer.objects.create(
            name=EMBEDDED_SERVER_NAME,
            dialect=VoiceServer.GENESYS,
            base_url=DEFAULT_EMBEDDED_URL,
            embedded=True,
        )
    return server


def point_embedded_server(base_url: str) -> None:
    """Points the embedded voice server at where this desk's simulator answers now (its port may change
    from one run to the next). Nothing happens when there is no embedded server."""
    VoiceServer.objects.filter(embedded=True).exclude(base_url=base_url).update(base_url=base_url)
