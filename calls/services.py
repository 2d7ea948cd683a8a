"""The one writer of call state, agent state and connection status, and their one publisher.

Each public coroutine saves in a transaction (on a database thread) and, once it has committed,
pushes the re-rendered fragments to the agent's group from the event loop. Nothing else writes
``LiveCall``/``CallRecord`` or sends to a desk group.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import hashlib
import logging
import weakref
from collections.abc import Iterable

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from . import board, fragments, sql
from .db import database_sync_to_async
from .layer import LAYER_ERRORS, health_of
from .models import AgentLogin, CallRecord, LiveCall
from .voice import AgentState, Call

log = logging.getLogger("switchboard.services")


def group_name(user_id: int) -> str:
    return f"desk.agent.{user_id}"


def session_group(session_key: str) -> str:
    """The sockets opened by one desk session (a hash: the key itself is a credential)."""
    return "desk.session." + hashlib.sha256(session_key.encode()).hexdigest()[:32]


async def close_session_sockets(session_key: str) -> None:
    """Close every desktop socket of a desk session that has ended, at once."""
    layer = get_channel_layer()
    if layer is not None and session_key:
        await layer.group_send(session_group(session_key), {"type": "desk.close"})


Push = tuple[int, str]


async def publish(push: Push | None) -> None:
    """Send HTML (htmx out-of-band fragments) to every desktop tab of one agent."""
    if push and push[1]:
        await publish_group(group_name(push[0]), push[1])


# Group sends one process has in flight at most: the Redis layer's connection pool (100 by
# default) fails a send beyond it, and the process's own receives need connections too.
PUBLISH_CONCURRENCY = 32
# The longest one group send may take.
PUBLISH_SECONDS = 5.0
_publishing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _publish_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _publishing.get(loop)
    if slots is None:
        slots = _publishing[loop] = asyncio.Semaphore(PUBLISH_CONCURRENCY)
    return slots


async def publish_group(group: str, html: str) -> None:
    """Send HTML (htmx out-of-band fragments) to every socket in a group: an agent's tabs, or the
    boards of a team."""
    layer = get_channel_layer()
    if layer is None or not html:
        return
    try:
        async with _publish_slots(), asyncio.timeout(PUBLISH_SECONDS):
            await layer.group_send(group, {"type": "desk.push", "html": html})
    except TimeoutError:
        # A send that hangs must not hold up the agent's next change: the pages heal from a snapshot.
        log.warning("could not publish to %s: the channel layer took over %.0f s", group, PUBLISH_SECONDS)
    except LAYER_ERRORS as exc:
        # Redis is down: the pages get a fresh snapshot once it is back (``calls.layer``).
        health_of(layer).failed(exc)
        log.warning("could not publish to %s: the channel layer is down (%s)", group, type(exc).__name__)
    except Exception:
        # A full or unreachable layer must not undo a saved state change: the next snapshot heals the page.
        log.exception("could not publish to %s", group)


# How the switch's call types read in the history.
DIRECTIONS = {
    "Inbound": CallRecord.INBOUND,
    "Outbound": CallRecord.OUTBOUND,
    "Internal": CallRecord.INTERNAL,
    "Consult": CallRecord.CONSULT,
}
# Two calls of one agent that end (or merge) within this long of each other belong to one
# completed transfer or conference: the switch reports both legs of it in one burst.
MERGE_WINDOW = datetime.timedelta(seconds=2)


def missed_call_ring_seconds() -> float:
    """A call released unanswered after ringing at least this long was missed; sooner, abandoned."""
    return float(getattr(settings, "MISSED_CALL_RING_SECONDS", 8))


def _seconds(delta: datetime.timedelta) -> int:
    return max(0, round(delta.total_seconds()))


class History:
    """An agent's open history rows as its session last saved them, so that an event of a call
    already seen updates the row without reading it first.

    Only the session's writer uses it, one batch at a time, each in one transaction (``begin`` at
    its start). A row saved in a batch is seen by that batch's later writes at once, and by later
    batches only once the batch has committed: a batch rolled back (and retried) starts again from
    what the database holds. A row leaves once its call has ended (other rows' writes may change
    an ended row: a completed transfer, a merge into a conference)."""

    def __init__(self) -> None:
        self._saved: dict[str, CallRecord] = {}
        self._batch: dict[str, CallRecord] = {}

    def begin(self) -> None:
        """A batch's transaction starts."""
        self._batch = {}

    def forget(self) -> None:
        """Read every row anew (from the event loop, while a batch may be writing: what that batch
        commits is what the database holds)."""
        self._saved = {}

    def get(self, login: AgentLogin, call_id: str) -> CallRecord | None:
        record = self._batch.get(call_id) or self._saved.get(call_id)
        if record is not None:
            return copy.copy(record)
        return sql.get(CallRecord, login=login.pk, call_id=call_id)

    def saved(self, record: CallRecord) -> None:
        """``record`` is written (in the open transaction) as it is now."""
        record.remember_saved()
        if not self._batch:
            transaction.on_commit(functools.partial(self._commit, self._batch))
        self._batch[record.call_id] = record

    def _commit(self, batch: dict[str, CallRecord]) -> None:
        for call_id, record in batch.items():
            if record.ended_at is None:
                self._saved[call_id] = record
            else:
                self._saved.pop(call_id, None)


