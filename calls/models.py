"""Agent logins and voice servers (admin-managed), live call state and call history.

Live calls and call history are written only by ``calls.services``, which also publishes what
changed; audit entries only by ``calls.audit``, once each.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
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

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AgentLogin(models.Model):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"
    CONNECTIONS = [(CONNECTED, "Connected"), (RECONNECTING, "Reconnecting"), (OFFLINE, "Offline")]

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

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} on {self.server} ({self.username})"


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
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["started_at", "id"]
        constraints = [models.UniqueConstraint(fields=["login", "call_id"], name="one_live_call_per_id")]

    def __str__(self) -> str:
        return f"{self.call_id} ({self.state})"

    def offers(self, operation: str) -> bool:
        return operation in self.capabilities


class CallRecord(models.Model):
    """One call in the agent's history: written when first seen, closed when released."""

    login = models.ForeignKey(AgentLogin, on_delete=models.CASCADE, related_name="call_records")
    call_id = models.CharField(max_length=100)
    call_type = models.CharField(max_length=20)
    dnis = models.CharField(max_length=32, blank=True)
    parties = models.JSONField(default=list)
    user_data = models.JSONField(default=dict)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    duration = models.PositiveIntegerField(default=0)
    final_state = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["login", "call_id"], name="one_record_per_call")]

    def __str__(self) -> str:
        return f"{self.call_id} {self.started_at:%Y-%m-%d %H:%M}"


class NotReadyReason(models.Model):
    """A reason an agent may give for NotReady (lunch, training); sent to the Voice API as its code."""

    code = models.CharField(max_length=64, unique=True, help_text="Sent to the Voice API as reasonCode.")
    label = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "label"]

    def __str__(self) -> str:
        return self.label


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
