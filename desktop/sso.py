"""Single sign-on: a trusted proxy's user header, OpenID Connect, and who may use the local login form.

Header SSO builds on Django's remote-user middleware and backend, but honours the header only from
the addresses in SSO_TRUSTED_PROXIES: anyone else who can reach the desk could send it too.
OpenID Connect builds on mozilla-django-oidc; the provider's ``sub`` (with its issuer) is the
identity, kept in ``OidcIdentity``, and the profile claims are copied onto the Django user.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import resolve_url
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from calls.persist import in_parallel
from desktop.models import OidcIdentity

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a header's value may be logged as: usernames are not secrets, but keep a log line short and
# free of control characters an attacker could use to forge lines.
LOGGED_VALUE_MAX = 64

UserT = TypeVar("UserT", bound=AbstractBaseUser)


# --- Trusted-header SSO ---


@functools.cache
def trusted_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip()))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"SSO_TRUSTED_PROXIES: {value!r} is not an IP address or network: {exc}"
            ) from exc
    return tuple(networks)


def is_trusted_proxy(address: str) -> bool:
    """Whether ``address`` (the TCP peer, REMOTE_ADDR) is one of SSO_TRUSTED_PROXIES."""
    networks = trusted_networks(tuple(settings.SSO_TRUSTED_PROXIES))
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False  # no address at all (a Unix socket) or garbage: not a proxy we know
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in networks)


def header_meta_key(header: str) -> str:
    """The ``request.META`` key of an HTTP header name, as both WSGI and ASGI spell it."""
    return "HTTP_" + header.upper().replace("-", "_")


def _shown(value: str) -> str:
    return repr(value[:LOGGED_VALUE_MAX]) + ("…" if len(value) > LOGGED_VALUE_MAX else "")


class HeaderSsoMiddleware(RemoteUserMiddleware):
    """Logs in the user named by SSO_HEADER, when the request comes from a trusted proxy.

    Any other request has the header removed before anything reads it, and is treated as one
    without it: a session that the header opened ends, sessions from other logins are left alone.
    Django's own request handling is replaced rather than extended because its sync and async
    paths read the header under different keys.
    """

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]
    ) -> None:
        super().__init__(get_response)
        self.header_name: str = settings.SSO_HEADER
        if "_" in self.header_name:
            # Servers fold "X_Remote_User" and "X-Remote-User" into one key: only dashes are safe.
            raise ImproperlyConfigured(f"SSO_HEADER={self.header_name!r}: spell the header with dashes")
        # Not Django's class-wide ``header``: it comes from settings, and only the methods below read it.
        self.meta_key = header_meta_key(self.header_name) if self.header_name else ""
        trusted_networks(tuple(settings.SSO_TRUSTED_PROXIES))  # fail at startup on a bad value

    def trusted_username(self, request: HttpRequest) -> str | None:
        """The header's value when it can be believed; otherwise strips it from the request."""
        if not self.meta_key or self.meta_key not in request.META:
            return None
        value: str = request.META[self.meta_key]
        address: str = request.META.get("REMOTE_ADDR") or ""
        if not is_trusted_proxy(address):
            del request.META[self.meta_key]
            log.warning(
                "ignored the %s header (user %s) from %s, which is not in SSO_TRUSTED_PROXIES",
                self.header_name,
                _shown(value),
                address or "an unknown address",
            )
            return None
        if "," in value:
            # The header came more than once (servers join repeats with commas): a client's copy
            # that the proxy passed through beside its own. Believe neither.
            del request.META[self.meta_key]
            log.warning(
                "ignored the %s header from proxy %s: it came more than once", self.header_name, address
            )
            return None
        return value.strip() or None

    def process_request(self, request: HttpRequest) -> None:
        if not hasattr(request, "user"):
            raise ImproperlyConfigured("HeaderSsoMiddleware must come after AuthenticationMiddleware")
        username = self.trusted_username(request)
        if username is None:
            if request.user.is_authenticated:
                self.end_header_session(request)
            return
        if request.user.is_authenticated:
            if request.user.get_username() == username:
                return
            self.end_header_session(request)
        user = auth.authenticate(request, remote_user=username)
        if user is not None:
            request.user = user
            auth.login(request, user)

    async def aprocess_request(self, request: HttpRequest) -> None:
        if not hasattr(request, "auser"):
            raise ImproperlyConfigured("HeaderSsoMiddleware must come after AuthenticationMiddleware")
        username = self.trusted_username(request)
        current = await request.auser()
        if username is None:
            if current.is_authenticated:
                await self.aend_header_session(request)
            return
        if current.is_authenticated:
            if current.get_username() == username:
                return
            await self.aend_header_session(request)
        user = await auth.aauthenticate(request, remote_user=username)
        if user is not None:
            request.user = user
            await auth.alogin(request, user)

    # In place of Django's private _remove_invalid_user() and _aremove_invalid_user(), the same logic
    # with types (django-stubs declares neither).
    def end_header_session(self, request: HttpRequest) -> None:
        """Logs out a session that header SSO opened; sessions from other logins are left alone."""
        if _opened_by_header(request.session.get(auth.BACKEND_SESSION_KEY, "")):
            auth.logout(request)

    async def aend_header_session(self, request: HttpRequest) -> None:
        if _opened_by_header(await request.session.aget(auth.BACKEND_SESSION_KEY, "")):
            await auth.alogout(request)


