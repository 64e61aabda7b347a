"""The layer rules of DESIGN.md, checked on the import statements of every module (and, for
"one writer per table", on the source text of the edges).

Which package may import which is written once, in ALLOWED; one parametrized test checks
every module of the project against it. The tests after it pin what the table must never
allow and check what it cannot say: third-party libraries, where Settings are built, who
writes a table."""

import ast
import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PassedThrough:
    """Importable only inside ``workflow.unsafe.imports_passed_through()``."""

    name: str


@dataclass(frozen=True)
class Lazily:
    """Importable only inside a function, never when the importing module loads."""

    name: str


PACKAGES = ("activities", "api", "cli", "clients", "db", "domain", "events", "observability",
            "runtime", "services", "tools", "workflows")  # fmt: skip
TOP_MODULES = ("worker", "starter")
CLI = "cli"  # the operator CLI (starter.py) and the demo scenario
TOOLS = "tools"  # bench and chaos: run from the checkout, not installed

# Who may import whom. A room is a package, or a module inside one that is allowed other
# things than its package (the longest name that contains a module is its room). Each room
# names what its modules may import besides their own room: packages ("db") or single
# modules ("runtime.settings"). Whatever is not named is refused.
# fmt: off
ALLOWED: dict[str, set[str | PassedThrough | Lazily]] = {
    "domain": set(),
    "db": {"domain"},
    "observability": {"domain"},
    "services": {"db", "domain", "observability"},
    "activities": {"services", "db", "domain", "observability"},
    "workflows": {"domain", PassedThrough("activities")},
    # events.senders sends to alert sinks through the egress path and the secrets box
    "events": {"services", "db", "domain", "observability", "runtime.settings",
               "activities.skills.egress", "activities.skills.errors", "activities.secret_store"},
    "clients": {"services", "db", "domain"},
    # api.routes.sinks encrypts a sink's secrets with the deployment's box (like the CLI)
    "api": {"clients", "services", "db", "domain", "observability", "runtime.settings",
            "activities.secret_store"},
    "api.__main__": {"api", "db", "observability", "runtime"},  # `python -m api`: a process
    # process plumbing; runtime.claim_check keeps large payloads through their one writer
    "runtime": {"activities", "workflows", "db", "domain", "services.payload_blobs"},
    CLI: {"clients", "services", "db", "domain", "events", "runtime", "observability",
          "activities.secret_store", Lazily(TOOLS)},
    TOOLS: {*PACKAGES},
    "worker": {"activities", "api", "db", "events", "observability", "runtime", "cli.demo"},
    "starter": {CLI, "runtime.process_exit"},
}
# fmt: on


@dataclass(frozen=True)
class Import:
    target: str  # ``import a.b``: a.b; ``from a.b import c``: a.b.c
    passed: bool  # inside imports_passed_through()
    lazy: bool  # inside a function


