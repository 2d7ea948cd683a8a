from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "calls"
    verbose_name = "Calls"

    def ready(self) -> None:
        # Connect the receivers: session start/stop, and the audit log's sign-in records.
        from . import audit, signals  # noqa: F401
