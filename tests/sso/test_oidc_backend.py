"""The OIDC backend's decisions that the provider flow cannot easily reach: only the provider's
HTTP answers are stood in for (get_token, get_userinfo), the rest runs as in production."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.test import RequestFactory

from desktop.models import OidcIdentity
from desktop.sso import OidcBackend

User = get_user_model()
ISSUER = "https://idp.example.com"
CLIENT_ID = "switchboard"
CLIENT_SECRET = "a-client-secret-long-enough-for-hs256-0123456789"

pytestmark = pytest.mark.django_db


@pytest.fixture
def backend(settings: Any) -> OidcBackend:
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{ISSUER}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{ISSUER}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{ISSUER}/jwks"
    settings.OIDC_RP_SIGN_ALGO = "HS256"  # signed with the client secret: no JWKS needed here
    settings.OIDC_CREATE_USERS = False
    return OidcBackend()


def sign_in(backend: OidcBackend, monkeypatch: pytest.MonkeyPatch, sub: str, **userinfo: Any) -> Any:
    monkeypatch.setattr(backend, "get_userinfo", lambda *args: {"sub": sub, **userinfo})
    return backend.get_or_create_user("access-token", "id-token", {"iss": ISSUER, "sub": sub})


def id_token(**claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "sub": "s-1",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 60,
        "nonce": "n",
        **claims,
    }
    return jwt.encode(payload, CLIENT_SECRET, algorithm="HS256")


def test_a_returning_identity_is_found_by_sub_whatever_its_username_claim_says(
    backend: OidcBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    alan = User.objects.create_user("alan")
    OidcIdentity.objects.create(user=alan, issuer=ISSUER, sub="s-alan")
    User.objects.create_user("turing")

    user = sign_in(backend, monkeypatch, "s-alan", preferred_username="turing", given_name="Alan")

    assert user == alan
    assert User.objects.get(pk=alan.pk).first_name == "Alan"


def test_the_same_sub_from_another_issuer_is_another_identity(
    backend: OidcBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    alan = User.objects.create_user("alan")
    OidcIdentity.objects.create(user=alan, issuer="https://other-idp.example.com", sub="s-alan")

    assert sign_in(backend, monkeypatch, "s-alan", preferred_username="alan") is None


def test_an_unknown_identity_gets_an_account_when_creation_is_on(
    backend: OidcBackend, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.OIDC_CREATE_USERS = True

    user = sign_in(backend, monkeypatch, "s-new", preferred_username="newcomer", email="new@example.com")

    assert user.username == "newcomer" and user.email == "new@example.com"
    assert not user.has_usable_password()
    assert OidcIdentity.objects.get(issuer=ISSUER, sub="s-new").user == user


def test_the_username_can_be_the_sub_itself(
    backend: OidcBackend, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.OIDC_CREATE_USERS = True
    settings.OIDC_USERNAME_CLAIM = "sub"

    user = sign_in(backend, monkeypatch, "248289761001", preferred_username="ignored")

    assert user.username == "248289761001"


def test_an_unknown_identity_is_refused_when_creation_is_off(
    backend: OidcBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sign_in(backend, monkeypatch, "s-new", preferred_username="newcomer") is None
    assert not User.objects.filter(username="newcomer").exists()


def test_an_account_already_linked_to_another_identity_is_not_taken_over(
    backend: OidcBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    alan = User.objects.create_user("alan")
    OidcIdentity.objects.create(user=alan, issuer=ISSUER, sub="s-alan")

    # A new person at the provider who was given the name "alan" after him.
    assert sign_in(backend, monkeypatch, "s-someone-else", preferred_username="alan") is None


def test_userinfo_for_another_subject_is_refused(
    backend: OidcBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend, "get_userinfo", lambda *args: {"sub": "s-other", "preferred_username": "x"})

    with pytest.raises(SuspiciousOperation):
        backend.get_or_create_user("access-token", "id-token", {"iss": ISSUER, "sub": "s-1"})


def test_an_id_token_for_another_client_is_refused(backend: OidcBackend) -> None:
    assert backend.verify_token(id_token(), nonce="n")["sub"] == "s-1"

    with pytest.raises(SuspiciousOperation, match="aud"):
        backend.verify_token(id_token(aud="another-app"), nonce="n")


def test_the_login_forms_credentials_never_spend_an_authorization_code(
    backend: OidcBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_be_called(payload: Any) -> Any:
        raise AssertionError("the token endpoint was called")

    monkeypatch.setattr(backend, "get_token", must_not_be_called)
    request = RequestFactory().post("/accounts/login/?code=stolen&state=s")

    assert backend.authenticate(request, username="alan", password="x") is None
    assert backend.authenticate(request, remote_user="alan") is None
