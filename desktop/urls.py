from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter
from mozilla_django_oidc.views import OIDCLogoutView

from desktop import metrics, sso, team, views


class CallIdConverter:
    """A call id in a path: one segment without control characters, which no call id holds (and
    PostgreSQL refuses NUL in a query): such a path is not found."""

    regex = r"[^/\x00-\x1f\x7f]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(CallIdConverter, "call_id")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", sso.LoginView.as_view(), name="login"),
    # Django's auth URLs but password reset: the desk sends no mail.
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.scrape, name="metrics"),
    path("", views.desk, name="desk"),
    path("calls/<call_id:call_id>/", views.call_operation, name="call-operation"),
    path("calls/<call_id:call_id>/disposition/", views.disposition, name="call-disposition"),
    path("agent/", views.agent_operation, name="agent-operation"),
    path("dial/", views.dial, name="dial"),
    path("directory/", views.directory, name="directory"),
    path("history/", views.history, name="history"),
    path("team/", team.team_board, name="team"),
    path("team/<int:team_id>/", team.team_board, name="team-board"),
    path("team/<int:team_id>/members/<int:member_id>/supervise/", team.supervise, name="team-supervise"),
    path("team/<int:team_id>/members/<int:member_id>/state/", team.member_state, name="team-member-state"),
]

if settings.OIDC_ENABLED:
    urlpatterns = [
        # Ends the desk session, then the provider's too when OIDC_OP_LOGOUT_URL is set.
        path("accounts/logout/", OIDCLogoutView.as_view(), name="logout"),
        path("oidc/", include("mozilla_django_oidc.urls")),
        *urlpatterns,
    ]
