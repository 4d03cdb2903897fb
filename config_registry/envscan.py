"""Every read of the environment in a Python codebase, found in the syntax tree (not by grep): os.environ
and os.getenv under any alias, django-environ's Env, python-dotenv, and pydantic settings classes' fields.
One scanner for scan_env_reads (the migration report, SPEC §10) and the project's own check E001."""

import ast
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

ENVIRON = {"environ", "environb"}
GETENV = {"getenv", "getenvb"}
OS_MODULES = {"os", "posix"}
MAPPING_METHODS = {"get", "setdefault", "pop"}
DOTENV_READERS = {"load_dotenv", "dotenv_values", "find_dotenv"}
# django-environ's readers: env.str("X"), env.bool("X"), env.db_url("X"), …
ENV_CASTS = {"str", "bool", "int", "float", "json", "list", "tuple", "dict", "url", "db", "db_url", "cache"}
ENV_CASTS |= {"cache_url", "email", "email_url", "search_url", "path", "parse_value", "get_value", "bytes"}
SKIPPED = {"node_modules", "__pycache__", "site-packages"}


@dataclass(frozen=True)
class EnvRead:
    path: Path  # relative to the scanned root
    line: int
    variable: str | None  # None: not a literal (a computed name, a whole-environment use, a .env file loaded)
    how: str  # os.environ[…], os.environ.get, os.getenv, environ.Env, dotenv.load_dotenv, pydantic BaseSettings, …
    settings_module_default: bool = False  # os.environ.setdefault("DJANGO_SETTINGS_MODULE", "<literal>")

    def __str__(self) -> str:
        named = f" {self.variable}" if self.variable else ""
        return f"{self.path}:{self.line}: {self.how}{named}"


def python_files(root: Path, skipped_dirs: Collection[str] = ()) -> Iterator[Path]:
    """Python files under `root`, without hidden directories (.venv, .git) and `skipped_dirs`."""
    skipped = SKIPPED | set(skipped_dirs)
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if not any(part.startswith(".") or part in skipped for part in parts):
            yield path


