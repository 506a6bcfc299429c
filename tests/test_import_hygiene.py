"""The headless core never imports the terminal UI libraries, and the packages import each
other in one direction only:

- ``store`` (the file's owner) imports nothing of agenttop but itself;
- ``otlp`` and ``analysis`` may import ``store`` (and ``config``); ``analysis`` never ``otlp``;
- ``tui`` imports ``store``, ``analysis`` and ``config``, never ``otlp``;
- no two parts import each other (a cycle, even under ``TYPE_CHECKING``).

Imports are read from the source with ``ast`` (every ``import`` statement, wherever it
stands), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import agenttop

CORE = ["agenttop.otlp.grpc_server", "agenttop.otlp.http_server", "agenttop.otlp.receiver",
        "agenttop.otlp.decode", "agenttop.store.writer",
        "agenttop.analysis", "agenttop.serve", "agenttop.config",
        "agenttop.analysis.scorecard", "agenttop.otlp.export", "agenttop.otlp.importer",
        "agenttop.analysis.evaluator", "agenttop.analysis.monitor", "agenttop.store.transfer",
        "agenttop.prometheus", "agenttop.options"]

# Part -> the parts it may import. A part is a subpackage or a top-level module.
ALLOWED = {
    "store": {"store"},
    "otlp": {"otlp", "store", "analysis", "config", "agenttop"},
    "analysis": {"analysis", "store", "config"},
    "tui": {"tui", "store", "analysis", "config"},
}
SOURCE = Path(agenttop.__file__).parent


def part_of(path: Path, root: Path) -> str:
    relative = path.relative_to(root)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_parts(path: Path) -> set[str]:
    """The agenttop parts a source file imports (``agenttop`` alone: the package root)."""
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # ``from agenttop import serve`` imports the part serve; ``__version__`` is the
            # package root's.
            names = [node.module] + [f"agenttop.{alias.name}" for alias in node.names
                                     if node.module == "agenttop"
                                     and not alias.name.startswith("__")]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "agenttop":
                parts.add(pieces[1] if len(pieces) > 1 else "agenttop")
    return parts


def import_graph(root: Path) -> dict[str, dict[str, list[str]]]:
    """part -> imported part -> the files (relative to ``root``) that import it."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        here = part_of(path, root)
        for there in imported_parts(path):
            if there != here:
                graph.setdefault(here, {}).setdefault(there, []).append(
                    str(path.relative_to(root)))
    return graph


def violations(root: Path) -> list[str]:
    """Every import against ``ALLOWED``, and every pair of parts importing each other."""
    graph = import_graph(root)
    found = []
    for here, targets in sorted(graph.items()):
        for there, files in sorted(targets.items()):
            if here in ALLOWED and there not in ALLOWED[here]:
                found.append(f"{here} imports {there}: {', '.join(files)}")
            if here < there and here in graph.get(there, {}):
                found.append(f"{here} and {there} import each other: "
                             f"{', '.join(files + graph[there][here])}")
    return found


def test_packages_import_in_one_direction_only():
    assert violations(SOURCE) == []


def test_the_direction_check_catches_a_store_module_importing_otlp(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "otlp").mkdir()
    (tmp_path / "store" / "rows.py").write_text("import json\n")
    (tmp_path / "store" / "bad.py").write_text(
        "def f():\n    from agenttop.otlp.convert import spans_batch\n")
    (tmp_path / "otlp" / "convert.py").write_text("from agenttop.store.rows import Batch\n")
    (tmp_path / "serve.py").write_text("from agenttop import prometheus\n")
    (tmp_path / "prometheus.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agenttop.serve import S\n")
    assert sorted(violations(tmp_path)) == [
        "otlp and store import each other: otlp/convert.py, store/bad.py",
        "prometheus and serve import each other: prometheus.py, serve.py",
        "store imports otlp: store/bad.py",
    ]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_without_textual_or_rich(module):
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in ('textual', 'rich') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
