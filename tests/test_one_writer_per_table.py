"""One writer per table: each table's writes are in one module of services/, and no module
outside services/ writes one. Read from the source: ORM rows built, Core insert/update/
delete of a model (or its table), and rows that are changed or deleted — loaded with
session.get, returned by a function typed to return one, or a parameter typed as one.
Tests' fixtures are not product code and may insert rows directly."""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("activities", "api", "cli", "clients", "events", "observability", "runtime", "services",
           "tools")  # fmt: skip
CORE_WRITES = {"insert", "update", "delete"}
ROW_INSERTS = {"insert_row", "insert_rows"}
LOADS = {"get", "get_one"}


def all_models() -> set[str]:
    from db.models import Base

    return {mapper.class_.__name__ for mapper in Base.registry.mappers}


class Module:
    """What one module calls its models: names imported from db.models, the db.models
    module itself (``from db import models as m``), and aliases (``_RUNS = Run.__table__``,
    ``d = EventDelivery``)."""

    def __init__(self, tree: ast.AST, models: set[str]) -> None:
        self.names: dict[str, str] = {}
        self.modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("db.models"):
                for alias in node.names:
                    if alias.name in models:
                        self.names[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module == "db":
                self.modules |= {a.asname or a.name for a in node.names if a.name == "models"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
                if isinstance(node.value, ast.Tuple) and isinstance(node.targets[0], ast.Tuple):
                    pairs = list(zip(node.targets[0].elts, node.value.elts, strict=False))
                for target, value in pairs:
                    model = self.model_of(value)
                    if isinstance(target, ast.Name) and model:
                        self.names[target.id] = model

    def model_of(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Attribute) and node.attr == "__table__":
            node = node.value
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return node.attr if node.value.id in self.modules else None
        return None


def loaders(tree: ast.AST, models: set[str]) -> dict[str, str]:
    """Functions that return a row (``def tenant_of(...) -> Tenant``): name → model."""
    module = Module(tree, models)
    return {
        node.name: module.model_of(node.returns)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.returns and module.model_of(node.returns)
    }


def written_models(
    tree: ast.AST, models: set[str], row_loaders: dict[str, str] | None = None
) -> set[str]:
    """The models whose rows the module writes (``row_loaders``: functions of the project
    that return a row, as ``loaders`` finds them)."""
    module = Module(tree, models)
    written: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            written |= _core_or_orm_write(node, module)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            written |= _changed_rows(node, module, row_loaders or {})
    return written


def _core_or_orm_write(call: ast.Call, module: Module) -> set[str]:
    func = call.func
    verb = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if module.model_of(func):
        return {module.model_of(func)}  # an ORM row, built to be added or merged
    if verb in ROW_INSERTS:
        args = call.args[1:2]  # insert_row(session, Model, ...)
    elif verb in CORE_WRITES and isinstance(func, ast.Attribute) and module.model_of(func.value):
        args = [func.value]  # Model.__table__.insert()
    elif verb in CORE_WRITES:
        args = call.args[:1]  # insert(Model), update(_TABLE), dialect.insert(Model)
    else:
        return set()
    return {m for m in map(module.model_of, args) if m}


def _loaded(call: ast.AST, module: Module, row_loaders: dict[str, str]) -> str | None:
    """The model of the row ``call`` returns: session.get(M, ...) or a row loader."""
    if not isinstance(call, ast.Call):
        return None
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in LOADS and call.args:
        return module.model_of(call.args[0])
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    return row_loaders.get(name)


def _changed_rows(
    func: ast.FunctionDef | ast.AsyncFunctionDef, module: Module, row_loaders: dict[str, str]
) -> set[str]:
    """Models of rows the function changes or deletes: loaded with session.get(M, ...) or
    a row loader, or handed to it as a parameter annotated with the model."""
    rows: dict[str, str] = {
        arg.arg: module.model_of(arg.annotation)
        for arg in func.args.args
        if arg.annotation is not None and module.model_of(arg.annotation)
    }
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and _loaded(node.value, module, row_loaders):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    rows[target.id] = _loaded(node.value, module, row_loaders)
    changed: set[str] = set()
    for node in ast.walk(func):
        names: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = [p for t in node.targets for p in getattr(t, "elts", [t])]
            names = [t.value for t in targets if isinstance(t, ast.Attribute)]
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Attribute):
            names = [node.target.value]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"delete", "merge"}
        ):
            names = node.args[:1]  # session.delete(row)
        changed |= {rows[n.id] for n in names if isinstance(n, ast.Name) and n.id in rows}
    return changed


def writers() -> dict[str, set[str]]:
    models = all_models()
    by_model: dict[str, set[str]] = defaultdict(set)
    paths = [
        *ROOT.glob("*.py"),
        *(p for pkg in PRODUCT for p in sorted((ROOT / pkg).rglob("*.py"))),
    ]
    trees = {path: ast.parse(path.read_text()) for path in paths}
    row_loaders = {name: m for tree in trees.values() for name, m in loaders(tree, models).items()}
    for path, tree in trees.items():
        for model in written_models(tree, models, row_loaders):
            by_model[model].add(str(path.relative_to(ROOT)))
    return by_model


def test_each_table_has_one_writer_and_it_is_a_service():
    by_model = writers()
    assert len(by_model) >= 25, f"only {sorted(by_model)} found: the detection is broken"
    for model, modules in sorted(by_model.items()):
        assert len(modules) == 1, f"{model} is written by {sorted(modules)}"
        assert next(iter(modules)).startswith("services/"), f"{model}: {modules}"


def test_the_detection_sees_every_kind_of_write():
    source = """
from db.models import Candidate, EventDelivery, Run, StepSlot, Tenant, TenantSecret, Trace
_SLOTS, _TRACES = StepSlot.__table__, Trace.__table__
def f(session):
    session.add(Run(id=1))
    execute_core(session, delete(_SLOTS), {})
    session.execute(_TRACES.update())
    d = EventDelivery
    session.execute(update(d).values(attempts=1))
    tenant = session.get(Tenant, "t")
    tenant.status = "SUSPENDED"
    secret = session.get(TenantSecret, ("t", "n"))
    session.delete(secret)
def mark(session, candidate: Candidate):
    candidate.status = "DEFERRED"
def tenant_of(session, tenant_id) -> Tenant:
    return session.get(Tenant, tenant_id)
def suspend(session):
    tenant = tenant_of(session, "t")
    tenant.status = "SUSPENDED"
"""
    models = {"Candidate", "EventDelivery", "Run", "StepSlot", "Tenant", "TenantSecret", "Trace"}
    tree = ast.parse(source)
    assert loaders(tree, models) == {"tenant_of": "Tenant"}
    assert written_models(tree, models, loaders(tree, models)) == models
    suspend = next(n for n in tree.body if getattr(n, "name", "") == "suspend")
    assert written_models(suspend, models, {"tenant_of": "Tenant"}) == {"Tenant"}  # imported
    reads = """
from db.models import Run, Tenant
from domain.alert_fatigue import Candidate
def g(session):
    tenant = session.get(Tenant, "t")
    return select(Run), tenant.status, Candidate("a", "b", "c")
"""
    assert written_models(ast.parse(reads), models) == set()
