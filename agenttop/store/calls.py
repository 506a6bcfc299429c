"""Agents, tools and models: who calls what, counted per minute by the writer, and every read
the agents screen makes.

A *call* is an agent run, a tool call or a model call. Its *caller* is the agent of its
parent: the nearest ancestor span that names an agent (``genai.agent``), or '' when none
does. A span naming an agent its parent is not already in is a run of that agent (so a
LangGraph node, whose agent name sits on every span inside it, is one run, not one per
span). A model or tool span inside an agent is that agent's call.

Children usually arrive before their parents (a span is exported when it ends). A call
whose ancestors are not all stored yet is counted under '' and kept in ``pending_calls``;
each later transaction touching its trace walks up again, and once the chain is complete
the call moves to its agent (minus under the provisional caller, plus under the real one).
Calls still pending after an hour stay where they are: a parent that never came.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import apsw

from agenttop.store.db import scalar
from agenttop.store.rollups import FAILURE_COLUMNS, TOKEN_KINDS, add_excluded
from agenttop.store.rows import FAILURES, MINUTE_NS

KINDS = ("agent", "tool", "model")
PENDING_NS = 3600 * 10**9  # how long a call waits for its ancestors
MAX_DEPTH = 64  # ancestors walked at most (a parent cycle ends there)
_SUMMED = ("calls", "failures", *FAILURE_COLUMNS, "input_tokens", "output_tokens",
           "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd",
           "priced", "unpriced", "ttft_sum_s", "ttft_count")

# The candidates: the calls stored after the mark, and the pending calls of the touched
# traces, with what their rows need read once (a span's row is big: its attributes).
_CANDIDATES = f"""
CREATE TEMP TABLE IF NOT EXISTS call_spans (
    trace_id TEXT, span_id TEXT, parent TEXT, pending INTEGER, minute INTEGER, own TEXT,
    model TEXT, provider TEXT, tool TEXT, failure TEXT, duration_ns INTEGER,
    input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,
    cache_write_tokens INTEGER, reasoning_tokens INTEGER, cost_usd REAL, unpriced INTEGER,
    ttft_s REAL);
DELETE FROM temp.call_spans;
INSERT INTO temp.call_spans
WITH c AS (
    SELECT s.*, 0 AS pending FROM spans AS s WHERE rowid > :mark
    UNION ALL
    SELECT s.*, 1 FROM pending_calls AS p JOIN spans AS s USING (trace_id, span_id)
    WHERE p.trace_id IN (SELECT value FROM json_each(:ids)) AND s.rowid <= :mark
)
SELECT trace_id, span_id, parent_span_id, pending, start_ns / {MINUTE_NS},
       genai ->> '$.agent', genai ->> '$.model', coalesce(genai ->> '$.provider', ''),
       iif(layer = 'tool', coalesce(genai ->> '$.tool', name), NULL), failure, duration_ns,
       coalesce(input_tokens, 0), coalesce(output_tokens, 0),
       coalesce(genai ->> '$.cache_read_tokens', 0),
       coalesce(genai ->> '$.cache_write_tokens', 0),
       coalesce(genai ->> '$.reasoning_tokens', 0), cost_usd,
       genai ->> '$.unpriced' IS NOT NULL, genai ->> '$.ttft_s'
FROM c
WHERE genai ->> '$.agent' IS NOT NULL OR genai ->> '$.model' IS NOT NULL OR layer = 'tool';
"""
# Each candidate's parent agent: walk up from its parent to the first span naming an
# agent ('found'), the root ('root': no agent), or a parent not stored yet ('missing').
_RESOLVE = f"""
CREATE TEMP TABLE IF NOT EXISTS call_resolved (id INTEGER, state TEXT, agent TEXT);
DELETE FROM temp.call_resolved;
INSERT INTO temp.call_resolved
WITH RECURSIVE up (id, trace_id, next, agent, state, depth) AS (
    SELECT rowid, trace_id, parent, NULL, iif(parent IS NULL, 'root', 'walk'), 0
    FROM temp.call_spans
    UNION ALL
    SELECT u.id, u.trace_id, p.parent_span_id, p.genai ->> '$.agent',
           CASE WHEN p.span_id IS NULL THEN 'missing'
                WHEN p.genai ->> '$.agent' IS NOT NULL THEN 'found'
                WHEN p.parent_span_id IS NULL OR u.depth >= {MAX_DEPTH} THEN 'root'
                ELSE 'walk' END,
           u.depth + 1
    FROM up AS u LEFT JOIN spans AS p ON p.trace_id = u.trace_id AND p.span_id = u.next
    WHERE u.state = 'walk'
)
SELECT id, state, coalesce(agent, '') FROM up WHERE state != 'walk';
"""
# What to add: new calls under their parent agent ('' while missing); pending calls now
# resolved to an agent move from '' to it (minus there, plus here).
_PENDING = """
DELETE FROM pending_calls
WHERE (trace_id, span_id) IN (SELECT trace_id, span_id FROM temp.call_spans AS c
                              JOIN temp.call_resolved AS r ON r.id = c.rowid
                              WHERE c.pending AND r.state != 'missing');