def _record(login: AgentLogin, call: Call, now: datetime.datetime, history: History) -> None:
    """Fold one state of the call into its history row.

    1. First seen: the row starts ``duration`` ago, in the state it is in now; its direction is
       its call type's.
    2. A new state: the time spent in the one it leaves counts as talk (Established) or hold
       (Held); the first Established or Held is when it was answered.
    3. Two or more other parties: it is a conference now, and a call that was just merged
       into it (a consult completed as a conference) was conferenced too.
    4. Released: the outcome, and a transfer the agent completed (see ``_close``).
    """
    started = now - datetime.timedelta(seconds=call.duration)
    # A new row is inserted once, when folded (``_save_record``): one statement rather than an
    # insert and an update. An agent's writes are one at a time; should another process insert the
    # row first (a worker taking over), the batch fails on the unique key and is retried whole.
    record = history.get(login, call.id)
    if record is None:
        record = CallRecord(
            login=login,
            call_id=call.id,
            call_type=call.call_type,
            direction=DIRECTIONS.get(call.call_type)
            or (CallRecord.INBOUND if call.state == "Ringing" else CallRecord.OUTBOUND),
            parent_call_id=call.parent_id or "",
            dnis=call.dnis,
            parties=list(call.participants),
            user_data=call.user_data,
            started_at=started,
            state_since=started,
        )
    else:
        record.parties = list(dict.fromkeys([*record.parties, *call.participants]))
        if call.user_data:
            record.user_data = call.user_data
    # Huawei learns that a call is a consult only after its first event, and forgets the link
    # once its parent ends: the row keeps what it once knew.
    if call.call_type == "Consult":
        record.direction = CallRecord.CONSULT
    if call.parent_id:
        record.parent_call_id = call.parent_id
    if call.wrap_up_seconds:
        record.wrap_up_seconds = call.wrap_up_seconds
    record.duration = max(record.duration, call.duration)
    left = record.final_state
    if not call.is_live:
        if record.ended_at is None:
            _close(login, record, now, released_from=left, duration=call.duration)
        _save_record(record, history)
        return
    if call.state != left:
        _account(record, now, left)
        if call.state in ("Established", "Held") and record.answered_at is None:
            record.answered_at = record.state_since
    record.final_state = call.state
    if len(call.participants) > 1 and record.outcome != CallRecord.CONFERENCED:
        record.outcome = CallRecord.CONFERENCED
        _merged_into(login, record, now)
    _save_record(record, history)


def _save_record(record: CallRecord, history: History) -> None:
    """Saves the row the worker worked out, but never the disposition: the agent chooses that,
    from a view, possibly while a write of the worker is on its way."""
    if record._state.adding:
        sql.insert(record)
    elif changed := record.changed_fields(SAVED_FIELDS):
        # Only what changed: fewer columns to write, and nothing at all for an event that changes
        # nothing of the history (a repeat, a change of capabilities only).
        sql.update(CallRecord, {name: getattr(record, name) for name in changed}, id=record.pk)
    else:
        return
    history.saved(record)


# Fields of a history row that only the agent writes.
KEPT = {"id", "login", "call_id", "disposition"}
SAVED_FIELDS = [f.name for f in CallRecord._meta.concrete_fields if f.name not in KEPT]


def _account(record: CallRecord, now: datetime.datetime, left: str) -> None:
    """The time spent in the state the call leaves counts as talk or hold; the next one starts now.
    A row just created keeps its start: it has been in its first state since then."""
    since = record.state_since or record.started_at
    if left == "Established":
        record.talk_seconds += _seconds(now - since)
    elif left == "Held":
        record.hold_seconds += _seconds(now - since)
    if left:
        record.state_since = now


