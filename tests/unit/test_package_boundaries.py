"""The embedded local AWS (`incremental_analytics_local`) and the operator CLI (`incremental_analytics_cli`) are two
packages: the CLI uses only the engine's public names (its package root's `__all__`), the engine never imports the
CLI, and the Lambda runtime package imports neither."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import incremental_analytics_local
from tests.conftest import ROOT

ENGINE, CLI, RUNTIME = "incremental_analytics_local", "incremental_analytics_cli", "incremental_analytics"


def _imports(package: Path) -> Iterator[tuple[str, str, list[str]]]:
    """(file, module imported, names imported) for every import in a package's files."""
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                yield path.name, node.module, [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                yield from ((path.name, alias.name, []) for alias in node.names)


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _reaching_inside_the_engine(package: Path) -> list[tuple[str, str, list[str]]]:
    public = set(incremental_analytics_local.__all__)
    return [
        (name, module, names)
        for name, module, names in _imports(package)
        if _top(module) == ENGINE and (module != ENGINE or not set(names) <= public)
    ]


def test_the_cli_uses_only_the_engines_public_names() -> None:
    assert _reaching_inside_the_engine(ROOT / "local" / CLI) == []
    assert all(hasattr(incremental_analytics_local, name) for name in incremental_analytics_local.__all__)


def test_the_engine_never_imports_the_cli_and_the_runtime_neither() -> None:
    engine = [(f, m) for f, m, _ in _imports(ROOT / "local" / ENGINE) if _top(m) == CLI]
    runtime = [
        (f, m)
        for folder in (ROOT / "functions" / RUNTIME).rglob("")
        for f, m, _ in _imports(folder)
        if _top(m) in {ENGINE, CLI}
    ]
    assert engine == [] and runtime == []


def test_a_reach_inside_the_engine_is_found(tmp_path: Path) -> None:
    (tmp_path / "leak.py").write_text(
        "from incremental_analytics_local import LocalAws, glue\nfrom incremental_analytics_local.pipes import x\n"
    )
    assert _reaching_inside_the_engine(tmp_path) == [
        ("leak.py", ENGINE, ["LocalAws", "glue"]),
        ("leak.py", "incremental_analytics_local.pipes", ["x"]),
    ]
