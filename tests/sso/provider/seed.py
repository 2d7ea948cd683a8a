"""Adds a client or a user to the test provider's database; prints what the tests need as JSON.

python -m tests.sso.provider.seed client ID SECRET DESK_URL
python -m tests.sso.provider.seed user USERNAME PASSWORD FIRST LAST EMAIL
"""

import json
import os
import sys

import django


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sso.provider.settings")
    django.setup()
    from django.contrib.auth.models import User
    from oidc_provider.lib.utils.common import default_sub_generator
    from oidc_provider.models import Client, ResponseType

    kind, *args = argv
    if kind == "client":
        client_id, secret, desk_url = args
        client = Client.objects.create(
            name=client_id,
            client_type="confidential",
            client_id=client_id,
            client_secret=secret,
            jwt_alg="RS256",
            require_consent=False,
        )
        client.response_types.add(ResponseType.objects.get(value="code"))
        client.redirect_uris = [f"{desk_url}/oidc/callback/"]
        client.post_logout_redirect_uris = [f"{desk_url}/accounts/login/"]
        client.save()
        print(json.dumps({"client_id": client_id}))
    elif kind == "user":
        username, password, first, last, email = args
        user = User.objects.create_user(username, email, password, first_name=first, last_name=last)
        print(json.dumps({"sub": default_sub_generator(user)}))
    else:
        raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