class HeaderSsoWebSocketMiddleware:
    """The WebSocket side of ``HeaderSsoMiddleware``: a session that header SSO opened is honoured on
    a socket only as it would be on a page, from a trusted proxy naming the same user in SSO_HEADER
    (once). Otherwise the socket is served as anonymous, which the desktop consumer refuses; the
    session itself ends at its next page request. Sessions from other logins are left alone.

    Goes inside the socket's sign-in stack (``desktop.middleware.socket_auth_stack``), which puts the
    session and the user in the scope.
    """

    def __init__(self, inner: Callable[..., Awaitable[None]]) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        user = scope.get("user")
        if (
            scope.get("type") == "websocket"
            and user is not None
            and user.is_authenticated
            and not await self.allowed(scope, user.get_username())
        ):
            scope = {**scope, "user": AnonymousUser()}
        await self.inner(scope, receive, send)

    @staticmethod
    async def allowed(scope: dict[str, Any], username: str) -> bool:
        session = scope.get("session")
        backend_path = ""
        if session is not None:
            # Loaded already (by the user's check): off the one thread every socket shares all the same.
            backend_path = await in_parallel(session.get)(auth.BACKEND_SESSION_KEY, "")
        if not backend_path or not _opened_by_header(backend_path):
            return True
        header: str = settings.SSO_HEADER
        client = scope.get("client") or ("", 0)
        address = str(client[0] or "")
        name = header.lower().encode("latin-1") if header else b""
        values = [value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name]
        if not header or not is_trusted_proxy(address):
            log.warning(
                "refused a WebSocket of header-SSO user %s from %s, which is not in SSO_TRUSTED_PROXIES",
                _shown(username),
                repr(address) if address else "an unknown address",
            )
            return False
        if len(values) != 1 or values[0].strip() != username or "," in values[0]:
            log.warning(
                "refused a WebSocket of header-SSO user %s from proxy %s: the %s header does not name them",
                _shown(username),
                address,
                header,
            )
            return False
        return True


def _opened_by_header(backend_path: str) -> bool:
    """Whether the session's login came through a remote-user backend; a backend that no longer
    loads counts as one, so its session ends."""
    try:
        return isinstance(auth.load_backend(backend_path), RemoteUserBackend)
    except ImportError:
        return True


