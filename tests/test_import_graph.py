"""The project's modules import one another without a cycle, counting imports inside functions too
(a function-level import is how a cycle hides, not how it goes away)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config_registry", "chat", "project")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path, root)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            candidates = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and not name.startswith(candidate + "."):
                targets.add(candidate)
    return targets


def import_cycles(root: Path = ROOT) -> list[list[str]]:
    modules = _modules(root)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_import_graph__project_modules__no_cycle():
    assert import_cycles() == []


def test_import_graph__a_planted_cycle__is_found(tmp_path):
    package = tmp_path / "config_registry"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .b import g\n")
    (package / "b.py").write_text("from config_registry import a\n")
    assert import_cycles(tmp_path) == [["config_registry.a", "config_registry.b", "config_registry.a"]]


def _project_imports(name: str) -> set[str]:
    modules = _modules(ROOT)
    return _imports(name, modules[name], modules)


@pytest.mark.parametrize(
    "module, allowed",
    [
        ("config_registry.state", {"config_registry.models"}),  # the position: everyone may import it
        ("config_registry.memory", set()),
        ("config_registry.resolver", set()),  # pure
        ("config_registry.diff", set()),
    ],
)
def test_import_graph__leaf_modules__import_only_what_they_may(module, allowed):
    assert _project_imports(module) <= allowed


def test_import_graph__adapters_over_dependencies__import_nothing_of_the_apps():
    infra = [name for name in _modules(ROOT) if name.startswith("project.infra")]
    assert infra and all(
        not any(target.startswith(("config_registry", "chat")) for target in _project_imports(name)) for name in infra
    )
