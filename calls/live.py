"""An agent's desk as its session worker holds it in memory: what every push renders from.

The switch is the source of truth and the worker hears of a change first, so it pushes straight
from here (push first) and saves behind it (``calls.persist``); the database catches up within
milliseconds, and a resync rebuilds it should a write ever fail. The fragments are the ones the
page and the snapshot render (``calls.fragments``), given the facts from memory instead of the
database, so there is one render path and no query between an event and its push.

A ``Desk`` is loaded from the database once, when the session starts (what an earlier session of
the agent left: the last answered call, when the last call ended), and only the session's own
task changes it afterwards.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery

from . import fragments
from .fragments import REFERENCE_SECONDS
from .models import AgentLogin, CallRecord, DispositionCode, LiveCall, NotReadyReason, Supervision, Team
from .persist import in_parallel
from .templatetags.calls import parties
from .voice import AgentState, Call

log = logging.getLogger("switchboard.live")

# What the pages show of the login itself.
SHOWN_FIELDS = (
    "agent_state",
    "state_reason",
    "state_since",
    "connection",
    "connection_reason",
    "wrap_up_until",
)


class Reference:
    """The admin-managed lists every bar and card shows, shared by the sessions of a process.

    Read before the first push, and at once after an admin changes them in this process. A change
    made in another process (the admin runs in the web processes) is found by ``watch``, which
    reads them every ``REFERENCE_SECONDS`` and, when they differ, has every page re-rendered: no
    push waits for the database, and no page shows an old list for longer than that.

    With them, which logins some team board shows (``on_boards``): only their changes are rendered
    for the boards, so an agent on no team costs no board queries."""

    def __init__(self) -> None:
        self.reasons: list[NotReadyReason] = []
        self.codes: list[DispositionCode] = []
        # The logins on a team board (members, leads, anyone in a supervision); None until read.
        self.boards: frozenset[int] | None = None
        self._read = False
        self._changed = True
        # Counts the changes read so far.
        self.version = 0
        self._reading: asyncio.Task[bool] | None = None

    def changed(self) -> None:
        """An admin changed a list in this process: the next push waits for it to be read again."""
        self._changed = True

    async def current(self) -> Reference:
        """The lists as read last; read first when never read or changed in this process."""
        if self._changed or not self._read:
            await self.refresh()
        return self

    def on_boards(self, login_id: int) -> bool:
        """Whether a team board shows the login (or may: the lists were never read)."""
        return self.boards is None or login_id in self.boards

    async def refresh(self) -> bool:
        """Read the lists again (one read at a time); whether they differ from before."""
        if self._reading is None or self._reading.done():
            self._changed = False
            self._reading = asyncio.create_task(self._fetch())
        return await asyncio.shield(self._reading)

    async def watch(self, changed: Callable[[], Awaitable[None]]) -> None:
        """Until cancelled: read the lists every ``REFERENCE_SECONDS``; ``changed()`` when they
        differ from what the last ``changed()`` (or the start) saw, whoever read them since."""
        seen = self.version
        while True:
            await asyncio.sleep(REFERENCE_SECONDS)
            await self.refresh()
            if self.version != seen:
                seen = self.version
                await changed()

    async def _fetch(self) -> bool:
        try:
            reasons, codes, boards = await in_parallel(_read_reference)()
        except Exception:
            log.exception("could not read the Not Ready reasons and disposition codes; keeping the last")
            return False
        differ = _signature(reasons, codes) != _signature(self.reasons, self.codes)
        self.reasons, self.codes, self._read = reasons, codes, True
        self.boards = boards
        self.version += differ
        return differ


def _signature(reasons: list[NotReadyReason], codes: list[DispositionCode]) -> tuple[object, ...]:
    """What of the lists a page shows."""
    return (
        tuple((r.code, r.label, r.active) for r in reasons),
        tuple((c.code, c.label) for c in codes),
    )


def _read_reference() -> tuple[list[NotReadyReason], list[DispositionCode], frozenset[int]]:
    members = Team.members.through.objects.values_list("agentlogin_id", flat=True)
    leads = AgentLogin.objects.filter(user__led_teams__isnull=False).values_list("pk", flat=True)
    supervisions = Supervision.objects.values_list("lead_id", "member_id")
    boards = frozenset([*members, *leads, *(pk for pair in supervisions for pk in pair)])
    return list(NotReadyReason.objects.all()), list(DispositionCode.objects.filter(active=True)), boards


REFERENCE = Reference()


@dataclass
class Followed:
    """One live call as the desk follows it: its card's model (never saved from here), whether it
    was ever answered, whether it is a consult, everyone it was with, the disposition chosen."""

    live: LiveCall
    answered: bool = False
    consult: bool = False
    parties: list[str] = field(default_factory=list)
    disposition: str = ""


class Loads:
    """Desks to load, read together: those that ask within one turn of the event loop (the sessions a
    worker opens in one claim) in four queries for up to ``batch`` of them, not five queries each."""

    def __init__(self, batch: int = 500) -> None:
        self.batch = batch
        self._pending: list[tuple[Desk, asyncio.Future[None]]] = []
        self._reading: asyncio.Task[None] | None = None

    async def load(self, desk: Desk) -> None:
        loop = asyncio.get_running_loop()
        if self._reading is not None and self._reading.get_loop() is not loop:
            # Left by an event loop that has ended (a test's): its desks are nobody's now.
            self._pending, self._reading = [], None
        loaded = loop.create_future()
        self._pending.append((desk, loaded))
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read(), name="desk-loads")
        await loaded

    async def _read(self) -> None:
        await asyncio.sleep(0)  # the other desks of this turn join the batch
        while self._pending:
            batch, self._pending = self._pending[: self.batch], self._pending[self.batch :]
            try:
                await in_parallel(_load)([desk for desk, _ in batch])
            except Exception as exc:
                for _, loaded in batch:
                    if not loaded.done():
                        loaded.set_exception(exc)
            else:
                for _, loaded in batch:
                    if not loaded.done():
                        loaded.set_result(None)


def _load(desks: list[Desk]) -> None:
    """Each desk's login as saved, its live calls with their open history rows, when its last call
    ended and its last handled call: four queries for all of them."""
    by_id = {desk.login.pk: desk for desk in desks}
    own = {"login": OuterRef("pk")}
    saved = AgentLogin.objects.filter(pk__in=by_id).values(
        "pk",
        *SHOWN_FIELDS,
        last_end=Subquery(CallRecord.objects.ended().filter(**own).values("ended_at")[:1]),
        last_handled_id=Subquery(CallRecord.objects.handled().filter(**own).values("pk")[:1]),
    )
    handled_ids: dict[int, int] = {}
    for row in saved:
        desk = by_id[row.pop("pk")]
        desk.last_end = row.pop("last_end")
        handled_id = row.pop("last_handled_id")
        if handled_id is not None:
            handled_ids[handled_id] = desk.login.pk
        for name, value in row.items():
            setattr(desk.login, name, value)
    for handled_call in CallRecord.objects.filter(pk__in=handled_ids):
        by_id[handled_ids[handled_call.pk]].last_handled = handled_call
    records = {
        (r.login_id, r.call_id): r for r in CallRecord.objects.filter(login__in=by_id, ended_at__isnull=True)
    }
    for live in LiveCall.objects.filter(login__in=by_id):
        record = records.get((live.login_id, live.call_id))
        desk = by_id[live.login_id]
        live.login = desk.login
        desk.calls[live.call_id] = Followed(
            live,
            answered=record is not None and record.answered_at is not None,
            consult=record is not None and record.direction == CallRecord.CONSULT,
            parties=list(record.parties) if record else list(live.participants),
            disposition=record.disposition if record else "",
        )


class Desk:
    def __init__(self, login: AgentLogin, reference: Reference = REFERENCE) -> None:
        # The desk's own copy of the login: the agent state and connection as the pages show them.
        self.login = login
        self.reference = reference
        self.calls: dict[str, Followed] = {}
        self.last_end: datetime.datetime | None = None
        self.last_handled: CallRecord | None = None

    async def load(self) -> None:
        """What the database holds of the agent's desk, before the session's first event. Desks
        that load at once (a worker's start brings up hundreds) are read together (``LOADS``)."""
        await self.reference.current()
        await LOADS.load(self)

    # --- what changes it; each returns the fragments to push ------------------------------------

    def call(self, call: Call, now: datetime.datetime) -> str:
        """One call notification: the call's card (new, changed or gone) and, when a call came or
        went, the bar (on a call or not, since when, which call a disposition is for)."""
        if not call.is_live:
            followed = self.calls.pop(call.id, None)
            if followed is None:
                return ""
            self._ended(followed, now)
            return fragments.card_removed(call.id) + self.bar()
        created = call.id not in self.calls
        followed = self._follow(call, now)
        html = fragments.card_push(followed.live, created=created, facts=self._card_facts(followed))
        return html + self.bar() if created else html

    def resynced(
        self, calls: tuple[Call, ...], state: AgentState, now: datetime.datetime, *, anew: bool = True
    ) -> str:
        """The Voice API's whole truth: the calls become exactly these; the page is re-rendered.
        Unless ``anew``, nothing is rendered (``""``) when the truth is what the desk held already."""
        before = self._signature()
        live = {call.id: call for call in calls if call.is_live}
        for call_id in [call_id for call_id in self.calls if call_id not in live]:
            self._ended(self.calls.pop(call_id), now)
        for call in live.values():
            self._follow(call, now)
        self._state(state, now)
        if not anew and self._signature() == before:
            return ""
        return self.calls_region() + self.bar()

    def _signature(self) -> tuple[object, ...]:
        """Everything of the desk a resync can change, to compare before and after."""
        login = self.login
        calls = tuple(
            (
                call_id,
                followed.live.state,
                followed.live.call_type,
                followed.live.parent_call_id,
                followed.live.participants,
                followed.live.capabilities,
                followed.live.user_data,
                followed.live.muted,
                followed.live.dnis,
                followed.live.supervisor,
                followed.answered,
                followed.consult,
                followed.parties,
            )
            for call_id, followed in self.calls.items()
        )
        return (login.agent_state, login.state_reason, login.state_since, calls)

    def agent_state(self, state: AgentState, now: datetime.datetime) -> str:
        self._state(state, now)
        return self.bar()

    def connection(self, status: str, reason: str, *, anew: bool = False) -> str:
        """The session's link to the Voice API; nothing to push when it is as shown, unless ``anew``."""
        if (self.login.connection, self.login.connection_reason) == (status, reason) and not anew:
            return ""
        self.login.connection, self.login.connection_reason = status, reason
        return fragments.connection(self.login)

    def wrap_up(self, until: datetime.datetime | None) -> str:
        self.login.wrap_up_until = until
        return self.bar()

    def disposition(self, call_id: str, code: str) -> str:
        """The agent chose a disposition (a view saved it): the bar and the call's card show it."""
        followed = self.calls.get(call_id)
        html = ""
        if followed is not None:
            followed.disposition = code
            html = fragments.card_push(followed.live, created=False, facts=self._card_facts(followed))
        if self.last_handled is not None and self.last_handled.call_id == call_id:
            self.last_handled.disposition = code
        return self.bar() + html

    def owes_disposition(self) -> bool:
        """As ``AgentLogin.disposition_missing``, from memory."""
        last = self.last_handled
        return bool(
            self.login.server.disposition_required and self.reference.codes and last and not last.disposition
        )

    # --- rendering -----------------------------------------------------------------------------

    def snapshot(self) -> str:
        return self.bar() + fragments.connection(self.login) + self.calls_region()

    def bar(self) -> str:
        starts = [followed.live.started_at for followed in self.calls.values()]
        facts = fragments.BarFacts(
            reasons=self.reference.reasons,
            codes=self.reference.codes,
            first_call_started=min(starts) if starts else None,
            last_end=self.last_end,
            last_handled=self.last_handled,
        )
        return fragments.agent_state(self.login, facts=facts)

    def calls_region(self) -> str:
        by_live = {id(followed.live): followed for followed in self.calls.values()}
        return fragments.calls_region(
            self.login,
            calls=[followed.live for followed in self.calls.values()],
            facts=lambda live: self._card_facts(by_live[id(live)]),
        )

    def _card_facts(self, followed: Followed) -> fragments.CardFacts:
        parent = self.calls.get(followed.live.parent_call_id) if followed.live.parent_call_id else None
        consult_for = parties(parent.live) if parent else "another call"
        return fragments.CardFacts(self.reference.codes, followed.disposition, consult_for)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _follow(self, call: Call, now: datetime.datetime) -> Followed:
        followed = self.calls.get(call.id)
        if followed is None:
            live = LiveCall(
                login=self.login,
                call_id=call.id,
                started_at=now - datetime.timedelta(seconds=call.duration),
            )
            followed = self.calls[call.id] = Followed(live)
        live = followed.live
        live.state = call.state
        live.call_type = call.call_type
        live.parent_call_id = call.parent_id or ""
        live.participants = list(call.participants)
        live.capabilities = list(call.capabilities)
        live.user_data = call.user_data
        live.muted = call.muted
        live.dnis = call.dnis
        live.supervisor = call.supervisor
        if call.state in ("Established", "Held"):
            followed.answered = True
        if call.call_type == "Consult" or call.parent_id:
            followed.consult = True
        followed.parties = list(dict.fromkeys([*followed.parties, *call.participants]))
        return followed

    def _ended(self, followed: Followed, now: datetime.datetime) -> None:
        self.last_end = now
        if followed.answered and not followed.consult:
            live = followed.live
            self.last_handled = CallRecord(
                login=self.login,
                call_id=live.call_id,
                parties=followed.parties,
                dnis=live.dnis,
                disposition=followed.disposition,
            )

    def _state(self, state: AgentState, now: datetime.datetime) -> None:
        login = self.login
        if (login.agent_state, login.state_reason) != (state.state, state.reason):
            login.agent_state, login.state_reason, login.state_since = state.state, state.reason, now
            if state.state != "AfterCallWork":
                login.wrap_up_until = None


LOADS = Loads()