class HeaderSsoBackend(RemoteUserBackend):
    """The user the trusted proxy names; unknown users are created only when SSO_CREATE_USERS says so."""

    def __init__(self) -> None:
        super().__init__()
        # Django makes a backend for each authentication, so this follows the setting.
        self.create_unknown_user = bool(settings.SSO_CREATE_USERS)

    # RemoteUserBackend takes a remote_user instead of ModelBackend's username and password (Django's
    # own signature, which django-stubs ignores the same way).
    def authenticate(  # type: ignore[override]
        self, request: HttpRequest | None, remote_user: str
    ) -> User | None:
        # The middleware has already checked; this keeps any other caller from skipping the check.
        if (
            not settings.SSO_HEADER
            or request is None
            or not is_trusted_proxy(request.META.get("REMOTE_ADDR") or "")
        ):
            return None
        user = super().authenticate(request, remote_user)
        if user is None:
            log.warning("header SSO refused %s: no such active user", _shown(remote_user))
        return user

    async def aauthenticate(  # type: ignore[override]  # as authenticate()
        self, request: HttpRequest | None, remote_user: str
    ) -> User | None:
        if (
            not settings.SSO_HEADER
            or request is None
            or not is_trusted_proxy(request.META.get("REMOTE_ADDR") or "")
        ):
            return None
        user = await super().aauthenticate(request, remote_user)
        if user is None:
            log.warning("header SSO refused %s: no such active user", _shown(remote_user))
        return user

    def configure_user(self, request: HttpRequest | None, user: UserT, created: bool = True) -> UserT:
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            log.info("header SSO created user %s", _shown(user.get_username()))
        return user


# --- OpenID Connect ---


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class OidcBackend(OIDCAuthenticationBackend):  # type: ignore[misc]  # mozilla-django-oidc ships no types
    """Authorization code flow (state, nonce, PKCE in mozilla-django-oidc's views) with ``sub`` as identity.

    A returning identity finds its user through ``OidcIdentity``. A new one is linked to the
    existing user named by the OIDC_USERNAME_CLAIM claim, unless that user is staff or already
    linked (a reused or edited name at the provider must not take over an account); otherwise a
    user is created when OIDC_CREATE_USERS allows it.
    """

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        # Django offers every backend every credential; only the OIDC callback's call (a nonce and a
        # code verifier, nothing else) may spend the authorization code in request.GET.
        if "nonce" not in kwargs or not set(kwargs) <= {"nonce", "code_verifier"}:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, jwt.PyJWTError, ValueError) as exc:
            log.warning("OpenID Connect login failed talking to the provider: %s", exc)
            return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        # mozilla-django-oidc checks the signature and nonce but not whom the token is for.
        audiences = _as_list(payload.get("aud"))
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("ID token is not for this client (aud)")
        if len(audiences) > 1 and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token is not for this client (azp)")
        if not payload.get("sub") or not payload.get("iss"):
            raise SuspiciousOperation("ID token has no sub or iss")
        return payload

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload["sub"]:
            # OpenID Connect Core 5.3.2: otherwise the userinfo may belong to someone else.
            raise SuspiciousOperation("userinfo sub differs from the ID token's")
        claims = {**userinfo, "iss": payload["iss"], "sub": payload["sub"]}
        if not self.verify_claims(claims):
            raise SuspiciousOperation("Claims verification failed")
        user = self.filter_users_by_claims(claims).first()
        if user is None:
            user = self.link_or_create_user(claims)
            if user is None:
                return None
        user = self.update_user(user, claims)
        return user if self.user_can_authenticate(user) else None

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(
            oidc_identity__issuer=claims["iss"], oidc_identity__sub=claims["sub"]
        )

    def describe_user_by_claims(self, claims: dict[str, Any]) -> str:
        name = _shown(self.get_username(claims))
        return f"sub {_shown(str(claims['sub']))} ({settings.OIDC_USERNAME_CLAIM} {name})"

    def get_username(self, claims: dict[str, Any]) -> str:
        value = claims.get(settings.OIDC_USERNAME_CLAIM)
        return value.strip() if isinstance(value, str) else ""

    def link_or_create_user(self, claims: dict[str, Any]) -> Any:
        who = self.describe_user_by_claims(claims)
        username = self.get_username(claims)
        max_length = self.UserModel._meta.get_field(self.UserModel.USERNAME_FIELD).max_length
        if not username or len(username) > max_length:
            log.warning("OpenID Connect refused %s: no usable %s claim", who, settings.OIDC_USERNAME_CLAIM)
            return None
        try:
            with transaction.atomic():
                user = self.UserModel.objects.filter(**{self.UserModel.USERNAME_FIELD: username}).first()
                if user is not None:
                    if user.is_staff or user.is_superuser or OidcIdentity.objects.filter(user=user).exists():
                        log.warning(
                            "OpenID Connect refused %s: user %s is staff or linked to another identity",
                            who,
                            _shown(username),
                        )
                        return None
                    log.info("OpenID Connect linked %s to the existing user", who)
                elif settings.OIDC_CREATE_USERS:
                    user = self.UserModel.objects.create_user(username)  # unusable password
                    log.info("OpenID Connect created a user for %s", who)
                else:
                    log.warning("OpenID Connect refused %s: no such user and OIDC_CREATE_USERS is off", who)
                    return None
                OidcIdentity.objects.create(user=user, issuer=claims["iss"], sub=claims["sub"])
        except IntegrityError:
            # Two first logins of the same identity at once: the other one linked it.
            return self.filter_users_by_claims(claims).first()
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        changed = []
        for field, claim in (("email", "email"), ("first_name", "given_name"), ("last_name", "family_name")):
            value = claims.get(claim)
            if not isinstance(value, str):
                continue
            value = value.strip()[: user._meta.get_field(field).max_length]
            if getattr(user, field) != value:
                setattr(user, field, value)
                changed.append(field)
        if changed:
            user.save(update_fields=changed)
        return user


