"""The admin of the telephony domain: voice servers, agent logins and teams to manage, live calls,
call history and supervisions to look at.

An agent login's Voice API password is write-only here: typed in, never shown back, never logged.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict, TypeVar

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django_stubs_ext import WithAnnotations

from . import audit, importing
from .backends import backend_for
from .importing import ImportRefused, import_agent_logins
from .models import (
    SUPERVISE_PERMISSION,
    AgentLogin,
    AuditEntry,
    CallRecord,
    DispositionCode,
    LiveCall,
    NotReadyReason,
    SpeedDial,
    Supervision,
    Team,
    VoiceServer,
)
from .signals import ENDED_BY_ADMIN, stop_session
from .voice import VoiceApiError

# A connection check answers an admin's click: it must not hang the page on a silent server.
CHECK_TIMEOUT_S = 5.0


async def try_login(login: AgentLogin) -> tuple[bool, str]:
    """Whether the login's Voice API works, and what to tell the admin. A live session is reported
    as it is; otherwise the backend checks the server without signing the agent in or out."""
    if login.worker and login.lease_until and login.lease_until > timezone.now():
        live = f"live session {login.get_connection_display().lower()}, agent {login.agent_state}"
        return login.connection == AgentLogin.CONNECTED, live
    backend = None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            backend = backend_for(login)
            return True, await backend.check()
    except VoiceApiError as exc:
        return False, exc.message
    except TimeoutError:
        return False, f"no answer within {CHECK_TIMEOUT_S:.0f} s"
    except Exception as exc:
        # Only the type: an exception's text could carry what the request carried.
        return False, f"failed ({type(exc).__name__})"
    finally:
        if backend is not None:
            await backend.aclose()


async def try_logins(logins: list[AgentLogin]) -> list[tuple[bool, str]]:
    return await asyncio.gather(*(try_login(login) for login in logins))


def report_checks(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, logins: list[AgentLogin]) -> None:
    """Checks the logins side by side; one message each, named by the Voice API username."""
    for login, (ok, text) in zip(logins, async_to_sync(try_logins)(logins), strict=True):
        level = messages.SUCCESS if ok else messages.ERROR
        modeladmin.message_user(request, f"{login.username}: {text}", level)


class LoginCount(TypedDict):
    login_count: int


@admin.register(VoiceServer)
class VoiceServerAdmin(admin.ModelAdmin[VoiceServer]):
    list_display = [
        "name",
        "dialect",
        "base_url",
        "verify_tls",
        "embedded",
        "wrap_up_seconds",
        "disposition_required",
        "login_count",
    ]
    list_filter = ["dialect", "embedded", "verify_tls", "disposition_required"]
    search_fields = ["name", "base_url"]
    actions = ["check_first_login"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[VoiceServer]:
        return super().get_queryset(request).annotate(login_count=Count("agent_logins"))

    def get_readonly_fields(self, request: HttpRequest, obj: VoiceServer | None = None) -> list[str]:
        # rundesk rewrites the embedded server's URL on every start: editing it would not stick.
        return ["embedded", "base_url"] if obj is not None and obj.embedded else ["embedded"]

    @admin.display(description="agent logins", ordering="login_count")
    def login_count(self, obj: WithAnnotations[VoiceServer, LoginCount]) -> int:
        return obj.login_count

    @admin.action(description="Check connection (first agent login of each server)", permissions=["change"])
    def check_first_login(self, request: HttpRequest, queryset: QuerySet[VoiceServer]) -> None:
        logins = []
        for server in queryset:
            login = server.agent_logins.select_related("server", "user").order_by("user__username").first()
            if login is None:
                self.message_user(request, f"{server}: no agent login to check with", messages.WARNING)
            else:
                logins.append(login)
        report_checks(self, request, logins)


class LiveSessionFilter(admin.SimpleListFilter):
    """Whether a worker holds the login's Voice API session now (its lease has not run out)."""

    title = "live session"
    parameter_name = "live"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[AgentLogin]
    ) -> list[tuple[str, str]]:
        return [("yes", "Live"), ("no", "Not live")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AgentLogin]) -> QuerySet[AgentLogin]:
        live = Q(lease_until__gt=timezone.now())
        if self.value() == "yes":
            return queryset.filter(live)
        if self.value() == "no":
            return queryset.exclude(live)
        return queryset


class ImportAgentLoginsForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=(
            "UTF-8, with the columns username, voice_username, password, dn, place and optionally "
            "server and email. At most 2 MB."
        ),
    )
    server = forms.ModelChoiceField(
        VoiceServer.objects.all(), required=False, help_text="For rows that name no server."
    )
    dry_run = forms.BooleanField(
        label="Dry run: check every row, write nothing", required=False, initial=True
    )


