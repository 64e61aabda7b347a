"""The layer rules of DESIGN.md, checked on the import statements of every module."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside imports_passed_through) for every import in the file."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, passed: bool) -> None:
        if isinstance(node, ast.With):
            passed = passed or any(
                "imports_passed_through" in ast.unparse(item.context_expr) for item in node.items
            )
        if isinstance(node, ast.Import):
            found.extend((alias.name, passed) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, passed))
        for child in ast.iter_child_nodes(node):
            visit(child, passed)

    visit(tree, False)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", files("workflows"), ids=lambda p: p.name)
def test_workflows_import_activities_only_passed_through_and_never_db(path):
    for module, passed in imports(path):
        assert top(module) not in {"db", "sqlalchemy", "psycopg", "httpx", "runtime"}, (
            f"{path.name} imports {module}"
        )
        if top(module) == "activities":
            assert passed, f"{path.name} imports {module} outside imports_passed_through()"


@pytest.mark.parametrize("path", files("db"), ids=lambda p: p.name)
def test_db_imports_neither_workflows_nor_activities(path):
    for module, _ in imports(path):
        assert top(module) not in {"workflows", "activities"}, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", files("domain"), ids=lambda p: p.name)
def test_domain_is_pure(path):
    forbidden = {"db", "activities", "workflows", "runtime", "sqlalchemy", "httpx", "os",
                 "random", "time", "socket", "subprocess"}  # fmt: skip
    for module, _ in imports(path):
        assert top(module) not in forbidden, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", files("activities"), ids=lambda p: p.name)
def test_activities_do_not_import_workflows(path):
    for module, _ in imports(path):
        assert top(module) != "workflows", f"{path.name} imports {module}"


def test_no_settings_at_import_time():
    """Settings() is only built at the edges: worker, starter, CLI context, tests."""
    allowed = {"worker.py", "context.py", "main.py", "env.py"}
    for path in [*ROOT.glob("*.py"), *files("runtime"), *files("activities"), *files("db"),
                 *files("workflows"), *files("domain")]:  # fmt: skip
        if path.name in allowed:
            continue
        assert "Settings()" not in path.read_text(), f"{path} builds Settings"