INSERT OR IGNORE INTO pending_calls (trace_id, span_id, received_ns)
SELECT trace_id, span_id, :now FROM temp.call_spans AS c
JOIN temp.call_resolved AS r ON r.id = c.rowid WHERE NOT c.pending AND r.state = 'missing';
DELETE FROM pending_calls WHERE received_ns < :now - :wait;
"""
# Each delta as the rows it adds to: a run of the span's own agent when its parent is in
# another (or none), a model call or a tool call under the span's agent (own or inherited).
_CALLS = f"""
CREATE TEMP TABLE IF NOT EXISTS call_rows (
    minute INTEGER, kind TEXT, caller TEXT, provider TEXT, name TEXT, sign INTEGER,
    failure TEXT, duration_ns INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    cache_read_tokens INTEGER, cache_write_tokens INTEGER, reasoning_tokens INTEGER,
    cost_usd REAL, unpriced INTEGER, ttft_s REAL);
DELETE FROM temp.call_rows;
INSERT INTO temp.call_rows
WITH c AS (
    SELECT c.*, iif(r.state = 'missing', '', r.agent) AS p, 1 AS sign
    FROM temp.call_spans AS c JOIN temp.call_resolved AS r ON r.id = c.rowid
    WHERE NOT c.pending
    UNION ALL
    SELECT c.*, coalesce(x.p, r.agent), x.sign
    FROM temp.call_spans AS c JOIN temp.call_resolved AS r ON r.id = c.rowid
    JOIN (SELECT '' AS p, -1 AS sign UNION ALL SELECT NULL, 1) AS x
    WHERE c.pending AND r.state != 'missing' AND r.agent != ''
)
SELECT minute, 'agent', p, '', own, sign, failure, duration_ns, 0, 0, 0, 0, 0, NULL, 0, NULL
FROM c WHERE own IS NOT NULL AND own != p
UNION ALL
SELECT minute, 'model', coalesce(own, p), provider, model, sign, failure, duration_ns,
       input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
       cost_usd, unpriced, ttft_s
FROM c WHERE model IS NOT NULL
UNION ALL
SELECT minute, 'tool', coalesce(own, p), '', tool, sign, failure, duration_ns, 0, 0, 0, 0, 0,
       NULL, 0, NULL
FROM c WHERE model IS NULL AND tool IS NOT NULL;

INSERT INTO call_minutes (minute, kind, caller, provider, name, {", ".join(_SUMMED)})
SELECT minute, kind, caller, provider, name, sum(sign), sum(sign * (failure IS NOT NULL)),
    {", ".join(f"sum(sign * (failure IS '{c}'))" for c in FAILURES)},
    sum(sign * input_tokens), sum(sign * output_tokens), sum(sign * cache_read_tokens),
    sum(sign * cache_write_tokens), sum(sign * reasoning_tokens),
    total(sign * cost_usd), sum(sign * (cost_usd IS NOT NULL)), sum(sign * unpriced),
    total(sign * ttft_s), sum(sign * (ttft_s IS NOT NULL))
FROM temp.call_rows
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (minute, kind, caller, provider, name) DO UPDATE SET
    {add_excluded(_SUMMED)};

INSERT INTO call_minute_durations (minute, kind, provider, name, bucket, count)
SELECT minute, kind, provider, name,
    CASE WHEN duration_ns > 1000 THEN CAST(ceil(8 * log2(duration_ns / 1000.0)) AS INTEGER)
         ELSE 0 END,
    sum(sign)
