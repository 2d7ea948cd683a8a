from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "calls"
    verbose_name = "Calls"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the session start/stop receivers)
