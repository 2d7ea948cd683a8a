"""Agent logins and voice servers (admin-managed), teams and their leads, live call state and call
history.

Live calls and call history are written only by ``calls.services``, which also publishes what
changed; audit entries only by ``calls.audit``, once each; supervisions only by
``calls.supervision`` (and dropped by ``calls.board`` when they are over).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import DEFERRED
from django.utils import timezone

from .crypto import EncryptedTextField
from .vendors import DIALECTS


class VoiceServer(models.Model):
    name = models.CharField(max_length=100, unique=True)
    dialect = models.CharField(max_length=20, choices=DIALECTS, default=DIALECTS[0][0])
    base_url = models.URLField(
        max_length=300,
        help_text=(
            "The server's root, without the Voice API's path (for example https://gws.example.com, "
            "not …/api/v2; https://cc-gateway.example.com:8043, not …/agentgateway/resource)."
        ),
    )
    verify_tls = models.BooleanField("verify TLS certificates", default=True)
    embedded = models.BooleanField(
        default=False, editable=False, help_text="The simulator inside this desk; its URL follows rundesk."
    )
    wrap_up_seconds = models.PositiveIntegerField(
        "after-call work (seconds)",
        default=0,
        validators=[MaxValueValidator(86400)],
        help_text=(
            "After-call work that starts by itself when an agent's last call ends, for at most this "
            "long (the agent may end it sooner); 0: none. On Genesys, a non-zero WrapUpTime the switch "
            "announces with the call wins over this setting."
        ),
    )
    disposition_required = models.BooleanField(
        default=False,
        help_text=(
            "Agents must choose a disposition code for their last answered call before they leave "
            "after-call work for Ready (only while active disposition codes exist)."
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentLogin(models.Model):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"
    # The Voice API refused the login's credentials: no retry until an admin changes the login.
    REFUSED = "refused"
    CONNECTIONS = [
        (CONNECTED, "Connected"),
        (RECONNECTING, "Reconnecting"),
        (OFFLINE, "Offline"),
        (REFUSED, "Credentials refused"),
    ]

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_login"
    )
    server = models.ForeignKey(VoiceServer, on_delete=models.PROTECT, related_name="agent_logins")
    username = models.CharField("Voice API username", max_length=150)
    password = EncryptedTextField("Voice API password")
    place = models.CharField(max_length=100, blank=True)
    dn = models.CharField("DN", max_length=32, blank=True)
    enabled = models.BooleanField(default=True)
    connection = models.CharField(max_length=20, choices=CONNECTIONS, default=OFFLINE, editable=False)
    connection_reason = models.CharField(max_length=200, blank=True, editable=False)
    agent_state = models.CharField(max_length=20, default="LoggedOut", editable=False)
    state_reason = models.CharField(max_length=64, blank=True, editable=False)
    state_since = models.DateTimeField(default=timezone.now, editable=False)
    # The session worker's bookkeeping: whether a session should run, and which worker holds it.
    wanted = models.BooleanField(default=False, editable=False)
    worker = models.CharField(max_length=100, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The owning worker's Voice API session credentials (cookie and CSRF token, or Guid), which the
    # desk's views borrow to act in that session; empty while no worker owns it.
    voice_session = EncryptedTextField(blank=True, default="", editable=False)
    # When the after-call work the desk started by itself reaches its limit; set while it runs.
    wrap_up_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} on {self.server} ({self.username})"

    def disposition_missing(self) -> bool:
        """Whether the agent owes a disposition before leaving after-call work for Ready: the
        voice server requires one, codes exist to choose from, and the last call has none."""
        if not self.server.disposition_required or not DispositionCode.objects.filter(active=True).exists():
            return False
        last = CallRecord.objects.last_handled(self)
        return last is not None and not last.disposition


class LiveCall(models.Model):
    """The current state of one live call as the agent's Voice API last described it."""

    login = models.ForeignKey(AgentLogin, on_delete=models.CASCADE, related_name="live_calls")
    call_id = models.CharField(max_length=100)
    state = models.CharField(max_length=20)
    call_type = models.CharField(max_length=20)
    parent_call_id = models.CharField(max_length=100, blank=True)
    participants = models.JSONField(default=list)
    capabilities = models.JSONField(default=list)
    user_data = models.JSONField(default=dict)
    muted = models.BooleanField(default=False)
    dnis = models.CharField(max_length=32, blank=True)
    # How a supervisor monitors the call, as the Voice API tells the agent (``calls.voice.Call``):
    # ListenIn, Coach or BargeIn; empty when nobody does. The card says so (SUPERVISION_INDICATOR).
    supervisor = models.CharField(max_length=10, blank=True)
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["started_at", "id"]
        constraints = [models.UniqueConstraint(fields=["login", "call_id"], name="one_live_call_per_id")]

    def __str__(self) -> str:
        return f"{self.call_id} ({self.state})"

    def offers(self, operation: str) -> bool:
        return operation in self.capabilities


