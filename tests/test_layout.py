"""The package reads like its data flow: no import circles, layers import only downwards,
commands stay thin."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "wsi_ihc"

#: Lower layers never import higher ones (inside functions neither).
LAYERS = [
    {"errors", "logs", "io"},
    {"model", "synth", "stains", "restain"},
    {"infer"},
    {"evaluate"},
    {"train", "batch", "doctor"},
    {"cli", "__main__"},
]
CLI_MAX_LINES = 200


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """Every wsi_ihc module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wsi_ihc"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("wsi_ihc"))
    return found - {"wsi_ihc"}  # the version string


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def layer(module: str) -> int:
    top = module.split(".")[1]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_no_import_circles():
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])  # on the path: a circle
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_layers_import_downwards():
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if module != "wsi_ihc" and layer(target) > layer(module)
    ]
    assert not upward, "upward imports: " + ", ".join(sorted(upward))


def test_every_module_sits_in_a_layer():
    for module in modules():
        if module != "wsi_ihc":
            layer(module)  # StopIteration names a module no layer holds


def test_commands_are_thin():
    long = {
        path.name: n
        for path in (PACKAGE / "cli").glob("*.py")
        if (n := len(path.read_text().splitlines())) > CLI_MAX_LINES
    }
    assert not long, f"cli modules over {CLI_MAX_LINES} lines: {long}"


def test_every_package_opens_with_a_map():
    bare = [
        module_name(init)
        for init in PACKAGE.rglob("__init__.py")
        if not ast.get_docstring(ast.parse(init.read_text()))
    ]
    assert not bare, f"packages without a module map in __init__: {bare}"