def provider_logout_url(request: HttpRequest) -> str:
    """Where OIDC logout sends the browser: the provider's end_session endpoint for an SSO session.

    Named by OIDC_OP_LOGOUT_URL_METHOD; called before the desk session ends.
    """
    after_logout = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
    id_token = request.session.get("oidc_id_token")
    if not settings.OIDC_OP_LOGOUT_URL or not id_token:
        return after_logout  # a local login: nothing to end at the provider
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": after_logout,
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{settings.OIDC_OP_LOGOUT_URL}?{query}"


# --- The login page ---

LOCAL_LOGIN_REFUSED = "Agents sign in with {provider}, not with a desk password."


def _local_login_refusal() -> str:
    provider = settings.OIDC_PROVIDER_NAME if settings.OIDC_ENABLED else "single sign-on"
    return LOCAL_LOGIN_REFUSED.format(provider=provider)


class LocalLoginForm(AuthenticationForm):
    """Django's login form, closed to agents (non-staff users) when LOCAL_LOGIN_FOR_AGENTS is off."""

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not settings.LOCAL_LOGIN_FOR_AGENTS and not getattr(user, "is_staff", False):
            raise ValidationError(_local_login_refusal(), code="local_login_off")


class LoginView(auth_views.LoginView[LocalLoginForm]):
    authentication_form = LocalLoginForm

    def form_invalid(self, form: LocalLoginForm) -> HttpResponse:
        if form.has_error("__all__", "local_login_off"):
            # Shown on its own (the page's generic "didn't match" line is for form.errors), and
            # the password was right, so do not send the agent back to guess it again.
            fresh = self.get_form_class()(self.request, initial={"username": form.data.get("username", "")})
            context = self.get_context_data(form=fresh, local_login_refused=_local_login_refusal())
            return self.render_to_response(context)
        return super().form_invalid(form)


def sso_context(request: HttpRequest) -> dict[str, Any]:
    """Template context for the login page's single sign-on button and messages."""
    return {
        "oidc_enabled": settings.OIDC_ENABLED,
        "oidc_provider_name": settings.OIDC_PROVIDER_NAME,
        "sso_failed": settings.OIDC_ENABLED and request.GET.get("sso") == "failed",
    }
