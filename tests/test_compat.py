"""What real instrumentation libraries send, read right: fixtures recorded by
scripts/record_compat.py (tests/compat/*.json, with the library versions), replayed
through the real receiver, each span checked against what an engineer reading it would
say it is. The expectations are written from the spans, not copied from agenttop's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agenttop.otlp.otlp_json import parse_message
from tests.conftest import read_db
from tests.test_bad_input import TRACES, call

COMPAT = Path(__file__).parent / "compat"

# fixture -> one row per span, in the order the library emitted them:
# (span name, layer, failure, model, provider, input tokens, output tokens, finish reasons)
EXPECTED = {
    "openinference-openai": [
        ("ChatCompletion", "prompt", None, "gpt-4o-mini", "openai", 21, 8, ["stop"]),
        # An embedding call: its model is in embedding.model_name.
        ("CreateEmbeddings", "memory", None, "text-embedding-3-small", "openai", 5, None,
         None),
        # Failed calls carry their model only inside llm.invocation_parameters (JSON).
        ("ChatCompletion", "prompt", "rate_limit", "gpt-4o-mini-ratelimit", "openai", None,
         None, None),
        ("ChatCompletion", "prompt", "server", "gpt-4o-mini-broken", "openai", None, None,
         None),
        ("ChatCompletion", "auth", "auth", "gpt-4o-mini-badkey", "openai", None, None, None),
    ],
    "openlit": [
        ("chat gpt-4o-mini", "prompt", None, "gpt-4o-mini", "openai", 21, 8, ["stop"]),
        ("embeddings text-embedding-3-small", "memory", None, "text-embedding-3-small",
         "openai", 5, None, None),
        # Failed calls carry no attributes: the span's name ("{operation} {model}", the
        # GenAI convention) and its exception say what failed.
        ("chat gpt-4o-mini-ratelimit", "prompt", "rate_limit", "gpt-4o-mini-ratelimit", None,
         None, None, None),
        ("chat gpt-4o-mini-broken", "prompt", "server", "gpt-4o-mini-broken", None, None, None,
         None),
        ("chat gpt-4o-mini-badkey", "auth", "auth", "gpt-4o-mini-badkey", None, None, None,
         None),
    ],
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_recorded_spans_are_read_as_an_engineer_reads_them(fixture, server, db_path):
    recorded = json.loads((COMPAT / f"{fixture}.json").read_text())
    assert recorded["versions"]  # which library versions emitted these shapes
    request = parse_message("traces", recorded["request"])
    call(server, TRACES, request.SerializeToString())
    conn = read_db(db_path)
    rows = conn.execute(
        "SELECT name, layer, failure, genai FROM spans ORDER BY start_ns, rowid").fetchall()
    findings = conn.execute("SELECT pattern, location FROM findings").fetchall()
    conn.close()
    # A local model server's address is nobody's PII.
    assert [tuple(f) for f in findings if f[0] == "ipv4"] == []
    got = []
    for name, layer, failure, genai in rows:
        g = json.loads(genai) if genai else {}
        got.append((name, layer, failure, g.get("model"), g.get("provider"),
                    g.get("input_tokens"), g.get("output_tokens"), g.get("finish_reasons")))
    assert got == EXPECTED[fixture]