def _close(
    login: AgentLogin, record: CallRecord, now: datetime.datetime, *, released_from: str, duration: int = 0
) -> None:
    """The call was released (or a resync found it gone): its end, outcome and last figures.

    1. Answered (ever Established or Held): ``answered``; released from Ringing unanswered:
       ``missed`` after ringing ``MISSED_CALL_RING_SECONDS``, else ``abandoned`` (the caller gave
       up); dialled out and never answered: ``abandoned``. A conference stays ``conferenced``.
    2. A call released from Held while another live call of the agent holds its parties in a
       conference was merged into that conference: ``conferenced``.
    3. A consult (or a second call) released within ``MERGE_WINDOW`` after its held call: the
       agent completed a transfer, and both are ``transferred``.
    """
    rang = now - (record.state_since or record.started_at)
    _account(record, now, released_from)
    record.state_since = now
    record.released_from = released_from
    record.final_state = "Released"
    record.ended_at = now
    record.duration = max(duration, _seconds(now - record.started_at))
    if record.outcome in (CallRecord.CONFERENCED, CallRecord.TRANSFERRED):
        return
    if record.answered_at is not None:
        record.outcome = CallRecord.ANSWERED
    elif released_from == "Ringing" and rang.total_seconds() >= missed_call_ring_seconds():
        record.outcome = CallRecord.MISSED
    else:
        record.outcome = CallRecord.ABANDONED
    if released_from == "Held" and _in_a_conference(login, record):
        record.outcome = CallRecord.CONFERENCED
    elif released_from in ("Established", "Dialing", "Held") and _transferred(login, record, now):
        record.outcome = CallRecord.TRANSFERRED


def _in_a_conference(login: AgentLogin, record: CallRecord) -> bool:
    parties = set(map(str, record.parties))
    others = LiveCall.objects.filter(login=login).exclude(call_id=record.call_id)
    return bool(parties) and any(
        len(live.participants) > 1 and parties <= set(map(str, live.participants)) for live in others
    )


def _transferred(login: AgentLogin, record: CallRecord, now: datetime.datetime) -> bool:
    """Whether the call's release completes a transfer: its held call (its parent, for a consult)
    was released just before; that one is marked ``transferred`` here."""
    held = CallRecord.objects.filter(
        login=login, ended_at__gte=now - MERGE_WINDOW, outcome=CallRecord.ANSWERED
    ).exclude(call_id=record.call_id)
    if record.parent_call_id:
        # After a swap the original call may be the active one when the transfer completes.
        held = held.filter(call_id=record.parent_call_id, released_from__in=["Held", "Established"])
    else:
        held = held.filter(released_from="Held", ended_at__gte=record.started_at)
    return held.update(outcome=CallRecord.TRANSFERRED) > 0


def _merged_into(login: AgentLogin, conference: CallRecord, now: datetime.datetime) -> None:
    """Calls of the agent that ended just now and whose parties are all in this conference were
    merged into it (a consult completed as a conference)."""
    parties = set(map(str, conference.parties))
    merged = CallRecord.objects.filter(
        login=login, ended_at__gte=now - MERGE_WINDOW, outcome__in=[CallRecord.ANSWERED, CallRecord.ABANDONED]
    ).exclude(call_id=conference.call_id)
    for record in merged:
        if record.parties and set(map(str, record.parties)) <= parties:
            record.outcome = CallRecord.CONFERENCED
            record.save(update_fields=["outcome"])


def _save_live(login_id: int, call: Call, now: datetime.datetime) -> None:
    """The live call as one upsert; when first seen, its duration says how long ago it started."""
    sql.upsert(
        LiveCall,
        {
            "login": login_id,
            "call_id": call.id,
            "state": call.state,
            "call_type": call.call_type,
            "parent_call_id": call.parent_id or "",
            "participants": list(call.participants),
            "capabilities": list(call.capabilities),
            "user_data": call.user_data,
            "muted": call.muted,
            "dnis": call.dnis,
            "supervisor": call.supervisor,
            "started_at": now - datetime.timedelta(seconds=call.duration),
            "updated_at": now,
        },
        unique=("login", "call_id"),
        updated=LIVE_FIELDS,
    )


LIVE_FIELDS = (
    "state",
    "call_type",
    "parent_call_id",
    "participants",
    "capabilities",
    "user_data",
    "muted",
    "dnis",
    "supervisor",
    "updated_at",
)