class CallRecordQuerySet(models.QuerySet["CallRecord"]):
    def ended(self) -> CallRecordQuerySet:
        """Calls that have ended, the most recent first."""
        return self.filter(ended_at__isnull=False).order_by("-ended_at", "-id")

    def handled(self) -> CallRecordQuerySet:
        """Ended calls that were answered, consults aside, the most recent first: the first of an
        agent's is the call a disposition chosen after the call is for."""
        return self.ended().filter(answered_at__isnull=False).exclude(direction=CallRecord.CONSULT)

    def last_handled(self, login: AgentLogin) -> CallRecord | None:
        return self.handled().filter(login=login).first()


class CallRecord(models.Model):
    """One call in the agent's history: written when first seen, closed when released.

    Direction, outcome, talk and hold time follow from the states the call went through
    (``calls.services`` works them out as it applies each one); the disposition is the agent's.
    """

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"
    CONSULT = "consult"
    DIRECTIONS = [(INBOUND, "Inbound"), (OUTBOUND, "Outbound"), (INTERNAL, "Internal"), (CONSULT, "Consult")]

    ANSWERED = "answered"
    MISSED = "missed"
    TRANSFERRED = "transferred"
    CONFERENCED = "conferenced"
    ABANDONED = "abandoned"
    OUTCOMES = [
        (ANSWERED, "Answered"),
        (MISSED, "Missed"),
        (TRANSFERRED, "Transferred"),
        (CONFERENCED, "Conferenced"),
        (ABANDONED, "Abandoned"),
    ]

    login = models.ForeignKey(AgentLogin, on_delete=models.CASCADE, related_name="call_records")
    call_id = models.CharField(max_length=100)
    call_type = models.CharField(max_length=20)
    direction = models.CharField(max_length=10, choices=DIRECTIONS, blank=True)
    parent_call_id = models.CharField(
        "parent call id", max_length=100, blank=True, help_text="The call a consult call was made for."
    )
    dnis = models.CharField(max_length=32, blank=True)
    parties = models.JSONField(default=list)
    user_data = models.JSONField(default=dict)
    started_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration = models.PositiveIntegerField(default=0)
    talk_seconds = models.PositiveIntegerField(default=0)
    hold_seconds = models.PositiveIntegerField(default=0)
    final_state = models.CharField(max_length=20, blank=True)
    outcome = models.CharField(
        max_length=12,
        choices=OUTCOMES,
        blank=True,
        help_text="Empty while the call is live, unless it has already become a conference.",
    )
    disposition = models.CharField(
        max_length=64, blank=True, help_text="The disposition code the agent chose."
    )
    # The switch's WrapUpTime announced with the call, in seconds (0: none), which wins over the
    # voice server's wrap_up_seconds.
    wrap_up_seconds = models.PositiveIntegerField(default=0, editable=False)
    # Bookkeeping for the figures above: since when the call is in its current state, and the
    # live state it was released from.
    state_since = models.DateTimeField(null=True, blank=True, editable=False)
    released_from = models.CharField(max_length=20, blank=True, editable=False)

    objects = CallRecordQuerySet.as_manager()
    # The values as read from the database (None for a row not read).
    _read: dict[str, Any] | None = None

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["login", "call_id"], name="one_record_per_call")]
        indexes = [models.Index(fields=["login", "-ended_at"], name="call_record_last_ended")]

    def __str__(self) -> str:
        return f"{self.call_id} {self.started_at:%Y-%m-%d %H:%M}"

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> CallRecord:
        """As read, with the values read (``changed_fields``)."""
        record = super().from_db(db, field_names, values, **kwargs)
        record._read = dict(zip(field_names, values, strict=True))
        return record

    def remember_saved(self) -> None:
        """What the row holds now is what was saved: ``changed_fields`` compares with it."""
        self._read = {field.attname: getattr(self, field.attname) for field in self._meta.concrete_fields}

    def changed_fields(self, fields: Iterable[str]) -> list[str]:
        """Which of ``fields`` differ from what was read (all of them for a row not read)."""
        read = self._read
        if read is None:
            return list(fields)
        columns = {field.name: field.attname for field in self._meta.concrete_fields}
        return [name for name in fields if read.get(columns[name], DEFERRED) != getattr(self, columns[name])]

    @property
    def callback_number(self) -> str:
        """The number that reaches the other party again: the first party the dial pad would
        dial; for an outbound call whose parties are unknown, the number dialled. Empty when none."""
        from .operations import InvalidParameters, clean_destination  # operations imports this module

        candidates = [str(party) for party in self.parties]
        if self.direction == self.OUTBOUND:
            candidates.append(self.dnis)
        for candidate in candidates:
            try:
                return clean_destination(candidate)
            except InvalidParameters:
                continue
        return ""


