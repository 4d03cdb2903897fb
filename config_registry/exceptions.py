"""Domain errors, each with a message a person can act on. Transports map them to codes."""

from collections.abc import Mapping

from project.infra.redis_cache import CacheUnavailable  # noqa: F401  (re-exported: the shared cache's own)

from .crypto import KeyRingInvalid, SecretUndecryptable  # noqa: F401  (re-exported)


class RegistryError(Exception):
    """Base of the registry's own errors."""


class InvalidInput(RegistryError):
    """Bad input from a caller; `errors` maps a field or key to what is wrong with it."""

    def __init__(self, message: str, errors: Mapping[str, str] | None = None):
        self.message = message
        self.errors = dict(errors or {})
        detail = "; ".join(f"{field}: {reason}" for field, reason in self.errors.items())
        super().__init__(f"{message} ({detail})" if detail else message)


class PermissionRefused(RegistryError):
    """The caller is authenticated but lacks the right this change needs; the message names it."""


class NotFound(RegistryError):
    """A named layer, version, user or token does not exist."""


class VersionConflict(RegistryError):
    def __init__(self, *, layer: str, current: int, base: int):
        self.layer, self.current, self.base = layer, current, base
        super().__init__(f"layer {layer} is at version {current}, your change was based on {base}: reload and reapply")


class RegistryUnavailable(RegistryError):
    """The registry's database cannot be reached right now; try again later."""


class SecurityConfigMissing(RegistryError):
    def __init__(self, *, key: str, environment: str, service: str, reason: str = "is not published"):
        self.key = key
        super().__init__(
            f"{key} {reason} for environment {environment!r}, service {service!r}: publish it as a "
            f"secret in the global, environment:{environment} or service:{service} layer"
        )


class SecurityConfigUnreadable(SecurityConfigMissing):
    """The security configuration is published but cannot be decrypted (altered, or its key lost)."""

    def __init__(self, *, key: str, environment: str, service: str, error: SecretUndecryptable):
        RegistryError.__init__(
            self,
            f"{key} cannot be decrypted for environment {environment!r}, service {service!r} "
            f"({error}): check CONFIG_REGISTRY_KEYS, or publish {key} again",
        )
        self.key = key


class ApprovalRequired(PermissionRefused):
    """A direct write to a gated layer (or to a key definition a gated layer depends on): it needs a
    change request (SPEC §11). Paths that can follow one (the API, the admin, import_env) submit one
    instead; the others (Vault's writes, import_config) refuse with this message."""

    def __init__(self, *, target: str, required: int, via: str = ""):
        self.target, self.required = target, required
        what = f"layer {target}" if not target.startswith("key:") else f"key definition {target[4:]}"
        super().__init__(
            f"{what} requires approval: {required} approval(s) by someone other than the author; "
            + (
                via
                or "submit a change request (POST /api/v1/layers/{ref}/versions answers 202 with one, "
                "or 'Submit for approval' in the admin)"
            ).replace("{ref}", target)
        )


class ChangeConflict(RegistryError):
    """A change request cannot take this step in its state (stale, not open, not due); 409."""

    def __init__(self, message: str, *, state: str = "", stale: bool = False):
        self.state, self.stale = state, stale
        super().__init__(message)
