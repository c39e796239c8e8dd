"""The size limits of STYLE.md, enforced: modules, functions and constructors stay small."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "deepmetric"
FILES = sorted(SRC.rglob("*.py"))


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    first = fn.body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    start = first.end_lineno + 1 if has_doc and first.end_lineno else fn.lineno
    return (fn.end_lineno or start) - start + 1


def test_modules_stay_under_400_lines() -> None:
    big = {p.name: n for p in FILES if (n := len(p.read_text().splitlines())) > 400}
    assert not big, f"split these modules by responsibility: {big}"


def test_functions_stay_under_50_lines_and_constructors_under_8_parameters() -> None:
    problems = []
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if _body_lines(node) > 50:
                problems.append(f"{path.name}:{node.name} has {_body_lines(node)} lines")
            params = len(node.args.args) + len(node.args.kwonlyargs) - 1
            if node.name == "__init__" and params > 8:
                problems.append(f"{path.name}:__init__ takes {params} parameters")
    assert not problems, problems
