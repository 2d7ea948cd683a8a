from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "calls"
    verbose_name = "Calls"

    def ready(self) -> None:
        # Connect the receivers: session start/stop, and the audit log's sign-in records.
        from . import audit, metrics, signals  # noqa: F401

        # Every process of the desk (daphne, a session worker) times its garbage collections.
        metrics.time_gc()
