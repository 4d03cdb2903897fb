from django.apps import AppConfig


class ConfigRegistryConfig(AppConfig):
    name = "config_registry"
    verbose_name = "Config Registry"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registers checks and receivers)
