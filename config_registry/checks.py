"""System checks: one reader of the environment, and a usable encryption key ring."""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import checks

from .crypto import KeyRingInvalid, key_ring

SETTINGS_MODULE = Path("project") / "settings.py"
# Not part of the running product: tests and benchmarks set up their own processes; clients/ are other
# programs' libraries (the CLI takes its token from a variable its user names).
SKIPPED_DIRS = {"tests", "bench", "clients", "node_modules", "var", "__pycache__"}
READERS = {"environ", "environb", "getenv", "getenvb"}


@dataclass(frozen=True)
class EnvironmentRead:
    path: Path
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code}"


def _python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in parts[:-1]):
            continue
        if path.relative_to(root) != SETTINGS_MODULE:
            yield path


# Django's convention for naming the settings module: allowed in the entry points alone, exactly so.
ENTRY_POINTS = {Path("manage.py"), Path("project") / "asgi.py", Path("project") / "wsgi.py"}


def _settings_module_default(node: ast.AST) -> ast.AST | None:
    """The `os.environ` of `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "<literal>")`, else None."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "setdefault"
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "environ"
        and isinstance(node.func.value.value, ast.Name)
        and node.func.value.value.id == "os"
        and len(node.args) == 2
        and not node.keywords
        and all(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args)
        and node.args[0].value == "DJANGO_SETTINGS_MODULE"
    ):
        return node.func.value
    return None


def _reads_in(tree: ast.AST, *, entry_point: bool = False) -> Iterator[tuple[int, str]]:
    os_aliases = {"os", "posix"}
    allowed = {id(found) for node in ast.walk(tree) if entry_point and (found := _settings_module_default(node))}
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("os", "posix") and alias.asname:
                    os_aliases.add(alias.asname)
                if alias.name == "environ":
                    yield node.lineno, "import environ (django-environ)"
        elif isinstance(node, ast.ImportFrom):
            if node.module in ("os", "posix"):
                for alias in node.names:
                    if alias.name in READERS:
                        yield node.lineno, f"from {node.module} import {alias.name}"
            elif node.module and node.module.split(".")[0] == "environ":
                yield node.lineno, f"from {node.module} import … (django-environ)"
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in READERS
            and isinstance(node.value, ast.Name)
            and node.value.id in os_aliases
        ):
            yield node.lineno, f"{node.value.id}.{node.attr}"


def find_environment_reads(root: Path) -> list[EnvironmentRead]:
    """Every place under `root`, other than project/settings.py, that reads the environment."""
    found = []
    for path in _python_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError):
            continue  # Django reports broken modules itself when it imports them
        relative = path.relative_to(root)
        found += [
            EnvironmentRead(relative, line, code)
            for line, code in _reads_in(tree, entry_point=relative in ENTRY_POINTS)
        ]
    return sorted(found, key=lambda read: (str(read.path), read.line))


@checks.register(checks.Tags.security)
def check_single_environment_reader(app_configs, **kwargs):
    return [
        checks.Error(
            f"{read.path}:{read.line} reads the environment ({read.code})",
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
