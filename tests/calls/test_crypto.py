"""Agent logins' Voice API passwords at rest: Fernet ciphertext in the database, rotatable keys."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from calls.models import AgentLogin, VoiceServer

SECRET = "plain-Voice-pw-42"


def new_login(password: str = SECRET) -> AgentLogin:
    server, _ = VoiceServer.objects.get_or_create(
        name="Site A", defaults={"base_url": "http://gws.example.test"}
    )
    user = get_user_model().objects.create_user(f"user{AgentLogin.objects.count()}")
    return AgentLogin.objects.create(user=user, server=server, username="agent1", password=password)


def stored_password(login: AgentLogin) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT password FROM {AgentLogin._meta.db_table} WHERE id = %s", [login.pk])  # noqa: S608
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_password_is_not_stored_in_plain_text() -> None:
    login = new_login()

    raw = stored_password(login)

    assert SECRET not in raw
    assert raw.startswith("fernet:")


@pytest.mark.django_db
def test_the_password_reads_back_as_it_was_written() -> None:
    login = new_login()

    assert AgentLogin.objects.get(pk=login.pk).password == SECRET


@pytest.mark.django_db
def test_the_same_password_is_stored_differently_each_time() -> None:
    assert stored_password(new_login()) != stored_password(new_login())


@pytest.mark.django_db
def test_a_password_written_with_an_old_key_still_reads_after_rotation(settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    login = new_login()

    settings.FIELD_ENCRYPTION_KEYS = [new, old]

    assert AgentLogin.objects.get(pk=login.pk).password == SECRET


@pytest.mark.django_db
def test_saving_after_rotation_encrypts_with_the_new_key(settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    login = new_login()
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    AgentLogin.objects.get(pk=login.pk).save()

    settings.FIELD_ENCRYPTION_KEYS = [new]

    assert AgentLogin.objects.get(pk=login.pk).password == SECRET


@pytest.mark.django_db
def test_a_password_cannot_be_read_once_its_key_is_gone(settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    login = new_login()

    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        AgentLogin.objects.get(pk=login.pk)


@pytest.mark.django_db
def test_a_key_that_is_not_a_fernet_key_is_refused(settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key"]

    with pytest.raises(ImproperlyConfigured, match="must be Fernet keys"):
        new_login()