class AgentLoginForm(forms.ModelForm[AgentLogin]):
    """The password field is write-only: never rendered, blank on edit keeps the current one."""

    password = forms.CharField(
        label="Voice API password",
        strip=False,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = AgentLogin
        fields = ["user", "server", "username", "password", "place", "dn", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The decrypted password must not sit in the form's initial data, where any widget could show it.
        self.initial.pop("password", None)
        if self.instance.pk is None:
            self.fields["password"].required = True
        else:
            self.fields["password"].help_text = "Leave blank to keep the current password."

    def clean_password(self) -> str:
        password: str = self.cleaned_data.get("password") or ""
        if not password and self.instance.pk is not None:
            return self.instance.password
        return password


@admin.register(AgentLogin)
class AgentLoginAdmin(admin.ModelAdmin[AgentLogin]):
    """Agent logins, who has a live session, "Check connection", "End session" and "Import CSV"."""

    form = AgentLoginForm
    list_display = [
        "user",
        "username",
        "server",
        "dn",
        "place",
        "enabled",
        "connection",
        "agent_state_display",
        "live_session",
    ]
    list_filter = [LiveSessionFilter, "server", "enabled", "connection", "agent_state"]
    search_fields = ["user__username", "username", "dn", "place"]
    list_select_related = ["user", "server"]
    autocomplete_fields = ["user"]
    readonly_fields = [
        "connection",
        "agent_state",
        "state_reason",
        "state_since",
        "wanted",
        "worker",
        "lease_until",
    ]
    actions = ["check_connection", "end_session"]
    change_list_template = "admin/calls/agentlogin/change_list.html"

    def get_fields(
        self, request: HttpRequest, obj: AgentLogin | None = None
    ) -> list[str | list[str] | tuple[str, ...]]:
        fields = list(super().get_fields(request, obj))
        # A viewer without the change permission sees every field read-only, which would print the password.
        if obj is not None and not self.has_change_permission(request, obj):
            fields.remove("password")
        return fields

    @admin.display(description="agent state", ordering="agent_state")
    def agent_state_display(self, obj: AgentLogin) -> str:
        return f"{obj.agent_state} ({obj.state_reason})" if obj.state_reason else obj.agent_state

    @admin.action(description="Check connection", permissions=["change"])
    def check_connection(self, request: HttpRequest, queryset: QuerySet[AgentLogin]) -> None:
        report_checks(self, request, list(queryset.select_related("server", "user")))

    @admin.display(description="live session", boolean=True, ordering="lease_until")
    def live_session(self, obj: AgentLogin) -> bool:
        return obj.lease_until is not None and obj.lease_until > timezone.now()

    @admin.action(description="End session (stop the Voice API session)", permissions=["change"])
    def end_session(self, request: HttpRequest, queryset: QuerySet[AgentLogin]) -> None:
        """The worker drops the session and the agent's tabs show it offline; it comes back only when
        the agent opens the desk again (a page load asks for the session)."""
        logins = list(queryset.select_related("user"))
        # Not wanted first: a reconcile in between must not start the session again.
        AgentLogin.objects.filter(pk__in=[login.pk for login in logins]).update(wanted=False)
        for login in logins:
            stop_session(login.pk, ENDED_BY_ADMIN)
            audit.record(
                action=audit.END_SESSION,
                result=AuditEntry.OK,
                user=request.user,
                detail=login.user.get_username(),
                message=f"stopped the Voice API session of {login.username} on {login.server_id}",
                address=audit.request_address(request),
            )
        self.message_user(request, f"Asked the session worker to stop {len(logins)} session(s).")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="calls_agentlogin_import"), *super().get_urls()]

    def may_import(self, request: HttpRequest) -> bool:
        """Importing creates and changes users as well as agent logins."""
        user_model = get_user_model()._meta
        return (
            self.has_add_permission(request)
            and self.has_change_permission(request)
            and request.user.has_perms(
                [f"{user_model.app_label}.add_{user_model.model_name}"]
                + [f"{user_model.app_label}.change_{user_model.model_name}"]
            )
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "may_import": self.may_import(request)}
        return super().changelist_view(request, extra_context)

    def import_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.may_import(request):
            raise PermissionDenied
        report = None
        error = ""
        if request.method == "POST":
            form = ImportAgentLoginsForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                server = form.cleaned_data["server"]
                try:
                    report = import_agent_logins(
                        upload.read(importing.MAX_BYTES + 1),
                        server_name=server.name if server else "",
                        dry_run=form.cleaned_data["dry_run"],
                        actor=request.user,
                        address=audit.request_address(request),
                    )
                except ImportRefused as exc:
                    error = str(exc)
        else:
            form = ImportAgentLoginsForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import agent logins",
            "form": form,
            "report": report,
            "error": error,
        }
        return TemplateResponse(request, "admin/calls/agentlogin/import.html", context)


ReadOnlyModel = TypeVar("ReadOnlyModel", bound=Model)