class Choice(models.Model):
    """An admin-managed code an agent picks from a list, shown by its label in the admin's order."""

    label = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        abstract = True
        ordering = ["position", "label"]

    def __str__(self) -> str:
        return self.label


class DispositionCode(Choice):
    """How a call ended for the business (a sale, a complaint, a callback promised): the agent
    chooses one per call; it is kept with the call's history and, where the Voice API allows it,
    attached to the call as the user data key ``Disposition``."""

    code = models.CharField(
        max_length=64,
        unique=True,
        help_text="Kept with the call, and attached to it as user data Disposition.",
    )


class NotReadyReason(Choice):
    """A reason an agent may give for NotReady (lunch, training); sent to the Voice API as its code."""

    code = models.CharField(max_length=64, unique=True, help_text="Sent to the Voice API as reasonCode.")


def validate_destination(value: str) -> None:
    """The dial pad's own rule for a number, so a speed dial is always one the desk would dial."""
    from .operations import InvalidParameters, clean_destination  # operations imports this module

    try:
        clean_destination(value)
    except InvalidParameters as exc:
        raise ValidationError(str(exc), code="invalid_destination") from exc


class SpeedDial(models.Model):
    """A number offered on every agent's dial pad (the help desk, a supervisor, a partner's queue)."""

    label = models.CharField(max_length=60)
    number = models.CharField(max_length=40, validators=[validate_destination])
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "label"]

    def __str__(self) -> str:
        return f"{self.label} ({self.number})"

    def clean(self) -> None:
        from .operations import InvalidParameters, clean_destination

        try:
            self.number = clean_destination(self.number)  # stored as it is dialled
        except InvalidParameters:
            pass  # the field's validator reports it


SUPERVISE_PERMISSION = "calls.supervise_team"


class TeamQuerySet(models.QuerySet["Team"]):
    def led_by(self, user: Any) -> TeamQuerySet:
        """The teams ``user`` may see and run: those naming them a lead, while their account is active
        and holds the supervisor permission. Every team view and socket starts here."""
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        if not user.has_perm(SUPERVISE_PERMISSION):
            return self.none()
        return self.filter(leads=user)


