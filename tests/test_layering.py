"""The package's structure rules, checked on its source (the restructure brief's "Layout to reach").

* The core (everything under ``ds_magic/`` but ``ds_magic/jupyter/``) never imports IPython, ipykernel,
  ipywidgets, anywidget or traitlets, nor the notebook layer, not even lazily inside a function or
  under ``if TYPE_CHECKING``. The one door is ``ds_magic/__init__.py``: its two extension entry points
  delegate to ``ds_magic.jupyter``, and ``Chat`` is exported through the ``_LAZY`` table (a string,
  resolved at attribute access).
* Importing any core module leaves none of those packages in ``sys.modules`` (transitive imports).
* No import circles among ds_magic modules, imports inside functions included (``if TYPE_CHECKING``
  blocks never run, so they are not edges).
* No module is over 400 lines.
* A name with a leading underscore is used only inside its own module, and a module that another
  module imports has no leading underscore.

Each rule is one test with one assertion that lists every offender, with file:line.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "ds_magic"
JUPYTER = "ds_magic.jupyter"
FORBIDDEN = ("IPython", "ipykernel", "ipywidgets", "anywidget", "traitlets")
MAX_LINES = 400
#: The only functions of ds_magic/__init__.py that may import the notebook layer.
ENTRY_POINTS = ("load_ipython_extension", "unload_ipython_extension")


# ------------------------------------------------------------------------------ source model


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_files() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def is_core(name: str) -> bool:
    return name != JUPYTER and not name.startswith(JUPYTER + ".")


MODULES = {module_name(p): p for p in all_files()}
PACKAGES = {module_name(p) for p in all_files() if p.name == "__init__.py"}


def is_module(name: str) -> bool:
    return name in MODULES


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def rel(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


@dataclass(frozen=True)
class Import:
    """One import the source makes: the module it loads and, for ``from m import n``, the names."""

    module: str  # absolute dotted name
    names: tuple[str, ...]  # imported names (from-imports); () for `import m` and import_module()
    line: int
    in_type_checking: bool
    function: str | None  # the enclosing top-level function, or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(importer: str, level: int, module: str | None) -> str:
    """The absolute module of a (possibly relative) from-import made in module ``importer``."""
    if level == 0:
        return module or ""
    package = importer if importer in PACKAGES else importer.rpartition(".")[0]
    base = package.split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _literal_import(node: ast.Call, importer: str) -> str | None:
    """``importlib.import_module("x")`` / ``import_module(".x", __name__)`` / ``__import__("x")`` with
    a literal name: the absolute module, else None (a computed name is invisible here)."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    target = first.value
    if name == "import_module" and target.startswith("."):
        level = len(target) - len(target.lstrip("."))
        return _resolve(importer, level, target.lstrip(".") or None)
    return target


def imports_of(path: Path) -> Iterator[Import]:
    """Every import in the file, wherever it is (module level, functions, classes, TYPE_CHECKING)."""
    importer = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

    def visit(node: ast.AST, in_tc: bool, function: str | None) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, (), node.lineno, in_tc, function)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(importer, node.level, node.module)
            yield Import(target, tuple(a.name for a in node.names), node.lineno, in_tc, function)
        elif isinstance(node, ast.Call):
            target = _literal_import(node, importer)
            if target is not None:
                yield Import(target, (), node.lineno, in_tc, function)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True, function)
            for child in node.orelse:
                yield from visit(child, in_tc, function)
            return
        for child in ast.iter_child_nodes(node):
            fn = function
            if function is None and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = child.name if node is tree else None
            yield from visit(child, in_tc, fn)

    yield from visit(tree, False, None)


def targets(imp: Import) -> list[str]:
    """The ds_magic-or-other modules an import loads: ``from .a import b`` loads a, and a.b when b is
    a submodule; ``from . import x`` loads x when x is a submodule (else the package itself)."""
    if not imp.names:
        return [imp.module]
    subs = [f"{imp.module}.{n}" for n in imp.names if is_module(f"{imp.module}.{n}")]
    plain = [n for n in imp.names if not is_module(f"{imp.module}.{n}")]
    return ([imp.module] if plain or imp.module not in PACKAGES else []) + subs