def scan(root: Path, skipped_dirs: Collection[str] = ()) -> list[EnvRead]:
    found = []
    for path in python_files(root, skipped_dirs) if root.is_dir() else [root]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue  # not Python this interpreter reads: nothing to report about it
        relative = path.relative_to(root) if root.is_dir() else Path(path.name)
        found += [EnvRead(relative, *read) for read in _Reads(tree).found]
    return sorted(found, key=lambda read: (str(read.path), read.line))


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Reads:
    """One module's reads: aliases first (import os as o, from os import environ as e, …), then uses."""

    def __init__(self, tree: ast.Module):
        self.found: list[tuple] = []
        self.os_names, self.environ_names, self.getenv_names = set(OS_MODULES), set(), set()
        self.dotenv_modules, self.dotenv_names, self.environ_modules, self.env_objects = set(), set(), set(), set()
        self.settings_bases = {"BaseSettings"}
        self.parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            self._aliases(node)
        for node in ast.walk(tree):  # names bound to environ.Env(...)
            if isinstance(node, ast.Assign) and self._is_env_class_call(node.value):
                self.env_objects |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            self._uses(node)

    def _aliases(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if alias.name in OS_MODULES:
                    self.os_names.add(bound)
                elif alias.name == "dotenv":
                    self.dotenv_modules.add(bound)
                elif alias.name == "environ":
                    self.environ_modules.add(bound)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                bound = alias.asname or alias.name
                if node.module in OS_MODULES and alias.name in ENVIRON:
                    self.environ_names.add(bound)
                elif node.module in OS_MODULES and alias.name in GETENV:
                    self.getenv_names.add(bound)
                elif node.module.split(".")[0] == "dotenv" and alias.name in DOTENV_READERS:
                    self.dotenv_names.add(bound)
                elif node.module.split(".")[0] == "environ" and alias.name == "Env":
                    self.environ_modules.add(f"<from>{bound}")
                elif node.module.split(".")[0] in ("pydantic", "pydantic_settings") and alias.name == "BaseSettings":
                    self.settings_bases.add(bound)

    def _is_environ(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr in ENVIRON:
            return isinstance(node.value, ast.Name) and node.value.id in self.os_names
        return isinstance(node, ast.Name) and node.id in self.environ_names

    def _is_env_class_call(self, node: ast.AST) -> bool:
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "Env":
            return isinstance(func.value, ast.Name) and func.value.id in self.environ_modules
        return isinstance(func, ast.Name) and f"<from>{func.id}" in self.environ_modules

    def _add(self, node: ast.AST, variable: str | None, how: str, settings_default: bool = False) -> None:
        self.found.append((node.lineno, variable, how, settings_default))

    def _uses(self, node: ast.AST) -> None:
        if self._is_environ(node):
            self._environ_use(node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.ClassDef):
            self._settings_class(node)

    def _environ_use(self, node: ast.AST) -> None:
        parent = self.parents.get(node)
        if isinstance(parent, ast.Subscript) and parent.value is node:
            return self._add(node, _literal(parent.slice), "os.environ[…]")
        if isinstance(parent, ast.Attribute) and parent.attr in MAPPING_METHODS:
            call = self.parents.get(parent)
            if isinstance(call, ast.Call) and call.func is parent:
                variable = _literal(call.args[0]) if call.args else None
                literal_default = len(call.args) == 2 and _literal(call.args[1]) is not None and not call.keywords
                default = parent.attr == "setdefault" and variable == "DJANGO_SETTINGS_MODULE" and literal_default
                return self._add(node, variable, f"os.environ.{parent.attr}", default)
        if isinstance(parent, ast.Compare) and parent.comparators and parent.comparators[0] is node:
            return self._add(node, _literal(parent.left), "os.environ (in)")
        self._add(node, None, "os.environ")  # the whole environment: copied, iterated, passed on

    def _call(self, node: ast.Call) -> None:
        func, first = node.func, _literal(node.args[0]) if node.args else None
        module = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        if isinstance(func, ast.Attribute) and func.attr in GETENV and module in self.os_names:
            return self._add(node, first, "os.getenv")
        if isinstance(func, ast.Name) and func.id in self.getenv_names:
            return self._add(node, first, "os.getenv")
        if isinstance(func, ast.Name) and func.id in self.dotenv_names:
            return self._add(node, None, f"dotenv.{func.id}")
        if isinstance(func, ast.Attribute) and func.attr in DOTENV_READERS and module in self.dotenv_modules:
            return self._add(node, None, f"dotenv.{func.attr}")
        if isinstance(func, ast.Name) and func.id in self.env_objects:
            return self._add(node, first, "environ.Env")
        if isinstance(func, ast.Attribute) and module in self.env_objects:
            if func.attr in ENV_CASTS:
                return self._add(node, first, f"environ.Env.{func.attr}")
            if func.attr == "read_env":
                return self._add(node, None, "environ.Env.read_env")
        if isinstance(func, ast.Attribute) and func.attr == "read_env" and self._is_env_class_attr(func.value):
            return self._add(node, None, "environ.Env.read_env")
        return None

    def _is_env_class_attr(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "Env":
            return isinstance(node.value, ast.Name) and node.value.id in self.environ_modules
        return isinstance(node, ast.Name) and f"<from>{node.id}" in self.environ_modules

    def _settings_class(self, node: ast.ClassDef) -> None:
        bases = {base.id if isinstance(base, ast.Name) else getattr(base, "attr", None) for base in node.bases}
        if not bases & self.settings_bases:
            return
        prefix = _settings_prefix(node)
        for statement in node.body:
            if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
                continue
            name = statement.target.id
            if name == "model_config" or name.startswith("_"):
                continue
            alias = _field_alias(statement.value)
            self._add(statement, alias or f"{prefix}{name}".upper(), f"pydantic {node.name}")


def _settings_prefix(node: ast.ClassDef) -> str:
    """env_prefix of `model_config = SettingsConfigDict(env_prefix=…)` or of an inner `class Config`."""
    for statement in node.body:
        value = None
        if isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            if any(isinstance(target, ast.Name) and target.id == "model_config" for target in targets):
                value = statement.value
        if isinstance(value, ast.Call):
            for keyword in value.keywords:
                if keyword.arg == "env_prefix" and _literal(keyword.value) is not None:
                    return _literal(keyword.value)
        if isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values, strict=True):
                if _literal(key) == "env_prefix" and _literal(item) is not None:
                    return _literal(item)
        if isinstance(statement, ast.ClassDef) and statement.name == "Config":
            for inner in statement.body:
                if isinstance(inner, ast.Assign) and any(
                    isinstance(target, ast.Name) and target.id == "env_prefix" for target in inner.targets
                ):
                    return _literal(inner.value) or ""
    return ""


def _field_alias(value: ast.AST | None) -> str | None:
    """Field(alias="X") / Field(validation_alias="X") names the variable itself."""
    if isinstance(value, ast.Call):
        for keyword in value.keywords:
            if keyword.arg in ("alias", "validation_alias", "env") and _literal(keyword.value):
                return _literal(keyword.value)
    return None