def imports(path: Path) -> list[Import]:
    """Every absolute import in the file (TYPE_CHECKING ones included)."""
    found: list[Import] = []

    def visit(node: ast.AST, passed: bool, lazy: bool) -> None:
        if isinstance(node, ast.With):
            passed = passed or any(
                "imports_passed_through" in ast.unparse(item.context_expr) for item in node.items
            )
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            lazy = True
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, passed, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend(Import(f"{node.module}.{a.name}", passed, lazy) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, passed, lazy)

    visit(ast.parse(path.read_text()), False, False)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def within(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def product_files() -> list[Path]:
    """worker.py, starter.py and every module of every package (tests excluded)."""
    return [*(ROOT / f"{m}.py" for m in TOP_MODULES), *(p for pkg in PACKAGES for p in files(pkg))]


def cli_files() -> list[Path]:
    return files(CLI.replace(".", "/"))


def label(path: Path) -> str:
    return str(path.relative_to(ROOT))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def named(entry: str | PassedThrough | Lazily) -> str:
    return entry.name if isinstance(entry, PassedThrough | Lazily) else entry


def room_of(module: str) -> str | None:
    rooms = [room for room in ALLOWED if within(module, room)]
    return max(rooms, key=len) if rooms else None


def refusal(room: str, found: Import) -> str | None:
    """Why ``room`` may not make this import, or None if it may."""
    if top(found.target) not in {*PACKAGES, *TOP_MODULES} or room_of(found.target) == room:
        return None
    for entry in ALLOWED[room]:
        if not within(found.target, named(entry)):
            continue
        if isinstance(entry, PassedThrough) and not found.passed:
            return "outside imports_passed_through()"
        if isinstance(entry, Lazily) and not found.lazy:
            return "at module level (only inside a function)"
        return None
    return f"which {room} may not import"


@pytest.mark.parametrize("path", product_files(), ids=label)
def test_every_module_imports_only_what_its_room_may(path):
    room = room_of(module_name(path))
    assert room is not None, f"{label(path)} belongs to no room of ALLOWED"
    for found in imports(path):
        why = refusal(room, found)
        assert why is None, f"{label(path)} imports {found.target}: {why}"


def test_every_package_is_in_the_table():
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert on_disk == set(PACKAGES), on_disk ^ set(PACKAGES)
    assert {top(room) for room in ALLOWED} == {*PACKAGES, *TOP_MODULES}


def _exists(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_the_table_names_modules_that_exist():
    for room, entries in ALLOWED.items():
        assert _exists(room), f"room {room} is no module"
        for entry in entries:
            assert _exists(named(entry)), f"{room} may import {named(entry)}, which is no module"


def _may(room: str, name: str) -> set[str | PassedThrough | Lazily]:
    """The entries of ``room`` that let it import ``name`` or a part of it."""
    return {e for e in ALLOWED[room] if within(name, named(e)) or within(named(e), name)}


EDGES = {"api", "runtime", CLI, TOOLS, "worker", "starter"}


def test_the_table_keeps_the_design_rules():
    """What DESIGN.md forbids stays forbidden, whatever else the table allows."""
    assert ALLOWED["domain"] == set()
    for forbidden in ("db", "runtime", "services", "events", "clients", "api", TOOLS):
        assert not _may("workflows", forbidden), f"workflows may import {forbidden}"
    assert _may("workflows", "activities") == {PassedThrough("activities")}
    for forbidden in ("workflows", "activities"):
        assert not _may("db", forbidden), f"db may import {forbidden}"
    for forbidden in ("activities", "workflows", "events", "clients", *EDGES):
        assert not _may("services", forbidden), f"services may import {forbidden}"
    for forbidden in ("workflows", *EDGES):
        assert not _may("activities", forbidden), f"activities may import {forbidden}"
    for forbidden in (CLI, TOOLS, "worker", "starter"):
        assert not _may("api", forbidden), f"api may import {forbidden}"
    assert not _may(CLI, "api"), "the CLI may import the HTTP API"
    importers_of_tools = {room: _may(room, TOOLS) for room in ALLOWED if room != TOOLS}
    assert {room: e for room, e in importers_of_tools.items() if e} == {CLI: {Lazily(TOOLS)}}


def test_the_installed_product_leaves_the_tools_out():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    installed = {pkg for pkg in PACKAGES if any(fnmatch.fnmatch(pkg, pat) for pat in include)}
    assert installed == set(PACKAGES) - {TOOLS}


@pytest.mark.parametrize("path", files("workflows"), ids=label)
def test_workflows_import_activities_only_passed_through_and_never_db(path):
    """db and runtime are refused by ALLOWED; the libraries of I/O here."""
    for found in imports(path):
        assert top(found.target) not in {"sqlalchemy", "psycopg", "httpx"}, (
            f"{path.name} imports {found.target}"
        )
        if top(found.target) == "activities":
            assert found.passed, f"{path.name} imports {found.target} outside the pass-through"


@pytest.mark.parametrize("path", files("domain"), ids=label)
def test_domain_is_pure(path):
    forbidden = {"sqlalchemy", "httpx", "os", "random", "time", "socket", "subprocess"}
    for found in imports(path):
        assert top(found.target) not in forbidden, f"{path.name} imports {found.target}"


@pytest.mark.parametrize("path", files("services"), ids=label)
def test_services_need_no_temporal_context(path):
    """Services are called by activities, the CLI and the API: synchronous, no Temporal."""
    for found in imports(path):
        assert top(found.target) != "temporalio", f"{label(path)} imports {found.target}"


def test_activities_reach_services():
    """Every activity facade with a write goes through services (no SQL of its own)."""
    for path in files("activities"):
        text = path.read_text()
        if "@activity.defn" in text and "sessions" in text:
            assert any(top(i.target) == "services" for i in imports(path)), label(path)


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
    for found in imports(path):
        assert top(found.target) != "api", f"{label(path)} imports {found.target}"


LEDGER_WRITER = ROOT / "services" / "ledger.py"


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
    for path in product_files():
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
    """Settings() is only built at the edges: worker, `python -m api`, the CLI's context and
    entry point, the migrations' env (tests build their own)."""
    allowed = {"worker.py", "__main__.py", "context.py", "main.py", "env.py"}
    for path in product_files():
        if path.name in allowed:
            continue
        assert "Settings()" not in path.read_text(), f"{label(path)} builds Settings"