# --- What the session worker saves behind its pushes (``calls.persist`` runs these in order) -----
# Each takes the time the worker learnt the change, not the time it is written.


def save_call(login: AgentLogin, call: Call, now: datetime.datetime, history: History | None = None) -> None:
    """One call notification: the live call saved (or dropped when released), its history updated."""
    _record(login, call, now, history or History())
    if call.is_live:
        _save_live(login.pk, call, now)
    else:
        sql.delete(LiveCall, login=login.pk, call_id=call.id)


def save_calls(
    login: AgentLogin, calls: Iterable[Call], now: datetime.datetime, history: History | None = None
) -> None:
    """A full resync: the saved live calls become exactly the server's; calls gone are closed."""
    history = history or History()
    calls = [c for c in calls if c.is_live]
    gone = LiveCall.objects.filter(login_id=login.pk).exclude(call_id__in=[c.id for c in calls])
    gone_ids = list(gone.values_list("call_id", flat=True))
    if gone_ids:
        LiveCall.objects.filter(login_id=login.pk, call_id__in=gone_ids).delete()
        for record in CallRecord.objects.filter(
            login_id=login.pk, call_id__in=gone_ids, ended_at__isnull=True
        ):
            _close(login, record, now, released_from=record.final_state)
            _save_record(record, history)
    for call in calls:
        _record(login, call, now, history)
        _save_live(login.pk, call, now)


def save_agent_state(login_id: int, state: AgentState, since: datetime.datetime) -> None:
    fields: dict[str, object] = {
        "agent_state": state.state,
        "state_reason": state.reason,
        "state_since": since,
    }
    if state.state != "AfterCallWork":
        fields["wrap_up_until"] = None  # the limit belonged to the after-call work just left
    sql.update(AgentLogin, fields, id=login_id)


def save_connection(login_id: int, status: str, reason: str) -> None:
    AgentLogin.objects.filter(pk=login_id).update(connection=status, connection_reason=reason)


def save_wrap_up(login_id: int, until: datetime.datetime | None) -> None:
    AgentLogin.objects.filter(pk=login_id).update(wrap_up_until=until)


def connection_reason(status: str, reason: str) -> str:
    """What the page says about a link that is not up; nothing once it is."""
    return "" if status == AgentLogin.CONNECTED else reason[:200]


# --- The same changes from outside a running session, rendered from the database ----------------


def _set_connection(login_id: int, status: str, reason: str) -> Push | None:
    reason = connection_reason(status, reason)
    with transaction.atomic():
        login = AgentLogin.objects.select_related("user").get(pk=login_id)
        if (login.connection, login.connection_reason) == (status, reason):
            return None
        login.connection, login.connection_reason = status, reason
        save_connection(login_id, status, reason)
    return login.user_id, fragments.connection(login)


async def set_connection(login_id: int, status: str, reason: str = "") -> None:
    """The session's link to the Voice API, for a login whose session does not run (any more);
    ``reason`` says, in the agent's words, why it is not up."""
    await publish(await database_sync_to_async(_set_connection)(login_id, status, reason))
    await board.member_changed(login_id)


# --- After-call work and dispositions ----------------------------------------------------------


def wrap_up_limit(login: AgentLogin, announced: int = 0) -> int:
    """How long after-call work lasts once the agent's last call ends, in seconds; 0: none.

    The switch's own WrapUpTime announced with the call (``Call.wrap_up_seconds``) wins when it is
    not zero; otherwise the voice server's ``wrap_up_seconds``. Reads ``login.server`` as loaded
    (no query when it was loaded with the login, as the session worker's is)."""
    if announced > 0:
        return announced
    return int(login.server.wrap_up_seconds)


def _set_disposition(login_id: int, call_id: str, code: str) -> Push:
    with transaction.atomic():
        login = AgentLogin.objects.select_related("user", "server").get(pk=login_id)
        CallRecord.objects.filter(login=login, call_id=call_id).update(disposition=code)
        html = fragments.agent_state(login)
        live = LiveCall.objects.filter(login=login, call_id=call_id).first()
        if live is not None:
            html += fragments.card_push(live, created=False)
    return login.user_id, html


async def set_disposition(login_id: int, call_id: str, code: str) -> None:
    """Keep the disposition the agent chose with the call's history; the bar (and the call's card
    while it is live) show it."""
    await publish(await database_sync_to_async(_set_disposition)(login_id, call_id, code))
