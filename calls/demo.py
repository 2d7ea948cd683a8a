"""The demo agents of the embedded default: their desk users, the embedded simulator's voice
servers (one per dialect it speaks) and an agent login for each of them on one of them; and a demo
team on each dialect, led by a team lead whose Voice API user may supervise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.db import transaction

from .models import AgentLogin, Team, VoiceServer


@dataclass(frozen=True)
class DemoAgent:
    username: str  # the desk user, whose password is the same
    dialect: str
    agent_id: str  # the simulator's seeded login on that dialect (spec/simulator.md)
    password: str
    dn: str
    lead: bool = False  # a team lead: the desk user may lead teams, the Voice API user supervise


DEMO_AGENTS = (
    DemoAgent("agent1", "genesys", "agent1", "agent1", "5005"),
    DemoAgent("agent2", "genesys", "agent2", "agent2", "5001"),
    DemoAgent("agent4", "genesys", "agent4", "agent4", "15000"),
    DemoAgent("agent101", "huawei", "101", "agent101", "6101"),
    DemoAgent("agent102", "huawei", "102", "agent102", "6102"),
    DemoAgent("lead1", "genesys", "lead1", "lead1", "5010", lead=True),
    DemoAgent("lead101", "huawei", "103", "agent103", "6103", lead=True),
)


@dataclass(frozen=True)
class DemoTeam:
    name: str
    leads: tuple[str, ...]  # desk users
    members: tuple[str, ...]  # desk users, whose agent logins are the members


DEMO_TEAMS = (
    DemoTeam("Genesys demo team", ("lead1",), ("agent1", "agent2", "agent4")),
    DemoTeam("Huawei demo team", ("lead101",), ("agent101", "agent102")),
)

# The simulator serves each dialect under its own path: <root>/genesys, <root>/huawei.
EMBEDDED_SERVER_NAMES = {"genesys": "Embedded simulator", "huawei": "Embedded simulator (Huawei)"}
# Where the embedded simulator answers on rundesk's default address; rundesk corrects it once it listens.
DEFAULT_EMBEDDED_ROOT = "http://127.0.0.1:8000/sim"


def create_demo_agent_logins(stdout: SupportsWrite[str]) -> list[tuple[str, str]]:
    """Creates what is missing of the demo: the agents' users, the embedded simulator's voice server,
    each agent's login on it, and the demo teams with their leads (who get the permission to lead
    teams when their user is created). Returns the agents' (username, password) pairs for the desk.

    Idempotent, and it never overwrites: an operator may have changed a password, a login or a
    team on purpose.
    """
    user_model = get_user_model()
    logins = []
    with transaction.atomic():
        for agent in DEMO_AGENTS:
            server = embedded_server(agent.dialect)
            user, created = user_model.objects.get_or_create(
                username=agent.username, defaults={"password": make_password(agent.username)}
            )
            if created:
                stdout.write(f"Created demo agent {agent.username}\n")
                if agent.lead:
                    user.user_permissions.add(supervise_permission())
            _, created = AgentLogin.objects.get_or_create(
                user=user,
                defaults={
                    "server": server,
                    "username": agent.agent_id,
                    "password": agent.password,
                    "dn": agent.dn,
                    "place": f"place_{agent.dn}",
                },
            )
            if created:
                stdout.write(f"Created agent login {agent.agent_id} (DN {agent.dn}) on {server}\n")
            logins.append((agent.username, agent.username))
        create_demo_teams(stdout)
    return logins


def supervise_permission() -> Permission:
    return Permission.objects.get(content_type__app_label="calls", codename="supervise_team")


def create_demo_teams(stdout: SupportsWrite[str]) -> None:
    """Each demo team, when it does not exist yet, with the demo users it names that exist."""
    users = get_user_model().objects
    for demo in DEMO_TEAMS:
        team, created = Team.objects.get_or_create(name=demo.name)
        if not created:
            continue
        team.leads.set(users.filter(username__in=demo.leads))
        team.members.set(AgentLogin.objects.filter(user__username__in=demo.members))
        stdout.write(f"Created {demo.name}, led by {', '.join(demo.leads)}\n")


def embedded_server(dialect: str) -> VoiceServer:
    """The voice server that stands for the simulator's ``dialect`` inside this desk, made on first use."""
    server = VoiceServer.objects.filter(embedded=True, dialect=dialect).order_by("pk").first()
    if server is None:
        server = VoiceServer.objects.create(
            name=EMBEDDED_SERVER_NAMES[dialect],
            dialect=dialect,
            base_url=f"{DEFAULT_EMBEDDED_ROOT}/{dialect}",
            embedded=True,
        )
    return server


def point_embedded_server(root: str) -> None:
    """Points the embedded voice servers at where this desk's simulator answers now (its port may
    change from one run to the next), each at its dialect's path. Nothing happens without one."""
    for server in VoiceServer.objects.filter(embedded=True):
        url = f"{root.rstrip('/')}/{server.dialect}"
        if server.base_url != url:
            VoiceServer.objects.filter(pk=server.pk).update(base_url=url)
