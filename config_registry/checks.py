"""System checks: one reader of the environment, and a usable encryption key ring."""

from pathlib import Path

from django.conf import settings
from django.core import checks

from .crypto import KeyRingInvalid, key_ring
from .envscan import EnvRead, scan

SETTINGS_MODULE = Path("project") / "settings.py"
# Not part of the running product: tests and benchmarks set up their own processes; clients/ are other
# programs' libraries (the CLI takes its token from a variable its user names).
SKIPPED_DIRS = {"tests", "bench", "clients", "var"}
# Django's convention for naming the settings module: allowed in the entry points alone, exactly so.
ENTRY_POINTS = {Path("manage.py"), Path("project") / "asgi.py", Path("project") / "wsgi.py"}


def find_environment_reads(root: Path) -> list[EnvRead]:
    """Every place under `root`, other than project/settings.py, that reads the environment (envscan)."""
    return [
        read
        for read in scan(root, SKIPPED_DIRS)
        if read.path != SETTINGS_MODULE and not (read.settings_module_default and read.path in ENTRY_POINTS)
    ]


def _named(read: EnvRead) -> str:
    return f" {read.variable}" if read.variable else ""


@checks.register(checks.Tags.security)
def check_single_environment_reader(app_configs, **kwargs):
    return [
        checks.Error(
            f"{read.path}:{read.line} reads the environment ({read.how}"
            + (f" {read.variable})" if read.variable else ")"),
            hint="Only project/settings.py reads the environment. Ask the registry instead "
            "(config_registry.security.security_secret or selectors.config_resolve).",
            obj=str(read.path),
            id="config_registry.E001",
        )
        for read in find_environment_reads(Path(settings.BASE_DIR))
    ]


@checks.register(checks.Tags.security)
def check_key_ring(app_configs, **kwargs):
    try:
        key_ring()
    except KeyRingInvalid as error:
        return [checks.Error(str(error), id="config_registry.E002")]
    return []


class TicketsStoreUnknown(Exception):
    """The tickets' store could not be inspected."""


TICKETS_MIN_ENTRIES = 1_000_000  # in-process records: 60 s tickets at more than 16,000 handshakes/s


def tickets_store_problem(alias: str = "tickets") -> str | None:
    """Why the chat tickets' single-use records could be forgotten before their tickets expire, or None."""
    from django.core.cache import caches

    config = settings.CACHES.get(alias)
    if config is None:
        return f"CACHES has no {alias!r} cache: single-use chat tickets need a cache of their own"
    if config["BACKEND"].endswith("LocMemCache"):
        entries = int(config.get("OPTIONS", {}).get("MAX_ENTRIES", 300))
        if entries < TICKETS_MIN_ENTRIES:
            return (
                f"the {alias!r} cache keeps at most {entries} entries: at that many tickets in flight, "
                f"a used ticket could be accepted again (it needs at least {TICKETS_MIN_ENTRIES})"
            )
        return None
    client = caches[alias].client  # project.infra.redis_cache: the shared client
    try:
        found = client.config_get("maxmemory*")
    except Exception as error:  # CONFIG may be disabled (managed Redis): cannot tell, say so
        raise TicketsStoreUnknown(
            f"cannot read the Redis eviction policy ({error}): make sure it is noeviction, or maxmemory 0"
        ) from error
    if int(found.get("maxmemory", 0)) and found.get("maxmemory-policy") != "noeviction":
        return (
            f"Redis may evict keys (maxmemory {found['maxmemory']}, maxmemory-policy "
            f"{found.get('maxmemory-policy')}): a used chat ticket could be accepted again"
        )
    return None


@checks.register(checks.Tags.security)
def check_tickets_store(app_configs, **kwargs):
    try:
        problem = tickets_store_problem()
    except Exception as error:  # Redis down or CONFIG disabled at start-up: say so, do not stop
        return [checks.Warning(f"could not check the chat tickets' store: {error}", id="config_registry.W003")]
    if problem:
        return [
            checks.Error(
                problem,
                hint="Set maxmemory-policy noeviction on this Redis, or maxmemory 0 (README, Security).",
                id="config_registry.E003",
            )
        ]
    return []
