"""Numbers the desk offers agents to dial without typing them: the admin-managed speed dials, and the
transfer directory (colleagues with their live state, speed dials and the agent's recent numbers).

The directory is searched as the agent types in a transfer, conference or dial form, and searched
again every second while it is open: a colleague's state comes from what the session workers have
saved, so nobody's state change is pushed to every desk (at 2,000 agents that fan-out would dwarf
the searches of the few agents who have a directory open at any moment).

Who is a colleague: an enabled agent login of an active desk user, other than the agent, with a DN,
on the same site as the agent, that is on the agent's voice server; or, when the agent's voice
server is the embedded simulator, on any of its voice servers: the simulator is one switch that
speaks both dialects, so its Genesys and Huawei agents call each other by DN. Only a colleague's
display name, user name, DN and state ever leave this module.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Case, CharField, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Concat

from .models import AgentLogin, CallRecord, LiveCall, SpeedDial
from .operations import CONTROL_CHARACTERS
from .ratelimit import Limit

log = logging.getLogger("switchboard.directory")

# What one search answers at most: a directory is for picking, not for browsing 2,000 names.
MAX_COLLEAGUES = 20
MAX_SPEED_DIALS = 20
MAX_RECENT = 8
# How many of the agent's latest calls the recent numbers are taken from.
RECENT_CALLS_SCANNED = 50
MAX_QUERY = 64
# Searches per user ("count/seconds"): typing and the open list's refresh every second stay far below.
DEFAULT_RATE_LIMIT = "60/10"
# What a number may hold besides digits when the agent types one: the dial pad drops these.
SEPARATORS = re.compile(r"[\s\-().]")
NUMBER = re.compile(r"\+?[0-9*#]+")

# A colleague's state: the agent state, except that a colleague with a live call is on a call, and
# one whose session is down is logged out (nobody answers there). In the order the directory lists
# them: who can take a call now comes first.
STATE_LABELS = {
    "Ready": "Ready",
    "NotReady": "Not ready",
    "AfterCallWork": "After-call work",
    "OnCall": "On a call",
    "LoggedOut": "Logged out",
}


class InvalidQuery(ValueError):
    """A search the directory will not run; the message says what to change."""


@dataclass(frozen=True)
class Colleague:
    name: str
    username: str
    dn: str
    state: str

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)


@dataclass(frozen=True)
class Recent:
    number: str
    name: str  # the colleague on that number, when it is one


@dataclass(frozen=True)
class Directory:
    query: str
    colleagues: list[Colleague]
    more_colleagues: bool
    speed_dials: list[SpeedDial]
    recent: list[Recent]

    @property
    def empty(self) -> bool:
        return not (self.colleagues or self.speed_dials or self.recent)


def speed_dials() -> list[SpeedDial]:
    """The active speed dials in the order the admin gave them, for the dial pad.

    Each has ``label`` and ``number``; the number is already in the form the dial pad accepts.
    """
    return list(SpeedDial.objects.filter(active=True).order_by("position", "label"))


def clean_query(raw: str) -> str:
    """The search as the directory runs it: control characters (a NUL, which PostgreSQL refuses)
    dropped, spaces trimmed; longer than ``MAX_QUERY`` is refused (no name or number is that long)."""
    query = CONTROL_CHARACTERS.sub("", raw).strip()
    if len(query) > MAX_QUERY:
        raise InvalidQuery(f"Search with at most {MAX_QUERY} characters: part of a name or a number.")
    return query


def _number_part(query: str) -> str:
    """The query as a number, when it reads as one (separators dropped); else empty."""
    number = SEPARATORS.sub("", query)
    return number if NUMBER.fullmatch(number) else ""


def colleagues_of(login: AgentLogin) -> QuerySet[AgentLogin]:
    """Every colleague ``login``'s agent may be offered (see the module's docstring)."""
    logins = AgentLogin.objects.filter(enabled=True, user__is_active=True).exclude(pk=login.pk).exclude(dn="")
    if login.server.embedded:
        return logins.filter(server__embedded=True)
    return logins.filter(server_id=login.server_id)


def _with_state(logins: QuerySet[AgentLogin]) -> QuerySet[AgentLogin]:
    """Annotates ``presence`` (a ``STATE_LABELS`` key); ordered by it (who can take a call first),
    then by name."""
    down = [AgentLogin.OFFLINE, AgentLogin.REFUSED]
    presence = Case(
        When(Q(connection__in=down) | Q(agent_state="LoggedOut"), then=Value("LoggedOut")),
        When(on_call=True, then=Value("OnCall")),
        When(agent_state__in=["Ready", "NotReady", "AfterCallWork"], then="agent_state"),
        default=Value("LoggedOut"),
        output_field=CharField(),
    )
    ranks = [When(presence=state, then=Value(rank)) for rank, state in enumerate(STATE_LABELS)]
    rank = Case(*ranks, default=Value(len(STATE_LABELS)), output_field=IntegerField())
    return (
        logins.annotate(on_call=Exists(LiveCall.objects.filter(login_id=OuterRef("pk"))))
        .annotate(presence=presence)
        .order_by(rank, "user__first_name", "user__last_name", "user__username")
    )


def _colleague(login: AgentLogin) -> Colleague:
    user = login.user
    presence: str = getattr(login, "presence", "LoggedOut")
    return Colleague(
        name=user.get_full_name() or user.get_username(),
        username=user.get_username(),
        dn=login.dn,
        state=presence,
    )


def _matching(logins: QuerySet[AgentLogin], query: str) -> QuerySet[AgentLogin]:
    """Colleagues whose name (first, last or both), user name or DN holds ``query``, in any case."""
    if not query:
        return logins
    full_name = Concat("user__first_name", Value(" "), "user__last_name", output_field=CharField())
    match = Q(full_name__icontains=query) | Q(user__username__icontains=query)
    number = _number_part(query)
    if number:
        match |= Q(dn__icontains=number)
    return logins.annotate(full_name=full_name).filter(match)


def _speed_dials(query: str) -> list[SpeedDial]:
    dials = SpeedDial.objects.filter(active=True)
    if query:
        match = Q(label__icontains=query)
        number = _number_part(query)
        if number:
            match |= Q(number__icontains=number)
        dials = dials.filter(match)
    return list(dials.order_by("position", "label")[:MAX_SPEED_DIALS])


def _recent(login: AgentLogin, query: str, colleagues: QuerySet[AgentLogin]) -> list[Recent]:
    """The numbers of the agent's latest calls, most recent first, each once; the agent's own DN aside.
    A number that is a colleague's DN carries the colleague's name, and is found by it too."""
    records = (
        CallRecord.objects.filter(login=login)
        .order_by("-started_at", "-id")
        .only("parties", "dnis", "direction")[:RECENT_CALLS_SCANNED]
    )
    numbers: list[str] = []
    for record in records:
        number = record.callback_number
        if number and number != login.dn and number not in numbers:
            numbers.append(number)
    names = {
        found.dn: found.user.get_full_name() or found.user.get_username()
        for found in colleagues.filter(dn__in=numbers)
        .select_related("user")
        .only("dn", "user__username", "user__first_name", "user__last_name")
    }
    recent = [Recent(number, names.get(number, "")) for number in numbers]
    if query:
        number = _number_part(query)
        folded = query.casefold()
        recent = [
            entry
            for entry in recent
            if (number and number in entry.number) or (entry.name and folded in entry.name.casefold())
        ]
    return recent[:MAX_RECENT]


def search(login: AgentLogin, query: str) -> Directory:
    """What the directory offers ``login``'s agent for ``query`` (already cleaned; empty: everything,
    bounded): colleagues who can take a call first, then by name; speed dials in the admin's order;
    recent numbers, most recent first."""
    colleagues = colleagues_of(login)
    found = list(
        _with_state(_matching(colleagues, query))
        .select_related("user")
        .only(
            "dn",
            "agent_state",
            "connection",
            "user__username",
            "user__first_name",
            "user__last_name",
        )[: MAX_COLLEAGUES + 1]
    )
    return Directory(
        query=query,
        colleagues=[_colleague(colleague) for colleague in found[:MAX_COLLEAGUES]],
        more_colleagues=len(found) > MAX_COLLEAGUES,
        speed_dials=_speed_dials(query),
        recent=_recent(login, query, colleagues),
    )


def _rate_limit() -> Limit:
    return Limit.parse(str(getattr(settings, "DIRECTORY_RATE_LIMIT", DEFAULT_RATE_LIMIT)))


def rate_limit_seconds() -> int:
    return max(1, math.ceil(_rate_limit().seconds))


async def search_allowed(user_id: int) -> bool:
    """Counts one search of the user; whether it is within DIRECTORY_RATE_LIMIT (a fixed window,
    which is enough for reads). A cache that fails lets the search through, as the action limits do."""
    limit = _rate_limit()
    window = int(time.time() // limit.seconds)
    digest = hashlib.sha256(f"{user_id}\x1f{window}".encode()).hexdigest()[:40]
    key = f"ratelimit:directory:{digest}"
    try:
        await cache.aadd(key, 0, rate_limit_seconds() + 1)
        count = await cache.aincr(key)
    except Exception:
        log.warning("the cache failed counting directory searches; letting the search through", exc_info=True)
        return True
    return int(count) <= limit.count
