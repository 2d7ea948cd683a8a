"""Speed dials from the admin are on the dial pad, and dial through the same checked path."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from calls.models import AgentLogin, SpeedDial, VoiceServer

pytestmark = pytest.mark.django_db


def test_active_speed_dials_are_on_the_dial_pad_in_order_and_inactive_ones_are_not(client: Client) -> None:
    user = get_user_model().objects.create_user("agent1", password="agent1")
    server = VoiceServer.objects.create(name="sim", base_url="http://127.0.0.1:9/genesys")
    AgentLogin.objects.create(user=user, server=server, username="agent1", password="agent1", dn="5005")
    SpeedDial.objects.create(label="Supervisor", number="5010", position=2)
    SpeedDial.objects.create(label="Billing", number="+15550100000", position=1)
    SpeedDial.objects.create(label="Old desk", number="5099", position=0, active=False)
    client.force_login(user)
    page = client.get("/").content.decode()
    assert page.index('data-speed-dial="+15550100000"') < page.index('data-speed-dial="5010"')
    assert 'data-speed-dial="5099"' not in page
