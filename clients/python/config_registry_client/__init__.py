"""Config Registry's Python client: `Registry(url, token, environment=, service=, user=None)`."""

from .errors import ConfigTypeError, MissingKey, RegistryError, RegistryUnavailable
from .registry import Change, Registry, Status

__all__ = ["Change", "ConfigTypeError", "MissingKey", "Registry", "RegistryError", "RegistryUnavailable", "Status"]