FROM temp.call_rows
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (kind, provider, name, minute, bucket) DO UPDATE SET count = count + excluded.count;
"""


def add_calls(conn: apsw.Connection, mark: int, trace_ids: str, now_ns: int) -> None:
    """Count the calls stored after rowid ``mark`` and move the pending calls of the touched
    traces (``trace_ids``, a JSON list) whose ancestors have arrived."""
    conn.execute(_CANDIDATES, {"mark": mark, "ids": trace_ids})
    conn.execute(_RESOLVE)
    conn.execute(_PENDING, {"now": now_ns, "wait": PENDING_NS})
    conn.execute(_CALLS)


class Subject(NamedTuple):
    """What a row of the agents screen is about."""

    kind: str  # agent, tool or model
    name: str
    provider: str = ""  # models only


@dataclass
class CallStats:
    """One agent, tool or model summed over a window."""

    subject: Subject
    calls: int = 0  # runs, for an agent
    failures: int = 0
    by_failure: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # kind -> count, models only
    cost_usd: float = 0.0
    unpriced: int = 0
    ttft_sum_s: float = 0.0
    ttft_count: int = 0
    callers: Counter[str] = field(default_factory=Counter)  # agent -> calls ('' none)


TOKEN_COLUMNS = {kind: f"{kind}_tokens" for kind in TOKEN_KINDS}


@dataclass
class Edge:
    """The calls one agent made to one agent, tool or model in a window."""

    callee: Subject
    calls: int = 0
    failures: int = 0
    tokens: dict[str, int] = field(default_factory=dict)  # kind -> count, models only
    cost_usd: float = 0.0
    priced: int = 0
    unpriced: int = 0  # calls with tokens but no known price: their cost is not in cost_usd


@dataclass
class CallsWindow:
    """Everything the agents screen shows for one window."""

    stats: dict[Subject, CallStats]
    edges: dict[str, list[Edge]]  # caller ('' for none) -> what it called

    def of_kind(self, kind: str) -> list[CallStats]:
        return [s for s in self.stats.values() if s.subject.kind == kind]

    def made_by(self, agent: str, kind: str) -> list[Edge]:
        return [e for e in self.edges.get(agent, ()) if e.callee.kind == kind]


def calls_window(conn: apsw.Connection, first_minute: int, last_minute: int
                 ) -> CallsWindow:
    """Agents, tools and models from ``first_minute`` to ``last_minute``, with who called
    what (their latencies: ``durations``)."""
    stats: dict[Subject, CallStats] = {}
    edges: dict[str, list[Edge]] = defaultdict(list)
    rows = conn.execute(
        f"SELECT kind, caller, provider, name, {', '.join(f'sum({c})' for c in _SUMMED)} "
        "FROM call_minutes WHERE minute BETWEEN ? AND ? "
        "GROUP BY kind, caller, provider, name HAVING sum(calls) > 0",
        (first_minute, last_minute))
    for kind, caller, provider, name, *values in rows:
        v = dict(zip(_SUMMED, values, strict=True))
        subject = Subject(kind, name, provider)
        s = stats.get(subject)
        if s is None:
            s = stats[subject] = CallStats(subject)
        s.calls += v["calls"]
        s.failures += v["failures"]
        for category, column in zip(FAILURES, FAILURE_COLUMNS, strict=True):
            if v[column]:
                s.by_failure[category] = s.by_failure.get(category, 0) + v[column]
        tokens = {k: v[column] for k, column in TOKEN_COLUMNS.items() if v[column]}
        for token_kind, n in tokens.items():
            s.tokens[token_kind] = s.tokens.get(token_kind, 0) + n
        s.cost_usd += v["cost_usd"]
        s.unpriced += v["unpriced"]
        s.ttft_sum_s += v["ttft_sum_s"]
        s.ttft_count += v["ttft_count"]
        s.callers[caller] += v["calls"]
        edges[caller].append(Edge(subject, v["calls"], v["failures"], tokens, v["cost_usd"],
                                  v["priced"], v["unpriced"]))
    return CallsWindow(stats, dict(edges))


def durations(conn: apsw.Connection, first_minute: int, last_minute: int,
              subjects: Iterable[Subject]) -> dict[Subject, Counter[int]]:
    """The duration histogram (bucket -> calls) of each subject over the minutes.

    Read per subject (one index seek each), so a screen pays for the rows it shows: a
    busy hour holds tens of thousands of histogram rows across all subjects.
    """
    out: dict[Subject, Counter[int]] = {}
    for subject in subjects:
        out[subject] = Counter({bucket: count for bucket, count in conn.execute(
            "SELECT bucket, sum(count) FROM call_minute_durations WHERE kind = ? "
            "AND provider = ? AND name = ? AND minute BETWEEN ? AND ? GROUP BY bucket "
            "HAVING sum(count) > 0",
            (subject.kind, subject.provider, subject.name, first_minute, last_minute))})
    return out


def pending_count(conn: apsw.Connection) -> int:
    """Calls counted under no agent while their ancestors have not arrived."""
    return scalar(conn, "SELECT count(*) FROM pending_calls")
