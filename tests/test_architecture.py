"""Where the rules live, checked on the source (docs/architecture.md, "Web pages").

Pages and API routes only translate: they parse a form or a query into typed inputs, call a
service with the viewer's ``Principal`` and render what comes back. Queries and access
decisions belong to the services (``kyso.registry``, ``kyso.lifecycle``, ``kyso.audit`` …),
which check the principal themselves, so no entry point can forget a check or answer a
question the services would refuse. These tests read every module with :mod:`ast` (nothing is
imported or run) and name the file and line of each breach.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KYSO = ROOT / "kyso"
WEB = KYSO / "web"

# What kyso/web may still do that belongs in a service, keyed by (file, enclosing function,
# what it does), each with the reason it stays. Keep it short: an entry that no longer matches
# anything fails the test, so the list shrinks as the code is fixed.
ALLOWED: dict[tuple[str, str, str], str] = {}

# Receivers whose .execute/.get/.query/.scalar(s) calls are database calls.
_DB_RECEIVERS = {"session", "conn", "connection", "db"}
_DB_METHODS = {"execute", "get", "query", "scalar", "scalars", "scalar_one", "merge", "delete"}
_ACCESS_CHECKS = {"require", "visible"}


@dataclass(frozen=True)
class Breach:
    path: str
    line: int
    function: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function}(): {self.what}"


def _modules(under: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(under.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        yield relative, ast.parse(path.read_text(encoding="utf-8"), filename=relative)


def _called_name(func: ast.expr) -> str | None:
    """``a`` for a call of ``a(…)`` or ``a.b(…)`` (a chain ``a(…).b(…)`` is reported once,
    at ``a(…)``)."""
    if isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


class _Walker(ast.NodeVisitor):
    """Collects calls with the name of the function they are made in."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.calls: list[tuple[str, ast.Call]] = []

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # A nested function is reported under its outermost function (the route).
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Call(self, node: ast.Call) -> None:
        self.calls.append((self.scope[0] if self.scope else "<module>", node))
        self.generic_visit(node)


def _imported(tree: ast.Module, module_prefix: str) -> dict[str, str]:
    """Local name → dotted origin of every name bound from ``module_prefix`` (or below)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == module_prefix or node.module.startswith(module_prefix + "."):
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif module_prefix.startswith(node.module + "."):
                # ``from kyso.registry import access``: the module itself
                for alias in node.names:
                    if f"{node.module}.{alias.name}" == module_prefix:
                        names[alias.asname or alias.name] = module_prefix
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == module_prefix or alias.name.startswith(module_prefix + "."):
                    names[alias.asname or alias.name.split(".")[0]] = alias.name
    return names


def _query_and_access_breaches(path: str, tree: ast.Module) -> list[Breach]:
    sql_names = _imported(tree, "sqlalchemy")
    access = _imported(tree, "kyso.registry.access")
    checks = {n for n, origin in access.items() if origin.rsplit(".", 1)[-1] in _ACCESS_CHECKS}
    access_modules = {n for n, origin in access.items() if origin == "kyso.registry.access"}
    walker = _Walker()
    walker.visit(tree)
    found = []
    for function, call in walker.calls:
        func = call.func
        what = None
        if isinstance(func, ast.Name) and func.id in checks:
            what = func.id
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in _ACCESS_CHECKS
            and isinstance(func.value, ast.Name)
            and func.value.id in access_modules
        ):
            what = func.attr
        elif isinstance(func, ast.Attribute) and func.attr in ("where", "filter", "filter_by"):
            what = f".{func.attr}"
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in _DB_METHODS
            and isinstance(func.value, ast.Name)
            and func.value.id in _DB_RECEIVERS
        ):
            what = f"{func.value.id}.{func.attr}"
        elif (root := _called_name(func)) in sql_names and not sql_names[root].startswith(
            ("sqlalchemy.exc", "sqlalchemy.orm.exc")
        ):
            what = sql_names[root]  # select(…), func.count(…), update(…), text(…) …
        if what is not None:
            found.append(Breach(path, call.lineno, function, what))
    return sorted(set(found), key=lambda b: (b.line, b.what))


def test_pages_and_api_routes_neither_query_nor_decide_access() -> None:
    """No module under kyso/web builds SQL, calls the session, or calls ``require`` /
    ``visible``: the services do, with the viewer's Principal."""
    breaches = [b for path, tree in _modules(WEB) for b in _query_and_access_breaches(path, tree)]
    unexpected = [b for b in breaches if (b.path, b.function, b.what) not in ALLOWED]
    used = {(b.path, b.function, b.what) for b in breaches}
    stale = [key for key in ALLOWED if key not in used]
    assert not unexpected, "queries or access checks outside the services:\n" + "\n".join(
        map(str, unexpected)
    )
    assert not stale, "allow-list entries that match nothing any more (remove them):\n" + (
        "\n".join(map(str, stale))
    )


def _private_web_imports(path: str, tree: ast.Module) -> list[Breach]:
    found = []
    web_modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kyso.web"):
            for alias in node.names:
                origin = f"{node.module}.{alias.name}"
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(Breach(path, node.lineno, "<import>", f"{origin} is private"))
                elif (ROOT / (origin.replace(".", "/") + ".py")).exists() or (
                    ROOT / origin.replace(".", "/")
                ).is_dir():
                    web_modules.add(alias.asname or alias.name)  # a module of kyso.web
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kyso.web") and alias.asname:
                    web_modules.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in web_modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(
                Breach(path, node.lineno, "<use>", f"{node.value.id}.{node.attr} is private")
            )
    return found


