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
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import AgentLogin
from .worker import CHANNEL

log = logging.getLogger("switchboard.sessions")


def stop_session(login_id: int) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.send)(CHANNEL, {"type": "session.stop", "login": login_id})
    except Exception:
        log.exception("could not ask the worker to stop the session of login %s", login_id)


@receiver(user_logged_out)
def stop_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    for login_id in AgentLogin.objects.filter(user_id=user.pk).values_list("pk", flat=True):
        stop_session(login_id)


@receiver(post_save, sender=get_user_model())
def stop_when_deactivated(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if not instance.is_active and (update_fields is None or "is_active" in update_fields):
        for login_id in AgentLogin.objects.filter(user_id=instance.pk).values_list("pk", flat=True):
            stop_session(login_id)


@receiver(post_save, sender=AgentLogin)
def stop_when_disabled(
    sender: Any, instance: AgentLogin, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    # The worker's own bookkeeping saves name their fields and never touch ``enabled``.
    if not created and not instance.enabled and (update_fields is None or "enabled" in update_fields):
        stop_session(instance.pk)
