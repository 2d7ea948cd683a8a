"""Start and stop agents' Voice API sessions with the desk's own logins and accounts.

Logging out of the desk, or an account being deactivated or its agent login disabled, stops the
session at once (the worker's reconcile would also notice within a lease period).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from . import services
from .fragments import PAGE_LISTS
from .live import REFERENCE
from .models import AgentLogin, DispositionCode, NotReadyReason, SpeedDial, Supervision, Team
from .worker import CHANNEL

log = logging.getLogger("switchboard.sessions")


SIGNED_OUT = "You signed out of the desk."
DEACTIVATED = "Your desk account was deactivated."
DISABLED = "Your agent login was disabled."
ENDED_BY_ADMIN = "An administrator ended your contact-center session. Reload the page to start it again."


def stop_session(login_id: int, why: str) -> None:
    """Ask the worker to take the agent out of the contact center (``SESSION_END_ACTION``: log out,
    or set Not Ready) and then stop the session; ``why`` is shown on the agent's open pages."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "session.stop", "login": login_id, "why": why}
    try:
        async_to_sync(layer.send)(CHANNEL, message)
    except Exception:
        log.exception("could not ask the worker to stop the session of login %s", login_id)


@receiver(user_logged_out)
def stop_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        try:
            async_to_sync(services.close_session_sockets)(session_key)
        except Exception:
            log.exception("could not close the desk sockets of a session that ended")
    if user is None:
        return
    for login_id in AgentLogin.objects.filter(user_id=user.pk).values_list("pk", flat=True):
        stop_session(login_id, SIGNED_OUT)


@receiver(post_save, sender=get_user_model())
def stop_when_deactivated(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if not instance.is_active and (update_fields is None or "is_active" in update_fields):
        for login_id in AgentLogin.objects.filter(user_id=instance.pk).values_list("pk", flat=True):
            stop_session(login_id, DEACTIVATED)


@receiver(pre_save, sender=AgentLogin)
def retry_changed_credentials(
    sender: Any, instance: AgentLogin, update_fields: Any = None, **kwargs: Any
) -> None:
    """A login whose credentials the Voice API refused is tried again once an admin changes them."""
    if instance.pk is None or instance.connection != AgentLogin.REFUSED:
        return
    saved = AgentLogin.objects.filter(pk=instance.pk).first()
    if saved is None:
        return
    identity = ("server_id", "username", "password", "dn")
    if any(getattr(saved, name) != getattr(instance, name) for name in identity):
        instance.connection, instance.connection_reason = AgentLogin.OFFLINE, ""


@receiver(post_save, sender=AgentLogin)
def stop_when_disabled(
    sender: Any, instance: AgentLogin, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    # The worker's own bookkeeping saves name their fields and never touch ``enabled``.
    if not created and not instance.enabled and (update_fields is None or "enabled" in update_fields):
        stop_session(instance.pk, DISABLED)


@receiver([post_save, post_delete], sender=NotReadyReason)
@receiver([post_save, post_delete], sender=DispositionCode)
@receiver([post_save, post_delete], sender=SpeedDial)
@receiver([post_save, post_delete], sender=Team)
@receiver([post_save, post_delete], sender=Supervision)
@receiver(m2m_changed, sender=Team.members.through)
@receiver(m2m_changed, sender=Team.leads.through)
def reference_changed(**kwargs: Any) -> None:
    """The sessions and pages of this process show the admin's new lists, and the sessions follow who
    is on a team board, from their next push and render on (other processes read them again within
    ``calls.fragments.REFERENCE_SECONDS``)."""
    REFERENCE.changed()
    PAGE_LISTS.changed()
