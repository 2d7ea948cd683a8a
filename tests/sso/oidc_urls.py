"""The desk's URLs as they are with OIDC configured, for in-process tests that turn it on late."""

from django.urls import include, path

from desktop.urls import urlpatterns as desk_urlpatterns

urlpatterns = [path("oidc/", include("mozilla_django_oidc.urls")), *desk_urlpatterns]
