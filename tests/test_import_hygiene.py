"""The headless core never imports the terminal UI libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = ["agenttop.otlp.grpc_server", "agenttop.otlp.http_server", "agenttop.otlp.receiver",
        "agenttop.otlp.decode", "agenttop.store.writer",
        "agenttop.analysis", "agenttop.serve", "agenttop.config",
        "agenttop.analysis.scorecard", "agenttop.otlp.export", "agenttop.otlp.importer"]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_without_textual_or_rich(module):
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in ('textual', 'rich') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
