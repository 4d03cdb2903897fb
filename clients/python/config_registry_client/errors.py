"""What the client raises: each names the key, the type or the registry's own message."""


class RegistryError(Exception):
    """The registry refused the request (token, scope, limits, parameters, unknown user)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}" if code else f"{status}: {message}")
        self.status, self.code, self.message = status, code, message


class RegistryUnavailable(Exception):
    """The registry cannot be reached (and, at start, no last-known-good file could stand in)."""


class MissingKey(KeyError):
    def __init__(self, key: str, where: str):
        super().__init__(key)
        self.key = key
        self.message = f"no key {key!r} in the configuration of {where}"

    def __str__(self) -> str:
        return self.message


class ConfigTypeError(TypeError):
    def __init__(self, key: str, expected: str, shown: str, where: str):
        super().__init__(f"{key!r} is {shown}, not {expected} (configuration of {where})")
        self.key, self.expected = key, expected