class ReadOnlyAdmin(admin.ModelAdmin[ReadOnlyModel]):
    """Rows the session worker writes from the Voice API's truth: to look at, never to edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ReadOnlyModel | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ReadOnlyModel | None = None) -> bool:
        return False


def _login_user(obj: LiveCall | CallRecord) -> str:
    return obj.login.user.get_username()


@admin.register(LiveCall)
class LiveCallAdmin(ReadOnlyAdmin[LiveCall]):
    list_display = [
        "call_id",
        "agent",
        "state",
        "call_type",
        "parent_call_id",
        "dnis",
        "started_at",
        "updated_at",
    ]
    list_filter = ["state", "call_type", "login__server"]
    search_fields = ["call_id", "login__user__username", "login__dn", "dnis"]
    list_select_related = ["login__user"]

    @admin.display(description="agent", ordering="login__user__username")
    def agent(self, obj: LiveCall) -> str:
        return _login_user(obj)


@admin.register(CallRecord)
class CallRecordAdmin(ReadOnlyAdmin[CallRecord]):
    list_display = [
        "call_id",
        "agent",
        "direction",
        "dnis",
        "started_at",
        "ended_at",
        "outcome",
        "disposition",
        "talk_seconds",
        "hold_seconds",
        "duration",
    ]
    list_filter = ["direction", "outcome", "login__server", "started_at"]
    search_fields = ["call_id", "login__user__username", "login__dn", "dnis"]
    list_select_related = ["login__user"]
    date_hierarchy = "started_at"

    @admin.display(description="agent", ordering="login__user__username")
    def agent(self, obj: CallRecord) -> str:
        return _login_user(obj)


# --- Not-ready reasons, disposition codes, speed dials, the audit log; sessions and CSV import ---


@admin.register(NotReadyReason)
class NotReadyReasonAdmin(admin.ModelAdmin[NotReadyReason]):
    list_display = ["label", "code", "position", "active"]
    list_editable = ["position", "active"]
    list_filter = ["active"]
    search_fields = ["label", "code"]


@admin.register(DispositionCode)
class DispositionCodeAdmin(admin.ModelAdmin[DispositionCode]):
    """Codes agents choose per call; retire one by unticking active, so past calls keep its label."""

    list_display = ["label", "code", "position", "active"]
    list_editable = ["position", "active"]
    list_filter = ["active"]
    search_fields = ["label", "code"]


@admin.register(SpeedDial)
class SpeedDialAdmin(admin.ModelAdmin[SpeedDial]):
    list_display = ["label", "number", "position", "active"]
    list_editable = ["position", "active"]
    list_filter = ["active"]
    search_fields = ["label", "number"]


class MemberCount(TypedDict):
    member_count: int


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    """Teams: their members (agent logins) and their leads (desk users). Saving warns about a lead
    who could not run the team: without the permission "Can lead a team" the team stays hidden
    from them, and without an enabled agent login they cannot act."""

    list_display = ["name", "lead_names", "member_count"]
    search_fields = ["name", "leads__username", "members__user__username", "members__dn"]
    autocomplete_fields = ["members", "leads"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        leads = Prefetch("leads", queryset=get_user_model().objects.order_by("username"))
        queryset = super().get_queryset(request).prefetch_related(leads)
        return queryset.annotate(member_count=Count("members", distinct=True))

    @admin.display(description="leads")
    def lead_names(self, obj: Team) -> str:
        return ", ".join(user.get_username() for user in obj.leads.all()) or "—"

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj: WithAnnotations[Team, MemberCount]) -> int:
        return obj.member_count

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        team: Team = form.instance
        for lead in team.leads.all():
            name = lead.get_username()
            if not lead.is_active or not lead.has_perm(SUPERVISE_PERMISSION):
                self.message_user(
                    request,
                    f'{name} cannot see this team: an active user with the permission "Can lead a team" can.',
                    messages.WARNING,
                )
            elif not AgentLogin.objects.filter(user=lead, enabled=True).exists():
                self.message_user(
                    request,
                    f"{name} has no enabled agent login: they see the board but cannot act on it.",
                    messages.WARNING,
                )


@admin.register(Supervision)
class SupervisionAdmin(ReadOnlyAdmin[Supervision]):
    """Who monitors which call now, as leads started it from their boards."""

    list_display = ["lead", "mode", "member", "call_id", "started_at"]
    list_filter = ["mode"]
    list_select_related = ["lead__user", "member__user", "lead__server", "member__server"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin[AuditEntry]):
    """The audit log: to read and search, never to add, change or delete (the model refuses too)."""

    list_display = ["when", "username", "action", "call_id", "detail", "result", "message", "remote_address"]
    list_filter = ["result", "action", "when"]
    search_fields = ["username", "call_id", "detail", "message", "remote_address"]
    date_hierarchy = "when"
    show_full_result_count = False  # counting a large log on every page is slow

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}  # not even "delete selected"
