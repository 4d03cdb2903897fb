from django.apps import AppConfig


class ConfigRegistryConfig(AppConfig):
    name = "config_registry"
    verbose_name = "Config Registry"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registers checks and receivers)
        from .live import broadcast_revision
        from .services import config_changed

        config_changed.connect(broadcast_revision, dispatch_uid="config_registry.live")
