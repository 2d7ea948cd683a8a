"""Which desk user an OpenID Connect identity is.

The provider's ``sub`` (unique only within its issuer, never reassigned) is the identity; usernames
and e-mail addresses can change or be reused at the provider, so they only name a new account.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class OidcIdentity(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity"
    )
    issuer = models.CharField(max_length=255)
    sub = models.CharField("subject", max_length=255)
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "OpenID Connect identity"
        verbose_name_plural = "OpenID Connect identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "sub"], name="oidc_identity_issuer_sub")]

    def __str__(self) -> str:
        return f"{self.sub} at {self.issuer}"
