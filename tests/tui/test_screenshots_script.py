"""``scripts/screenshots.py`` writes one SVG per screen of the app, the trace screen and
a conversation's transcript."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agenttop.tui.app import SCREENS

ROOT = Path(__file__).resolve().parents[2]


def test_script_saves_one_svg_per_screen(tmp_path):
    out = tmp_path / "shots"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "screenshots.py"),
                             "--out", str(out)], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = {f"{mode}.svg" for _, mode, _, _ in SCREENS} | {"trace.svg", "transcript.svg"}
    assert {p.name for p in out.iterdir()} == expected
    for name in expected:
        svg = (out / name).read_text()
        assert svg.startswith("<svg") and "agenttop.db" in svg
    assert "request_latency" in (out / "metrics.svg").read_text()
    assert "1002?" in (out / "transcript.svg").read_text()  # a turn's question
