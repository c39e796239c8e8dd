"""The import graph of ``src/deepmetric``: arrows point down the layers of the design, no cycles.

Every import counts, including those inside functions: a lazy import hides an arrow from the
reader, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Higher imports lower; a top-level unit (``deepmetric.<unit>``) may import its own modules.
LAYERS: dict[str, int] = {
    **dict.fromkeys(["_atomic", "_checks", "_threads", "_version", "distances"], 0),
    **dict.fromkeys(["registry", "roc", "search", "tuples"], 1),
    **dict.fromkeys(["data", "evaluation", "losses", "miners", "models", "samplers"], 2),
    **dict.fromkeys(["explain", "index", "sklearn", "training"], 3),
    **dict.fromkeys(["apps", "report", "serve"], 4),
    **dict.fromkeys(["config", "recipes"], 5),
    "runs": 6,
    "tune": 7,  # studies of runs
    **dict.fromkeys(["", "cli"], 8),  # "" is the package itself: only the CLI sits beside it
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The ``deepmetric`` modules that ``path`` imports, resolved to module (not name) level."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "deepmetric"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] != "deepmetric":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (SRC / sub.replace(".", "/")).with_suffix(".py").exists() or (
                    SRC / sub.replace(".", "/")
                ).is_dir()
                found.add(sub if is_module else base)
    return found - {name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted((SRC / "deepmetric").rglob("*.py"))}


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_arrows(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in edges.items():
        for target in sorted(targets):
            a, b = unit(source), unit(target)
            if a != b and LAYERS[b] >= LAYERS[a]:
                bad.append(f"{source} -> {target} (layer {LAYERS[a]} -> {LAYERS[b]})")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], dict.fromkeys(edges, 0)  # 0 new, 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif state.get(nxt) == 0:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in edges:
        if state[node] == 0:
            visit(node, [node])
    return found


def test_every_unit_has_a_layer() -> None:
    assert {unit(m) for m in graph()} <= set(LAYERS)


def test_imports_point_down() -> None:
    assert upward_arrows(graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


@pytest.mark.parametrize(
    ("edges", "upward", "cyclic"),
    [
        ({"deepmetric.losses.a": {"deepmetric.miners.b"}}, 1, 0),  # a sibling at one layer
        ({"deepmetric.models.io": {"deepmetric"}}, 1, 0),  # the package root is on top
        ({"deepmetric.index.x": {"deepmetric.search.faiss"}}, 0, 0),
        ({"deepmetric.roc.a": {"deepmetric.roc.b"}, "deepmetric.roc.b": {"deepmetric.roc.a"}},
         0, 1),
    ],
)  # fmt: skip
def test_the_checks_catch_what_they_must(edges: dict, upward: int, cyclic: int) -> None:
    assert (len(upward_arrows(edges)), len(cycles(edges))) == (upward, cyclic)
