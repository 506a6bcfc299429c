"""Trace diff: two runs of one agent that differ by an extra tool call, a retry, a slower
model call and a changed answer, stored through the real writer, compared on the command
line (text and JSON); the trace list's ``m`` / ``d``: tests/tui/test_diff_screen.py."""

from __future__ import annotations

import json

from click.testing import CliRunner

from agenttop.cli import main
from tests.tui.fixtures import CLIENT, hex_trace, span, traces_request, write


def chat(trace: str, key: str, at: float, ms: float, answer: str | None, *,
         rate_limited: bool = False):
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
             "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 200,
             "gen_ai.usage.output_tokens": 20}
    if answer is not None:
        attrs["gen_ai.output.messages"] = json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}])
    if rate_limited:
        attrs["error.type"] = "RateLimitError"
    return span(trace, "chat gpt-4o", key=key, parent="root", start_ms=at, duration_ms=ms,
                kind=CLIENT, attributes=attrs,
                error="429 Too Many Requests" if rate_limited else None)


def tool(trace: str, name: str, at: float):
    return span(trace, f"execute_tool {name}", key=name, parent="root", start_ms=at,
                duration_ms=50, attributes={"gen_ai.operation.name": "execute_tool",
                                            "gen_ai.tool.name": name})


def root(trace: str, ms: float):
    return span(trace, "invoke_agent support", key="root", duration_ms=ms,
                attributes={"gen_ai.operation.name": "invoke_agent",
                            "gen_ai.agent.name": "support"})


def build(db) -> None:
    before = [root("before", 1000), chat("before", "c1", 10, 600,
                                         "Your order shipped.\nIt arrives Friday."),
              tool("before", "lookup_order", 700)]
    after = [root("after", 2500),
             chat("after", "c0", 10, 80, None, rate_limited=True),  # then retried
             chat("after", "c1", 200, 1400, "Your order is delayed.\nIt arrives Friday."),
             tool("after", "lookup_order", 1700), tool("after", "refund_order", 1800)]
    write(db, ("traces", traces_request([("support-agent", before + after)])))


def run(db, *args: str):
    return CliRunner().invoke(main, ["diff", "--db", str(db), *args])


def test_diff_names_each_difference(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    result = run(db, hex_trace("before")[:10], hex_trace("after"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"diff {hex_trace('before')[:8]} (A) → {hex_trace('after')[:8]} (B)"
    assert "spans 3 → 5 (+2)" in lines[1] and "failures 0 → 1 (+1)" in lines[1]
    assert lines[2] == ("  tool calls changed: lookup_order → lookup_order, refund_order")
    assert lines[4:] == [
        "= invoke_agent support  1.00 s → 2.50 s (+1.50 s)",
        "+   chat gpt-4o  [only in B: 80 ms, failed]",  # the rate-limited first attempt
        "=   chat gpt-4o  600 ms → 1.40 s (+800 ms)",  # its retry: slower, a new answer
        "      │ - Your order shipped.",
        "      │ + Your order is delayed.",  # "It arrives Friday." is the same: left out
        "=   execute_tool lookup_order  50 ms → 50 ms",
        "+   execute_tool refund_order  [only in B: 50 ms]",  # the extra tool call
    ]


def test_diff_as_json_and_bad_ids(tmp_path):
    db = tmp_path / "a.db"
    build(db)
    result = run(db, hex_trace("before"), hex_trace("after"), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tool_calls"] == {"a": ["lookup_order"],
                                    "b": ["lookup_order", "refund_order"], "changed": True}
    sides = [(s["depth"], s["side"], s["key"][2]) for s in report["spans"]]
    assert sides == [(0, "both", "support"), (1, "b", "gpt-4o"), (1, "both", "gpt-4o"),
                     (1, "both", "lookup_order"), (1, "b", "refund_order")]
    slower = report["spans"][2]
    assert (slower["a"]["duration_ns"], slower["b"]["duration_ns"]) == (600 * 10**6,
                                                                        1400 * 10**6)
    assert slower["output_diff"] == ["- Your order shipped.", "+ Your order is delayed."]
    assert report["totals"]["failures"] == {"a": 0, "b": 1}
    missing = run(db, "ffff", hex_trace("after"))
    assert missing.exit_code == 1 and "no trace 'ffff'" in missing.stderr

