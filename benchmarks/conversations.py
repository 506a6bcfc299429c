"""Conversations on a big file: the conversations list's first page, and a 200-turn
conversation's transcript read.

Builds a database of ``--spans`` spans (default 1,000,000: 100,000 ten-span traces in
20,000 conversations) through the real decoder and writer, as ``benchmarks/health.py``
does, adds one conversation of 200 turns as the newest, then times (median of runs):

- ``list_conversations``: the first page (200 rows) of the list, most recently active
  first, as the conversations screen reads it;
- ``conversation_turns``: the 200-turn conversation's turns with the spans and events a
  transcript reads.

Prints one JSON line. Targets: list <= 100 ms, 200-turn conversation <= 300 ms.

    python benchmarks/conversations.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

from agent_shapes import trace_spans
from health import NOW, build
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from ui import timed

from agenttop.otlp.decode import decode
from agenttop.store import open_reader, open_writer
from agenttop.store.conversations import conversation_turns, list_conversations
from agenttop.store.db import scalar
from agenttop.store.writer import Writer

TURNS = 200
LONG = "conv-long"


def add_long_conversation(path: Path, seed: int) -> None:
    """200 ten-span turns of one conversation, a second apart, sent a turn a request."""
    rng = random.Random(seed)
    writer = Writer(open_writer(path, synchronous="OFF"))
    for turn in range(TURNS):
        spans = trace_spans(rng, NOW - (TURNS - turn) * 10**9, n=10)
        root = spans[0]
        for kv in root.attributes:
            if kv.key == "gen_ai.conversation.id":
                kv.value.CopyFrom(AnyValue(string_value=LONG))
        request = ExportTraceServiceRequest()
        resource = request.resource_spans.add()
        resource.resource.attributes.append(
            KeyValue(key="service.name", value=AnyValue(string_value="support-agent")))
        resource.scope_spans.add().spans.extend(spans)
        writer._write([decode("traces", request.SerializeToString(), NOW)])
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conversations.db"
        built = build(path, args.spans, 0, args.seed, max(1, (os.cpu_count() or 2) - 1))
        add_long_conversation(path, args.seed)
        conn = open_reader(path)
        try:
            conversations = scalar(conn, "SELECT count(*) FROM conversations")
            first_page = timed(lambda: list_conversations(conn, limit=200), args.runs)
            turns = conversation_turns(conn, LONG)
            assert len(turns) == TURNS, len(turns)
            long_ms = timed(lambda: conversation_turns(conn, LONG), args.runs)
        finally:
            conn.close()
    print(json.dumps({
        "benchmark": "conversations", "spans": built["spans"], "conversations": conversations,
        "build_s": built["build_s"], "db_mb": built["db_mb"],
        "list_first_page_ms": first_page, "list_target_ms": 100,
        "turns": TURNS, "conversation_open_ms": long_ms, "open_target_ms": 300,
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