def test_pages_use_no_private_name_of_another_web_module() -> None:
    """A page that needs an API module's helper (``api_documents._may_use_key``) is asking for
    a rule that belongs in a service; a helper pages share is public, in its own module."""
    breaches = [b for path, tree in _modules(WEB / "ui") for b in _private_web_imports(path, tree)]
    assert not breaches, "private names of other kyso.web modules:\n" + "\n".join(
        map(str, breaches)
    )


_HTTP = ("kyso.web", "fastapi", "starlette")


def test_services_do_not_import_the_web_layer() -> None:
    """HTTP lives only in kyso/web (and the CLI's server command): a service that imports it
    could not be called from the CLI or a test without a request."""
    breaches = []
    for path, tree in _modules(KYSO):
        if path.startswith(("kyso/web/", "kyso/cli/")):
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name in _HTTP or name.startswith(tuple(f"{h}." for h in _HTTP)):
                    breaches.append(Breach(path, node.lineno, "<import>", f"imports {name}"))
    assert not breaches, "the web layer imported outside kyso/web:\n" + "\n".join(
        map(str, breaches)
    )


def test_the_checker_sees_what_it_must_refuse() -> None:
    """The checks themselves: each kind of breach in a made-up page is found, at its line."""
    page = ast.parse(
        "from sqlalchemy import func, select\n"
        "from kyso.registry.access import Action, require, visible\n"
        "from kyso.registry import access\n"
        "from kyso.web import api_documents\n"
        "from kyso.web.api_documents import _may_use_key\n"
        "def route(session, principal, q):\n"
        "    require(principal, Action.ORG_READ)\n"
        "    access.require(principal, Action.ORG_READ)\n"
        "    rows = session.execute(select(X).where(visible(principal, X.path)))\n"
        "    one = session.get(X, 1)\n"
        "    n = func.count()\n"
        "    session.query(X)\n"
        "    api_documents._read(q)\n"
        "    return {}.get('a'), q.where\n"
    )
    found = {(b.line, b.what) for b in _query_and_access_breaches("x.py", page)}
    assert found == {
        (7, "require"),
        (8, "require"),
        (9, "session.execute"),
        (9, "sqlalchemy.select"),
        (9, ".where"),
        (9, "visible"),
        (10, "session.get"),
        (11, "sqlalchemy.func"),
        (12, "session.query"),
    }
    private = {(b.line, b.what) for b in _private_web_imports("kyso/web/ui/x.py", page)}
    assert private == {
        (5, "kyso.web.api_documents._may_use_key is private"),
        (13, "api_documents._read is private"),
    }


# -- layers below the services ----------------------------------------------------------------
def _imports_of(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every import, at any depth (functions, TYPE_CHECKING blocks):
    ``from kyso import validation`` counts as ``kyso.validation``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _layer_breaches(package: str, forbidden: str) -> list[str]:
    found: dict[tuple[str, int], str] = {}
    for path, tree in _modules(KYSO / package.removeprefix("kyso.").replace(".", "/")):
        for line, name in _imports_of(tree):
            if name == forbidden or name.startswith(forbidden + "."):
                found.setdefault((path, line), name)
    return [f"{path}:{line}: imports {name}" for (path, line), name in sorted(found.items())]


def test_signing_and_validation_do_not_import_each_other() -> None:
    """kyso.signing makes signatures and kyso.validation judges them; what both need (PDF
    input checks, XML-DSig names and c14n, MIME splitting, pyHanko's coroutines, the trust
    context) lives below them, in kyso.formats, kyso.coroutines and kyso.trust. An import
    across would bring the cycle back."""
    breaches = _layer_breaches("kyso.signing", "kyso.validation")
    breaches += _layer_breaches("kyso.validation", "kyso.signing")
    assert not breaches, "signing and validation import each other:\n" + "\n".join(breaches)


def test_the_layer_checker_sees_every_form_of_import() -> None:
    code = (
        "from typing import TYPE_CHECKING\n"
        "import kyso.validation.pdf\n"
        "from kyso import validation\n"
        "if TYPE_CHECKING:\n"
        "    from kyso.validation.trust import TrustContext\n"
        "def f():\n"
        "    from kyso.validation import cms\n"
        "from kyso.validation_tools import x\n"
    )
    seen = {
        line
        for line, name in _imports_of(ast.parse(code))
        if name == "kyso.validation" or name.startswith("kyso.validation.")
    }
    assert seen == {2, 3, 5, 7}


def test_every_workbook_is_opened_by_the_xlsx_intake() -> None:
    """Uploaded XLSX files are zip archives of XML: only kyso.xlsxsafe, which checks the
    archive first, may hand one to openpyxl's reader."""
    breaches = [
        f"{path}:{node.lineno}"
        for path, tree in _modules(KYSO)
        if path != "kyso/xlsxsafe.py"
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "load_workbook")
        or (isinstance(node, ast.Attribute) and node.attr == "load_workbook")
        or (isinstance(node, ast.alias) and node.name.endswith("load_workbook"))
    ]
    assert not breaches, "openpyxl.load_workbook outside kyso.xlsxsafe:\n" + "\n".join(breaches)
