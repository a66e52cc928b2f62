"""The layers of the tree, checked from the imports themselves.

A booking travels HTTP -> core -> strategy -> stores, and the tooling sits on top: nothing
may import upwards. Every `import` statement counts, the ones inside functions too, so a
lazy import cannot hide an arrow that runs back up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the project packages it may import besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "strategies": frozenset({"core"}),
    "server": frozenset({"core", "strategies"}),
    "loadtest": frozenset({"core"}),
    "bench": frozenset({"core", "strategies", "server", "loadtest"}),
}
PROJECT = frozenset({*ALLOWED, "tests"})
# The `slotrush` command is the one composition root above every layer: its tooling
# commands (bench, faults, services, serve --dev) reach bench/, but only from inside the
# function that runs them, so `slotrush serve` never loads the tooling.
LAZY_ONLY: dict[str, frozenset[str]] = {"server/cli.py": frozenset({"bench"})}


def imported_packages(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line, top-level project package, lazy) of every absolute import in one file; lazy
    imports sit in a function or an `if TYPE_CHECKING:` block."""
    tree = ast.parse(path.read_text(), filename=str(path))
    yield from _imports(tree, lazy=False)


def _imports(node: ast.AST, *, lazy: bool) -> Iterator[tuple[int, str, bool]]:
    for child in ast.iter_child_nodes(node):
        names: list[str] = []
        if isinstance(child, ast.Import):
            names = [alias.name for alias in child.names]
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            names = [child.module]
        for name in names:
            top = name.partition(".")[0]
            if top in PROJECT:
                yield child.lineno, top, lazy
        yield from _imports(child, lazy=lazy or _defers(child))


def _defers(node: ast.AST) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return True
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        name = str(path.relative_to(ROOT))
        allowed = ALLOWED[package] | {package}
        for line, top, lazy in imported_packages(path):
            if top in allowed or (lazy and top in LAZY_ONLY.get(name, ())):
                continue
            found.append(f"{name}:{line} imports {top}")
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_runs_back_up(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_lazy_and_eager_imports(tmp_path: Path) -> None:
    # The walker must see imports inside functions, or the layer test proves nothing.
    module = tmp_path / "lazy.py"
    module.write_text(
        "import core.domain\n"
        "def f():\n    from strategies.base import X\n    import bench.harness\n"
    )
    assert list(imported_packages(module)) == [
        (1, "core", False),
        (3, "strategies", True),
        (4, "bench", True),
    ]
