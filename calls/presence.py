"""What the desk does on the agent's behalf, so that no call is routed to an empty or unready chair.

- **Missed calls**: a call that rang at the agent and stopped without being answered (after
  ringing at least ``MISSED_CALL_RING_SECONDS``; shorter, the caller gave up) is told to the
  agent in a toast that stays, and the agent is set Not Ready ("Missed call") when
  ``MISSED_CALL_NOT_READY`` is on, as ring-no-answer does on other desks.
- **After-call work**: when the agent's last call ends, after-call work starts by itself for the
  time the switch announced with the call (Genesys ``WrapUpTime``) or else the voice server's
  ``wrap_up_seconds``; at the limit the agent goes back to the state before it.
- **Closed desks**: every desk tab says it is alive; when a Ready agent has had no tab for
  ``DESK_CLOSED_GRACE_SECONDS``, the agent is set Not Ready ("Desk closed").

One ``Presence`` per agent session, fed by the session worker with the events it applies; it acts
through the session owner's backend (``act``), and the owner audits what it does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from django.conf import settings

from .voice import AgentState, Call

# A desk tab says it is alive this often; one not heard of for three times as long is gone.
TAB_ALIVE_SECONDS = 20.0
MISSED_CALL_REASON = "Missed call"
DESK_CLOSED_REASON = "Desk closed"

Act = Callable[[AgentState, str], Awaitable[None]]
Notify = Callable[[Call], Awaitable[None]]


def missed_call_ring_seconds() -> float:
    return float(getattr(settings, "MISSED_CALL_RING_SECONDS", 8))


def desk_closed_grace_seconds() -> float:
    return float(getattr(settings, "DESK_CLOSED_GRACE_SECONDS", 60))


class Presence:
    def __init__(
        self,
        state: AgentState,
        *,
        act: Act,
        missed: Notify,
        wrap_up_limit: Callable[[int], int],
        wrap_up_started: Callable[[int], Awaitable[None]],
        owes_disposition: Callable[[], Awaitable[bool]],
    ) -> None:
        self.state = state
        self._act = act
        self._missed = missed
        self._wrap_up_limit = wrap_up_limit
        self._wrap_up_started = wrap_up_started
        self._owes_disposition = owes_disposition
        self.ringing: dict[str, float] = {}
        self.live: set[str] = set()
        self.tabs: dict[str, float] = {}
        self.tabless_since: float | None = time.monotonic()
        self.tab_seen = False
        self._wrap_up: asyncio.Task[None] | None = None

    def close(self) -> None:
        if self._wrap_up:
            self._wrap_up.cancel()

    # -- what the session tells it -----------------------------------------------------------

    async def call_changed(self, call: Call) -> None:
        now = time.monotonic()
        if call.is_live:
            self.live.add(call.id)
            if call.state == "Ringing":
                self.ringing.setdefault(call.id, now)
            else:
                self.ringing.pop(call.id, None)
            if self._wrap_up:
                self._wrap_up.cancel()
                self._wrap_up = None
            return
        self.live.discard(call.id)
        rang_since = self.ringing.pop(call.id, None)
        if rang_since is not None:
            if now - rang_since >= missed_call_ring_seconds():
                await self._missed(call)
                if getattr(settings, "MISSED_CALL_NOT_READY", True) and self.state.state == "Ready":
                    await self._act(AgentState("NotReady", MISSED_CALL_REASON), "a call rang out unanswered")
            return
        if not self.live:
            await self._start_wrap_up(self._wrap_up_limit(call.wrap_up_seconds))

    def state_changed(self, state: AgentState) -> None:
        self.state = state
        if state.state != "AfterCallWork" and self._wrap_up:
            self._wrap_up.cancel()
            self._wrap_up = None

    def resynced(self, calls: tuple[Call, ...], state: AgentState) -> None:
        """The truth replaces what was followed: a call that ended unseen is not judged."""
        self.live = {call.id for call in calls}
        self.ringing = {k: v for k, v in self.ringing.items() if k in self.live}
        now = time.monotonic()
        for call in calls:
            if call.state == "Ringing":
                self.ringing.setdefault(call.id, now)
        self.state_changed(state)

    def tab(self, tab: str, *, closed: bool) -> bool:
        """A desk tab says it is open, or has closed; whether it is one not heard of before."""
        if closed:
            self.tabs.pop(tab, None)
            return False
        new = tab not in self.tabs
        self.tabs[tab] = time.monotonic()
        self.tabless_since = None
        self.tab_seen = True
        return new

    def keep_tabs(self) -> None:
        """The tabs open until now count as open: they could not say so (the channel layer is down)."""
        now = time.monotonic()
        self.tabs = dict.fromkeys(self.tabs, now)

    async def tick(self) -> None:
        """Called every few seconds: notice a desk left without any tab."""
        now = time.monotonic()
        alive = 3 * TAB_ALIVE_SECONDS
        self.tabs = {tab: seen for tab, seen in self.tabs.items() if now - seen < alive}
        if self.tabs:
            self.tabless_since = None
            return
        if self.tabless_since is None:
            self.tabless_since = now
        grace = desk_closed_grace_seconds()
        if not self.tab_seen:
            # A session just started: give its tabs the time to say they are there.
            grace = grace and max(grace, alive)
        if grace and now - self.tabless_since >= grace and self.state.state == "Ready":
            await self._act(AgentState("NotReady", DESK_CLOSED_REASON), "no desk tab was open")

    # -- after-call work ---------------------------------------------------------------------

    async def _start_wrap_up(self, seconds: int) -> None:
        if seconds <= 0 or self.state.state not in ("Ready", "NotReady"):
            return
        before = self.state
        await self._act(AgentState("AfterCallWork"), f"the call ended: {seconds} s of after-call work")
        await self._wrap_up_started(seconds)
        self._wrap_up = asyncio.create_task(self._end_wrap_up(seconds, before))

    async def _end_wrap_up(self, seconds: int, before: AgentState) -> None:
        await asyncio.sleep(seconds)
        self._wrap_up = None
        # A disposition the voice server requires keeps the agent in after-call work until chosen.
        if self.state.state == "AfterCallWork" and not await self._owes_disposition():
            await self._act(before, "the after-call work time ran out")
