from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from mozilla_django_oidc.views import OIDCLogoutView

from desktop import sso, views

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before Django's auth URLs, which would otherwise answer these paths.
    path("accounts/login/", sso.LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("", views.desk, name="desk"),
    path("calls/<str:call_id>/", views.call_operation, name="call-operation"),
    path("agent/", views.agent_operation, name="agent-operation"),
    path("dial/", views.dial, name="dial"),
    path("history/", views.history, name="history"),
]

if settings.OIDC_ENABLED:
    urlpatterns = [
        # Ends the desk session, then the provider's too when OIDC_OP_LOGOUT_URL is set.
        path("accounts/logout/", OIDCLogoutView.as_view(), name="logout"),
        path("oidc/", include("mozilla_django_oidc.urls")),
        *urlpatterns,
    ]
