"""The layout stays true: imports only go down the flow, never in a cycle.

Parses every module of `runner/` (no import is executed) and checks that each import of another
runner module goes to the same layer or one below it, that the router imports no backend, and
that the module graph has no cycle. Imports under `if TYPE_CHECKING:` are annotations only.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "runner"

# Lowest first: the flow cli → config → request/estimate → router → execute → backends → store/render,
# read from the bottom up. A module may import its own layer and the layers below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("leaves", ("runner", "runner.errors", "runner.aio", "runner.redact", "runner.options", "runner.tokens",
                "runner.yamlfile", "runner.backends.registry", "runner.backends.errors")),
    ("backends", ("runner.backends",)),
    ("config and inputs", ("runner.config", "runner.documents", "runner.prompts", "runner.store")),
    ("routing", ("runner.request", "runner.pricing", "runner.availability", "runner.router", "runner.estimate",
                 "runner.records")),
    ("execution", ("runner.limits", "runner.dispatch", "runner.meter", "runner.execute", "runner.stats")),
    ("long documents", ("runner.longdoc",)),
    ("session", ("runner.session", "runner.engine")),
    ("commands' cores", ("runner.batch", "runner.compare")),
    ("render", ("runner.render",)),
    ("serve", ("runner.serve",)),
    ("cli", ("runner.cli", "runner.__main__")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child):
            for other in child.orelse:
                yield from _walk_one(other)
            continue
        yield from _walk_one(child)


def _walk_one(node: ast.AST):
    yield node
    yield from _walk(node)


def imports_of(module: str) -> set[str]:
    """The runner modules `module` imports, lazily or not (TYPE_CHECKING blocks aside)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "runner")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "runner":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            out.update(subs or [target])
    return {m for m in out if m in MODULES and m != module}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_imports_only_go_down_the_flow():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in GRAPH.items() for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_the_router_imports_no_backend():
    assert not {t for t in GRAPH["runner.router"] if t.startswith("runner.backends")}


def test_backends_know_nothing_of_routing_pricing_or_storage():
    allowed = {"runner.errors", "runner.redact", "runner.tokens"}
    for m, targets in GRAPH.items():
        if m.startswith("runner.backends"):
            outside = {t for t in targets if not t.startswith("runner.backends") and t not in allowed}
            assert not outside, f"{m} imports {outside}"


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The check itself can fail: a made-up graph with a cycle and an upward import is caught."""
    global GRAPH
    saved = GRAPH
    try:
        GRAPH = {**saved, "runner.config": saved["runner.config"] | {"runner.cli"}}
        try:
            test_imports_only_go_down_the_flow()
        except AssertionError as exc:
            assert "runner.config" in str(exc)
        else:
            raise AssertionError("an upward import went unnoticed")
        GRAPH = {**saved, "runner.tokens": saved["runner.tokens"] | {"runner.router"}}
        try:
            test_no_import_cycles()
        except AssertionError as exc:
            assert "cycle" in str(exc)
        else:
            raise AssertionError("a cycle went unnoticed")
    finally:
        GRAPH = saved
