"""The admin of voice servers and agent logins: write-only passwords and the connection check."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from calls.models import AgentLogin, CallRecord, LiveCall, VoiceServer

SECRET = "s3cret-Voice-pw"


@pytest.fixture
def site_a() -> VoiceServer:
    """A voice server at an address no test reaches: admin pages that do not call the Voice API need no
    simulator (a test that does points it at the simulator)."""
    return VoiceServer.objects.create(name="Site A", base_url="http://gws.example.test")


@pytest.fixture
def login(site_a: VoiceServer) -> AgentLogin:
    user = get_user_model().objects.create_user("alice", password="alice-desk")
    return AgentLogin.objects.create(
        user=user, server=site_a, username="agent1", password=SECRET, dn="5005", place="place_5005"
    )


def form_data(login: AgentLogin, **changes: Any) -> dict[str, Any]:
    data = {
        "user": login.user_id,
        "server": login.server_id,
        "username": login.username,
        "password": "",
        "place": login.place,
        "dn": login.dn,
        "enabled": "on",
    }
    data.update(changes)
    return data


def action(client: Client, url: str, name: str, pks: list[int]) -> list[tuple[str, str]]:
    response = client.post(url, {"action": name, "_selected_action": pks}, follow=True)
    assert response.status_code == 200
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["voiceserver", "agentlogin", "livecall", "callrecord"])
def test_every_calls_list_page_opens_for_a_superuser(
    admin_client: Client, login: AgentLogin, model: str
) -> None:
    now = timezone.now()
    LiveCall.objects.create(
        login=login, call_id="c-live", state="Established", call_type="Inbound", started_at=now
    )
    CallRecord.objects.create(login=login, call_id="c-old", call_type="Inbound", started_at=now)

    response = admin_client.get(f"/admin/calls/{model}/")

    assert response.status_code == 200
    assert SECRET not in response.content.decode()


@pytest.mark.django_db
def test_the_agent_login_list_shows_connection_and_agent_state(
    admin_client: Client, login: AgentLogin
) -> None:
    AgentLogin.objects.filter(pk=login.pk).update(
        connection=AgentLogin.CONNECTED, agent_state="NotReady", state_reason="Lunch"
    )

    page = admin_client.get("/admin/calls/agentlogin/").content.decode()

    assert "Connected" in page
    assert "NotReady (Lunch)" in page


@pytest.mark.django_db
def test_live_calls_and_call_records_cannot_be_added_or_changed(
    admin_client: Client, login: AgentLogin
) -> None:
    record = CallRecord.objects.create(
        login=login, call_id="c-old", call_type="Inbound", started_at=timezone.now()
    )

    assert admin_client.get("/admin/calls/livecall/add/").status_code == 403
    assert admin_client.get("/admin/calls/callrecord/add/").status_code == 403
    page = admin_client.get(f"/admin/calls/callrecord/{record.pk}/change/")
    assert page.status_code == 200
    assert 'name="call_id"' not in page.content.decode()


@pytest.mark.django_db
def test_the_change_form_never_renders_the_password(admin_client: Client, login: AgentLogin) -> None:
    page = admin_client.get(f"/admin/calls/agentlogin/{login.pk}/change/").content.decode()

    assert 'type="password"' in page
    assert SECRET not in page
    assert "Leave blank to keep the current password." in page


@pytest.mark.django_db
def test_the_add_form_asks_for_a_password_and_does_not_echo_it_on_error(
    admin_client: Client, site_a: VoiceServer
) -> None:
    user = get_user_model().objects.create_user("bob")

    # Missing username: the form comes back with errors, and must not carry the typed password.
    response = admin_client.post(
        "/admin/calls/agentlogin/add/",
        {
            "user": user.pk,
            "server": site_a.pk,
            "username": "",
            "password": SECRET,
            "dn": "5001",
            "enabled": "on",
        },
    )

    assert response.status_code == 200
    assert SECRET not in response.content.decode()
    assert not AgentLogin.objects.exists()


@pytest.mark.django_db
def test_a_new_login_needs_a_password(admin_client: Client, site_a: VoiceServer) -> None:
    user = get_user_model().objects.create_user("bob")

    response = admin_client.post(
        "/admin/calls/agentlogin/add/",
        {"user": user.pk, "server": site_a.pk, "username": "agent2", "password": "", "enabled": "on"},
    )

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not AgentLogin.objects.exists()


@pytest.mark.django_db
def test_a_new_login_keeps_the_password_it_was_given(admin_client: Client, site_a: VoiceServer) -> None:
    user = get_user_model().objects.create_user("bob")

    response = admin_client.post(
        "/admin/calls/agentlogin/add/",
        {"user": user.pk, "server": site_a.pk, "username": "agent2", "password": "agent2", "enabled": "on"},
    )

    assert response.status_code == 302
    assert AgentLogin.objects.get(user=user).password == "agent2"


@pytest.mark.django_db
def test_a_blank_password_on_edit_keeps_the_current_one(admin_client: Client, login: AgentLogin) -> None:
    response = admin_client.post(f"/admin/calls/agentlogin/{login.pk}/change/", form_data(login, dn="5006"))

    assert response.status_code == 302
    login.refresh_from_db()
    assert login.dn == "5006"
    assert login.password == SECRET


@pytest.mark.django_db
def test_a_typed_password_on_edit_replaces_the_current_one(admin_client: Client, login: AgentLogin) -> None:
    response = admin_client.post(
        f"/admin/calls/agentlogin/{login.pk}/change/", form_data(login, password="a-new-one")
    )

    assert response.status_code == 302
    login.refresh_from_db()
    assert login.password == "a-new-one"


@pytest.mark.django_db
def test_a_viewer_without_change_permission_does_not_see_the_password(login: AgentLogin) -> None:
    viewer = get_user_model().objects.create_user("viewer", password="viewer-pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_agentlogin"))
    client = Client()
    client.force_login(viewer)

    page = client.get(f"/admin/calls/agentlogin/{login.pk}/change/")

    assert page.status_code == 200
    assert "agent1" in page.content.decode()
    assert SECRET not in page.content.decode()


@pytest.mark.django_db
def test_the_embedded_servers_url_is_not_editable(admin_client: Client) -> None:
    embedded = VoiceServer.objects.create(
        name="Embedded", base_url="http://127.0.0.1:8000/sim/genesys", embedded=True
    )

    page = admin_client.get(f"/admin/calls/voiceserver/{embedded.pk}/change/").content.decode()

    assert "http://127.0.0.1:8000/sim/genesys" in page
    assert 'name="base_url"' not in page


# The connection check, against the real simulator


@pytest.mark.django_db
def test_check_connection_reports_the_dn_of_a_login_that_works(
    admin_client: Client, login: AgentLogin, simulator: str
) -> None:
    VoiceServer.objects.filter(pk=login.server_id).update(base_url=f"{simulator}/genesys")
    login.password = "agent1"
    login.save()

    reported = action(admin_client, "/admin/calls/agentlogin/", "check_connection", [login.pk])

    assert reported == [("success", "agent1: connected, DN 5005")]


@pytest.mark.django_db
def test_check_connection_reports_the_servers_refusal_of_a_wrong_password(
    admin_client: Client, login: AgentLogin, simulator: str
) -> None:
    VoiceServer.objects.filter(pk=login.server_id).update(base_url=f"{simulator}/genesys")

    reported = action(admin_client, "/admin/calls/agentlogin/", "check_connection", [login.pk])

    assert reported == [("error", "agent1: Access denied: bad user name or password")]
    assert all(SECRET not in text for _, text in reported)


@pytest.mark.django_db
def test_check_connection_reports_each_login_on_its_own(
    admin_client: Client, login: AgentLogin, site_a: VoiceServer, simulator: str
) -> None:
    VoiceServer.objects.filter(pk=site_a.pk).update(base_url=f"{simulator}/genesys")
    login.password = "agent1"
    login.save()
    other = get_user_model().objects.create_user("carol")
    second = AgentLogin.objects.create(user=other, server=site_a, username="agent4", password="agent4")

    reported = action(admin_client, "/admin/calls/agentlogin/", "check_connection", [login.pk, second.pk])

    assert sorted(reported) == [
        ("success", "agent1: connected, DN 5005"),
        ("success", "agent4: connected, DN 15000"),
    ]


@pytest.mark.django_db
def test_check_connection_reports_an_unreachable_server(admin_client: Client, login: AgentLogin) -> None:
    # Port 9 on loopback (discard) is closed: the connection is refused at once.
    VoiceServer.objects.filter(pk=login.server_id).update(base_url="http://127.0.0.1:9")

    reported = action(admin_client, "/admin/calls/agentlogin/", "check_connection", [login.pk])

    assert reported == [("error", "agent1: Voice API unreachable: ConnectError")]


@pytest.mark.django_db
def test_the_server_check_logs_in_with_its_first_agent_login(
    admin_client: Client, login: AgentLogin, site_a: VoiceServer, simulator: str
) -> None:
    VoiceServer.objects.filter(pk=site_a.pk).update(base_url=f"{simulator}/genesys")
    login.password = "agent1"
    login.save()
    empty = VoiceServer.objects.create(name="Site B", base_url="http://gws-b.example.test")

    reported = action(admin_client, "/admin/calls/voiceserver/", "check_first_login", [site_a.pk, empty.pk])

    assert ("success", "agent1: connected, DN 5005") in reported
    assert ("warning", "Site B: no agent login to check with") in reported