def _in(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


# ------------------------------------------------------------------------------ layering


def test_core_never_imports_the_notebook_stack():
    offenders = []
    for name, path in MODULES.items():
        if not is_core(name):
            continue
        for imp in imports_of(path):
            for target in targets(imp):
                bad = next((r for r in FORBIDDEN if _in(target, r)), None)
                if bad is None and _in(target, JUPYTER):
                    allowed = name == "ds_magic" and imp.function in ENTRY_POINTS and not imp.in_type_checking
                    bad = None if allowed else JUPYTER
                if bad is not None:
                    where = " (under TYPE_CHECKING)" if imp.in_type_checking else ""
                    where += f" (in {imp.function}())" if imp.function else ""
                    offenders.append(f"{rel(path, imp.line)}: imports {target}{where}")
    assert not offenders, (
        "core modules must not import "
        + ", ".join((*FORBIDDEN, JUPYTER))
        + " (ds_magic/__init__.py only inside "
        + " / ".join(ENTRY_POINTS)
        + "):\n  "
        + "\n  ".join(offenders)
    )


CORE_IMPORTABLE = sorted(n for n in MODULES if is_core(n) and not n.endswith(".__main__"))

_PROBE = """
import importlib, json, sys
forbidden = {forbidden!r}
seen, out = set(), {{}}
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except Exception as exc:
        out[name] = ["import failed: %s: %s" % (type(exc).__name__, exc)]
        continue
    loaded = {{m.partition(".")[0] for m in sys.modules}} & set(forbidden)
    jupyter = sorted(m for m in sys.modules if m == "ds_magic.jupyter" or m.startswith("ds_magic.jupyter."))
    new = sorted((loaded | set(jupyter)) - seen)
    if new:
        out[name] = new
        seen.update(new)
print(json.dumps(out))
"""


def test_importing_core_modules_loads_no_notebook_package():
    """One fresh interpreter imports every core module in turn; a forbidden package that shows up in
    ``sys.modules`` is charged to the module whose import brought it in first."""
    code = _PROBE.format(forbidden=FORBIDDEN, modules=CORE_IMPORTABLE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    offenders = [f"import {mod} -> {', '.join(pkgs)}" for mod, pkgs in found.items()]
    assert not offenders, "importing core modules loaded notebook packages:\n  " + "\n  ".join(offenders)


# ------------------------------------------------------------------------------ import circles


def import_graph() -> dict[str, dict[str, str]]:
    """module -> {imported ds_magic module: "file:line" of the first such import}; imports under
    ``if TYPE_CHECKING`` never run and are left out, imports inside functions count."""
    graph: dict[str, dict[str, str]] = {name: {} for name in MODULES}
    for name, path in MODULES.items():
        for imp in imports_of(path):
            if imp.in_type_checking:
                continue
            for target in targets(imp):
                if target != name and is_module(target):
                    graph[name].setdefault(target, rel(path, imp.line))
    return graph


def strongly_connected(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def simple_cycles(graph: dict[str, dict[str, str]], comp: list[str], limit: int = 50) -> list[list[str]]:
    """The elementary cycles inside one component, each starting at its smallest module."""
    members = set(comp)
    found: list[list[str]] = []
    for start in comp:
        path = [start]

        def dfs(node: str, start: str = start, path: list[str] = path) -> None:
            for nxt in sorted(graph[node]):
                if len(found) >= limit or nxt not in members or nxt < start:
                    continue
                if nxt == start:
                    found.append([*path, start])
                elif nxt not in path:
                    path.append(nxt)
                    dfs(nxt)
                    path.pop()

        dfs(start)
    return found


def test_no_import_circles():
    graph = import_graph()
    report = []
    for comp in strongly_connected(graph):
        report.append("circle among " + ", ".join(comp) + ":")
        for cycle in simple_cycles(graph, comp):
            report.append("    " + " -> ".join(cycle))
            for a, b in zip(cycle, cycle[1:], strict=False):
                report.append(f"        {graph[a][b]}: {a} imports {b}")
    assert not report, "import circles (imports inside functions included):\n  " + "\n  ".join(report)


# ------------------------------------------------------------------------------ size


def test_no_module_over_400_lines():
    offenders = []
    for path in all_files():
        n = len(path.read_bytes().splitlines())
        if n > MAX_LINES:
            offenders.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not offenders, f"modules over {MAX_LINES} lines:\n  " + "\n  ".join(offenders)


# ------------------------------------------------------------------------------ private names


def _module_aliases(path: Path) -> dict[str, str]:
    """Local names bound to ds_magic modules anywhere in the file: ``import ds_magic.x as m``,
    ``import ds_magic`` (binds ds_magic), ``from . import x`` / ``from .. import records``."""
    aliases: dict[str, str] = {}
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    importer = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if _in(a.name, "ds_magic"):
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        aliases[a.name.partition(".")[0]] = a.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(importer, node.level, node.module)
            for a in node.names:
                if is_module(f"{base}.{a.name}"):
                    aliases[a.asname or a.name] = f"{base}.{a.name}"
    return aliases


def _dotted(node: ast.expr) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def test_no_module_uses_another_modules_private_names():
    offenders = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        aliases = _module_aliases(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(name, node.level, node.module)
                if not _in(base, "ds_magic"):
                    continue
                for a in node.names:
                    if is_private(a.name) and not is_module(f"{base}.{a.name}") and base != name:
                        offenders.append(f"{rel(path, node.lineno)}: from {base} import {a.name}")
            elif isinstance(node, ast.Attribute):
                chain = _dotted(node)
                if chain is None or chain[0] not in aliases:
                    continue
                # Walk the chain while it names modules: ds_magic.records._records, m._x.
                mod = aliases[chain[0]]
                for attr in chain[1:]:
                    if is_module(f"{mod}.{attr}"):
                        mod = f"{mod}.{attr}"
                        continue
                    if is_private(attr) and mod != name:
                        offenders.append(f"{rel(path, node.lineno)}: {'.'.join(chain)} ({mod}.{attr})")
                    break
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in aliases
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and is_private(node.args[1].value)
                and aliases[node.args[0].id] != name
            ):
                offenders.append(
                    f"{rel(path, node.lineno)}: {node.func.id}({node.args[0].id}, {node.args[1].value!r})"
                )
    offenders = sorted(set(offenders))
    assert not offenders, "private names used outside their own module:\n  " + "\n  ".join(offenders)


def test_no_module_imports_a_private_module():
    """A module another module imports has no leading underscore (what it offers is public API)."""
    offenders = []
    for name, path in MODULES.items():
        for imp in imports_of(path):
            for target in targets(imp):
                if not (is_module(target) and _in(target, "ds_magic")):
                    continue
                private = [p for p in target.split(".") if is_private(p)]
                if private and target != name:
                    offenders.append(f"{rel(path, imp.line)}: imports {target}")
    assert not offenders, "private modules imported by other modules:\n  " + "\n  ".join(sorted(offenders))


#: Underscore names that are public by protocol: namedtuple's API and the display hooks
#: (``_repr_mimebundle_``, ``_ipython_display_``), which end with an underscore too.
_PROTOCOL = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})


def _owned_names(tree: ast.AST) -> set[str]:
    """Names a module defines: functions, classes, assigned names and attributes, ``__slots__``."""
    owned: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            owned.add(n.name)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            owned.add(n.attr)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            owned.add(n.id)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("_"):
            owned.add(n.value)  # __slots__ entries
    return owned


def test_no_module_touches_private_attributes_of_another_modules_objects():
    """``resp._finish(...)`` outside response.py: a private attribute that the module doing the access
    never defines belongs to some other module's class (here: use ``ResponseWriter``). A heuristic on
    names: an attribute the accessing module also defines somewhere is not reported."""
    offenders = []
    for path in all_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        owned = _owned_names(tree)
        for n in ast.walk(tree):
            if not (isinstance(n, ast.Attribute) and is_private(n.attr)):
                continue
            if n.attr in owned or n.attr in _PROTOCOL or n.attr.endswith("_"):
                continue
            offenders.append(f"{rel(path, n.lineno)}: {ast.unparse(n.value)}.{n.attr}")
    assert not offenders, "private attributes of other modules' objects used:\n  " + "\n  ".join(
        sorted(offenders)
    )
