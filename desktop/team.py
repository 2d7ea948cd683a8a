"""The team lead's board (``/team/``) and the thin views behind its controls.

Every view starts from ``Team.objects.led_by``: a user who leads no team gets 403, a team the user
does not lead (or that does not exist) 404, and so does a member who is not on it. Controls answer
204, or a toast with the refusal; the rows change when the member's change is saved and pushed,
never from an action's response.

The controls are limited as an agent's own are (``calls.ratelimit``): an identical request repeated
within ACTION_DUPLICATE_WINDOW_SECONDS (a double click) is absorbed, and more than
ACTION_RATE_LIMIT actions are refused with 429 and audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from calls import board, fragments, ratelimit, supervision
from calls.actions import ActionRefused
from calls.models import AgentLogin, Team
from desktop.security import storm_refusal, toast
from desktop.views import SignedInRequest

NOT_A_LEAD = "You lead no team. An administrator names the leads of each team."


@login_required
@require_GET
@never_cache
def team_board(request: SignedInRequest, team_id: int | None = None) -> HttpResponse:
    """The board of a team the user leads: the first of them by name, or the one named."""
    teams = list(Team.objects.led_by(request.user))
    if not teams:
        return render(request, "desktop/team.html", {"message": NOT_A_LEAD}, status=403)
    team = teams[0] if team_id is None else next((t for t in teams if t.pk == team_id), None)
    if team is None:
        raise Http404("No such team")
    login = (
        AgentLogin.objects.select_related("server", "user").filter(user=request.user, enabled=True).first()
    )
    context: dict[str, Any] = {
        "team": team,
        "teams": teams,
        "login": login,
        "board_html": board.board_region(team, board.viewer(request.user.pk)),
    }
    if login is not None:
        context |= {
            "desk": fragments.desk_parts(login, oob=False),
        }
    return render(request, "desktop/team.html", context)


def _fingerprint(view: str, *parts: object) -> str:
    return hashlib.sha256(repr((view, *parts)).encode()).hexdigest()


async def _act(
    request: HttpRequest, fingerprint: str, operation: str, action: Callable[[User], Awaitable[None]]
) -> HttpResponse:
    """Runs ``action`` for the signed-in user, within the agent's limits on actions."""
    user = await request.auser()
    if not user.is_authenticated:
        return toast("Your desk session has ended: log in again.", 401)
    admission = await ratelimit.admit_action(user.pk, fingerprint)
    if admission is ratelimit.Admission.STORM:
        return await storm_refusal(user, operation[:64])
    if admission is ratelimit.Admission.DUPLICATE:
        return HttpResponse(status=204)  # the first one is on its way; its outcome is what counts
    try:
        await action(user)
    except ActionRefused as exc:
        await ratelimit.release_action(user.pk, fingerprint)  # the lead may try again at once
        return toast(exc.message, exc.status)
    except BaseException:
        await ratelimit.release_action(user.pk, fingerprint)
        raise
    return HttpResponse(status=204)


@require_POST
async def supervise(request: HttpRequest, team_id: int, member_id: int) -> HttpResponse:
    operation = request.POST.get("operation", "")
    return await _act(
        request,
        _fingerprint("supervise", team_id, member_id, operation),
        operation,
        lambda user: supervision.supervise(user, team_id, member_id, operation),
    )


@require_POST
async def member_state(request: HttpRequest, team_id: int, member_id: int) -> HttpResponse:
    operation = request.POST.get("operation", "")
    reason = request.POST.get("reason", "")
    return await _act(
        request,
        _fingerprint("member-state", team_id, member_id, operation, reason),
        f"Member{operation}",
        lambda user: supervision.set_member_state(user, team_id, member_id, operation, reason),
    )
