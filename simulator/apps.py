from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """Installed only so that `manage.py voicesim` exists; the simulator has no models."""

    name = "simulator"
    verbose_name = "Voice API simulator"