class Team(models.Model):
    """Agents one or more team leads look after: the leads see the members on a live board, listen
    in on, coach or join their calls, and set their agent state.

    A lead is a desk user with the "Can lead a team" permission (``calls.supervise_team``) and an
    agent login whose Voice API user may supervise: the lead acts through that login's own session.
    """

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(
        AgentLogin, related_name="teams", blank=True, help_text="The agents on the team's board."
    )
    leads = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="led_teams",
        blank=True,
        help_text=(
            'Desk users who run the team. Each needs the permission "Can lead a team" and an agent login '
            "whose Voice API user may supervise; without the permission the team stays hidden from them."
        ),
    )

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        permissions = [("supervise_team", "Can lead a team: its board, monitoring calls, members' states")]

    def __str__(self) -> str:
        return self.name

    def active_members(self) -> models.QuerySet[AgentLogin]:
        """The members a board shows: enabled agent logins of active desk users, by user name."""
        return self.members.filter(enabled=True, user__is_active=True).select_related("user", "server")


class Supervision(models.Model):
    """A team lead monitoring a member's call, as the desk asked the lead's Voice API session to.

    Written only by ``calls.supervision`` when the Voice API accepts a lead's request (listen, coach,
    barge in, switch, stop), and dropped by ``calls.board`` once the monitored call or the lead's own
    monitoring leg has ended. The board's buttons and the member's "a supervisor is listening"
    indicator follow it.
    """

    LISTEN_IN = "ListenIn"
    COACH = "Coach"
    BARGE_IN = "BargeIn"
    MODES = [(LISTEN_IN, "Listening"), (COACH, "Coaching"), (BARGE_IN, "Barged in")]

    lead = models.ForeignKey(AgentLogin, on_delete=models.CASCADE, related_name="supervising")
    member = models.ForeignKey(AgentLogin, on_delete=models.CASCADE, related_name="supervised_by")
    call_id = models.CharField("call id", max_length=100, help_text="The member's call being monitored.")
    mode = models.CharField(max_length=10, choices=MODES)
    lead_call_id = models.CharField(
        "lead's call id", max_length=100, blank=True, help_text="The lead's own monitoring leg, once seen."
    )
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["started_at", "id"]
        # A lead's Voice API device monitors one call at a time.
        constraints = [models.UniqueConstraint(fields=["lead"], name="one_supervision_per_lead")]

    def __str__(self) -> str:
        return f"{self.lead} {self.mode} {self.member} ({self.call_id})"


class AuditEntryImmutable(Exception):
    """Raised on any attempt to change or delete an audit entry."""


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs: object) -> int:
        raise AuditEntryImmutable("Audit entries are written once and never changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditEntryImmutable("Audit entries are never deleted")


class AuditEntry(models.Model):
    """Who did what to which call, when, from where, and how it ended; written once by ``calls.audit``.

    Never holds a secret: no password, no DTMF digits, no attached-data values.
    """

    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"
    RESULTS = [(OK, "OK"), (REFUSED, "Refused"), (FAILED, "Failed")]

    when = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too: the user may be deleted, and a failed login names no user at all.
    username = models.CharField(max_length=150, blank=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    call_id = models.CharField("call id", max_length=100, blank=True, db_index=True)
    detail = models.CharField(
        max_length=100,
        blank=True,
        help_text="The number dialled, the participant removed or the attached-data key.",
    )
    result = models.CharField(max_length=10, choices=RESULTS)
    message = models.CharField(max_length=500, blank=True, help_text="The Voice API's or the desk's words.")
    remote_address = models.CharField(max_length=64, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-when", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.when:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.result}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise AuditEntryImmutable("Audit entries are written once and never changed")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise AuditEntryImmutable("Audit entries are never deleted")
