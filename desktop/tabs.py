"""The open desk tabs of one process, looked after together.

Every ``calls.presence.TAB_ALIVE_SECONDS`` each open tab is checked: its desk session still lives
(sign-out, idle expiry, a single sign-on that ended) and, on a lead's board, its user still leads the
team; a tab that fails is closed. The owners of the agents' Voice API sessions hear that the others
are open (an empty chair is set Not Ready), and each tab joins its groups again, which mends a
membership the channel layer lost without a read failing (a group that expired, say).

Tabs come due at the moments they connected, and those that come due within a short while of each
other are looked after in one go: one trip to the database for all their checks, one message to each
session worker for all its agents' tabs, one trip to Redis for all their groups. A thousand tabs
looked after one by one cost a thousand of each every period.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.utils import timezone

from calls import presence
from calls.layer import LAYER_ERRORS, health_of, join
from calls.models import AgentLogin, Team
from calls.persist import in_parallel
from calls.worker import tell_owners

log = logging.getLogger("switchboard.desktop")

# Tabs that come due within this share of the period of the first are looked after with it.
GATHER_SHARE = 0.05


class Tab(Protocol):
    """What the keeper needs of an open desk socket (``desktop.consumers.DesktopConsumer``)."""

    channel_name: str
    session_key: str
    login_id: int
    team_id: int

    @property
    def user_id(self) -> int: ...

    def group_names(self) -> list[str]: ...

    def mend(self) -> None: ...

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...


@dataclass(frozen=True)
class Verdict:
    """What one check found for a tab: 0 when it may stay open, else the close code; and its
    login with what finding the session's owner needs."""

    close: int
    owner: AgentLogin | None


SESSION_ENDED = 4401
NOT_A_LEAD = 4403


def _session_users(keys: set[str]) -> dict[str, str]:
    """The user id each of the desk sessions ``keys`` belongs to, for those that still live."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not issubclass(store, DatabaseSessionStore):
        return {key: str(data.get(SESSION_KEY, "")) for key in keys if (data := store(key).load())}
    rows = store.get_model_class().objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
    decode = store().decode
    saved = rows.values_list("session_key", "session_data")
    return {key: str(decode(data).get(SESSION_KEY, "")) for key, data in saved}


def leads_of(user_ids: set[int], team_id: int) -> set[int]:
    """Which of the users lead the team now (read afresh: permissions and leads change)."""
    users = get_user_model().objects.filter(pk__in=user_ids)
    return {user.pk for user in users if Team.objects.led_by(user).filter(pk=team_id).exists()}


@in_parallel
def check(tabs: list[tuple[str, int, int, int]]) -> list[Verdict]:
    """For each tab, ``(session key, user id, login id, team id)``: whether it may stay open, and its
    login as its session's owner needs it; in one trip to the database whatever their number."""
    sessions = _session_users({key for key, _, _, _ in tabs if key})
    user_ids = {user_id for _, user_id, _, _ in tabs}
    users = get_user_model().objects.filter(pk__in=user_ids, is_active=True)
    active = set(users.values_list("pk", flat=True))
    login_ids = {login_id for _, _, login_id, _ in tabs}
    logins = AgentLogin.objects.filter(pk__in=login_ids).only("id", "worker", "lease_until").order_by()
    owners = {login.pk: login for login in logins}
    boards: dict[int, set[int]] = collections.defaultdict(set)
    for _, user_id, _, team_id in tabs:
        if team_id:
            boards[team_id].add(user_id)
    leads = {team_id: leads_of(users, team_id) for team_id, users in boards.items()}
    verdicts = []
    for key, user_id, login_id, team_id in tabs:
        if not key or sessions.get(key) != str(user_id) or user_id not in active:
            verdicts.append(Verdict(SESSION_ENDED, None))
        elif team_id and user_id not in leads[team_id]:
            verdicts.append(Verdict(NOT_A_LEAD, None))
        else:
            verdicts.append(Verdict(0, owners.get(login_id)))
    return verdicts


class Keeper:
    """The open tabs of this process on one event loop, each due for its check a period after the
    last (or after it connected)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tabs: dict[str, tuple[Tab, float]] = {}
        self._due: collections.deque[tuple[float, str]] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def add(self, tab: Tab) -> None:
        """The tab has just connected, and checked everything a check would: due a period from now."""
        self._schedule(tab, self.loop.time() + presence.TAB_ALIVE_SECONDS)
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._keep(), name="desk-tabs")

    def discard(self, tab: Tab) -> None:
        self.tabs.pop(tab.channel_name, None)

    def _schedule(self, tab: Tab, due: float) -> None:
        self.tabs[tab.channel_name] = (tab, due)
        self._due.append((due, tab.channel_name))

    async def _keep(self) -> None:
        while self.tabs:
            while self._due and self.tabs.get(self._due[0][1], (None, None))[1] != self._due[0][0]:
                self._due.popleft()  # closed, or due again later than this
            if not self._due:
                return
            period = presence.TAB_ALIVE_SECONDS
            await asyncio.sleep(max(0.0, self._due[0][0] - self.loop.time()) + period * GATHER_SHARE)
            now = self.loop.time()
            batch: list[Tab] = []
            while self._due and self._due[0][0] <= now:
                due, name = self._due.popleft()
                entry = self.tabs.get(name)
                if entry is not None and entry[1] == due:
                    batch.append(entry[0])
                    self._schedule(entry[0], now + period)
            try:
                await self.look_after(batch)
            except Exception:
                log.exception("could not look after %s open desk tabs", len(batch))

    async def look_after(self, tabs: list[Tab]) -> None:
        """1. check every tab, closing those whose session ended or whose user no longer leads the
        team of the board; 2. tell the owners of the others' sessions that they are open; 3. have
        them join their groups again."""
        if not tabs:
            return
        verdicts = await check([(tab.session_key, tab.user_id, tab.login_id, tab.team_id) for tab in tabs])
        open_tabs = []
        for tab, verdict in zip(tabs, verdicts, strict=True):
            if verdict.close:
                self.discard(tab)
                await tab.close(code=verdict.close)
            else:
                open_tabs.append((tab, verdict.owner))
        await tell_owners([(owner, tab.channel_name) for tab, owner in open_tabs if owner is not None])
        layer: Any = get_channel_layer()
        try:
            memberships = [(group, tab.channel_name) for tab, _ in open_tabs for group in tab.group_names()]
            await join(layer, memberships)
        except LAYER_ERRORS as error:
            health_of(layer).failed(error)
            for tab, _ in open_tabs:
                tab.mend()


_keepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Keeper] = weakref.WeakKeyDictionary()


def keeper() -> Keeper:
    """This process's keeper of open tabs on the running event loop."""
    loop = asyncio.get_running_loop()
    found = _keepers.get(loop)
    if found is None:
        found = _keepers[loop] = Keeper(loop)
    return found
