from django.contrib import admin
from django.urls import include, path

from desktop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("", views.desk, name="desk"),
    path("calls/<str:call_id>/", views.call_operation, name="call-operation"),
    path("agent/", views.agent_operation, name="agent-operation"),
    path("dial/", views.dial, name="dial"),
    path("history/", views.history, name="history"),
]
