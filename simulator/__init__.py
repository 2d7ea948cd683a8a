"""The switch in a box: a contact-center switch that speaks the vendors' wire protocols.

Nothing in ``desktop/`` or ``calls/`` imports this package; the desk reaches it over HTTP only.
"""
