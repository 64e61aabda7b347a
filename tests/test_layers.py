"""The layer rules of DESIGN.md, checked on the import statements of every module (and, for
"one writer per table", on the source text of the edges)."""

import ast
import re
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


def cli_files() -> list[Path]:
    """The operator CLI's modules (runtime/cli, or a top-level cli package)."""
    return [*files("runtime/cli"), *files("cli")]


def label(path: Path) -> str:
    return str(path.relative_to(ROOT))


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


@pytest.mark.parametrize("path", files("services"), ids=label)
def test_services_import_no_layer_above_them(path):
    """Services are called by activities, the CLI and the API; they import domain, db and
    observability, never their callers, and need no Temporal context."""
    forbidden = {"activities", "workflows", "api", "runtime", "cli", "events", "tools",
                 "temporalio", "worker", "starter"}  # fmt: skip
    for module, _ in imports(path):
        assert top(module) not in forbidden, f"{label(path)} imports {module}"


@pytest.mark.parametrize("path", files("activities"), ids=label)
def test_activities_wrap_services_and_never_the_edges(path):
    """Activities call services (and read domain and db); never the HTTP API or the CLI."""
    forbidden = {"api", "runtime", "cli", "tools", "worker", "starter"}
    for module, _ in imports(path):
        assert top(module) not in forbidden, f"{label(path)} imports {module}"


def test_activities_reach_services():
    """Every activity facade with a write goes through services (no SQL of its own)."""
    for path in files("activities"):
        text = path.read_text()
        if "@activity.defn" in text and "sessions" in text:
            assert any(top(m) == "services" for m, _ in imports(path)), label(path)


# A table write in source text: the ORM unit of work, Core insert/update/delete, a merge, a
# transaction of one's own. Only services (and tests' fixtures) write tables.
TABLE_WRITES = re.compile(
    r"session\.add\(|session\.add_all\(|session\.delete\(|\.merge\(|\.insert\(|"
    r"(?<![\w.])(insert|update|delete)\(|sessions\.begin\(\)|\.begin_nested\("
)


@pytest.mark.parametrize("path", [*files("api"), *cli_files()], ids=label)
def test_api_and_cli_never_write_a_table(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        found = TABLE_WRITES.search(line)
        assert found is None, f"{label(path)}:{number} writes a table: {line.strip()}"


@pytest.mark.parametrize("path", cli_files(), ids=label)
def test_cli_never_imports_the_http_api(path):
    for module, _ in imports(path):
        assert top(module) != "api", f"{label(path)} imports {module}"


LEDGER_WRITER = ROOT / "services" / "ledger.py"
PRODUCT_PACKAGES = ("activities", "api", "cli", "db", "domain", "events", "observability",
                    "runtime", "services", "tools", "workflows")  # fmt: skip


def _names_model(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "AuditLedgerEntry") or (
        isinstance(node, ast.Attribute) and node.attr == "AuditLedgerEntry"
    )


INSERTS = {"insert", "insert_row", "insert_rows", "bulk_insert_mappings", "bulk_save_objects"}


def _writes_ledger_entry(node: ast.AST) -> bool:
    """A call of the model, a use of its table, or an insert handed the model
    (insert(M), insert_row(session, M, ...))."""
    if isinstance(node, ast.Attribute) and node.attr == "__table__":
        return _names_model(node.value)
    if not isinstance(node, ast.Call):
        return False
    func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    handed = func in INSERTS and any(_names_model(arg) for arg in node.args)
    return _names_model(node.func) or handed


def _ledger_entry_writes(tree: ast.AST) -> list[int]:
    return [node.lineno for node in ast.walk(tree) if _writes_ledger_entry(node)]


def test_only_the_ledger_service_writes_audit_ledger_entries():
    """One writer of the audit ledger: services.ledger.audit_entry (its ids derived from the
    entry's key); every other module reads it at most."""
    product = [*ROOT.glob("*.py"), *(p for package in PRODUCT_PACKAGES for p in files(package))]
    for path in product:
        if path == LEDGER_WRITER or "migrations" in path.parts:
            continue
        text = path.read_text()
        assert not _ledger_entry_writes(ast.parse(text)), f"{label(path)} writes the ledger"
        assert "INSERT INTO audit_ledger" not in " ".join(text.split()), label(path)
    writers = [
        node.name
        for node in ast.walk(ast.parse(LEDGER_WRITER.read_text()))
        if isinstance(node, ast.FunctionDef) and _ledger_entry_writes(node)
    ]
    assert writers == ["audit_entry"], writers


def test_no_settings_at_import_time():
    """Settings() is only built at the edges: worker, starter, CLI context, tests."""
    allowed = {"worker.py", "context.py", "main.py", "env.py"}
    for path in [*ROOT.glob("*.py"), *files("runtime"), *files("activities"), *files("db"),
                 *files("services"), *files("workflows"), *files("domain")]:  # fmt: skip
        if path.name in allowed:
            continue
        assert "Settings()" not in path.read_text(), f"{path} builds Settings"
