"""The Jinja2 environment of the templates under ``jinja/``: the call card (and what it includes) and
the agent-state bar, the fragments a session worker renders for every call event, where Django's
template engine costs several milliseconds a card. The filters and helpers are the ones the Django
templates use."""

from __future__ import annotations

import functools
from typing import Any

from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils.safestring import SafeString
from jinja2 import Environment

from calls.templatetags.calls import epoch, input_hint, input_pattern, parties
from calls.templatetags.history import clock
from calls.templatetags.supervision import supervision_notice


def url(name: str, *args: Any) -> str:
    """As ``{% url %}``: the path of the view ``name`` with ``args``."""
    return reverse(name, args=args) if args else _fixed_url(get_script_prefix(), name)


@functools.cache
def _fixed_url(prefix: str, name: str) -> str:
    # A path without arguments is the same for every card (under the same script prefix).
    return reverse(name)


def environment(**options: Any) -> Environment:
    # Always escaped, whatever the settings say: the card shows what callers and vendors send.
    options.pop("autoescape", None)
    env = Environment(autoescape=True, **options)
    env.globals.update(url=url, supervision_notice=supervision_notice)
    env.filters.update(
        epoch=epoch, parties=parties, input_pattern=input_pattern, input_hint=input_hint, clock=clock
    )
    return env


def render(name: str, context: dict[str, Any]) -> SafeString:
    """The template ``name`` under ``jinja/`` rendered; Jinja2 escaped it already, so Django's
    templates and ``format_html`` take it as it is."""
    return SafeString(render_to_string(name, context, using="jinja2"))
