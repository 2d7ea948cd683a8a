"""The Switchboard project package and the agent-facing web: settings, ASGI routing, pages."""
