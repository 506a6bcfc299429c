"""The rows ingest writes, named, and the ``Batch`` that carries them to the writer.

Each ingest table has one ``NamedTuple`` here whose fields are its columns, in the order the
bulk insert reads them: converters build rows by keyword (a misplaced value is an error,
not a silently wrong column) and ``Batch.seal`` encodes a request's rows as one JSON array
of arrays per table, which the writer inserts in one statement (agenttop/store/writer.py).
Fields named in a table's ``json`` set hold Python objects (dicts, lists) and are stored as
JSON text.

The vocabulary of the ``layer`` and ``failure`` columns lives here too: the rollup table
has one column per failure category, so the categories are part of the file's layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

LAYERS = ("prompt", "tool", "memory", "runtime", "auth", "other")  # other: no rule matched
FAILURES = ("auth", "rate_limit", "timeout", "schema", "tool_error", "server", "error")
SECOND_NS = 10**9
MINUTE_NS = 60 * SECOND_NS
# A record dated this far ahead of its arrival, or before this date, has a wrong clock: it
# is counted, and steers no window.
SKEW_TOLERANCE_NS = 300 * SECOND_NS
OLDEST_PLAUSIBLE_NS = 946_684_800 * SECOND_NS  # 2000-01-01


class ResourceRow(NamedTuple):
    resource_id: int
    service: str
    attributes: Any  # a dict, or orjson.Fragment of its already-encoded form
    first_seen_ns: int


class SpanRow(NamedTuple):
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    service: str
    resource_id: int
    scope: str
    start_ns: int
    end_ns: int
    duration_ns: int
    status_code: int
    status_message: str
    layer: str
    failure: str | None
    attributes: dict
    events: list
    links: list
    trace_state: str
    flags: int
    dropped_counts: dict | None
    received_ns: int
    genai: dict | None
    input_tokens: int | None
    output_tokens: int | None
    finding_count: int
    cost_usd: float | None = None  # a priced model call's cost (agenttop.analysis.cost)


class PointRow(NamedTuple):
    """One metric data point; the value fields a point type does not use stay None."""

    name: str
    description: str
    unit: str
    type: str  # gauge | sum | histogram | exponential_histogram | summary
    temporality: int | None
    monotonic: int | None
    service: str
    resource_id: int
    scope: str
    start_ns: int
    time_ns: int
    attributes: dict
    flags: int
    received_ns: int
    fingerprint: int  # of the point as received: the same point sent again is stored once
    value: int | float | None = None
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    bounds: list | None = None
    bucket_counts: list | None = None
    scale: int | None = None
    zero_count: int | None = None
    zero_threshold: float | None = None
    positive_offset: int | None = None
    positive_counts: list | None = None
    negative_offset: int | None = None
    negative_counts: list | None = None
    quantiles: list | None = None


class LogRecordRow(NamedTuple):
    time_ns: int
    observed_ns: int
    severity_number: int
    severity_text: str
    body: str | None
    trace_id: str | None
    span_id: str | None
    event_name: str | None
    service: str
    resource_id: int
    scope: str
    attributes: dict
    flags: int
    received_ns: int
    fingerprint: int  # of the record as received: the same record sent again is stored once


class FindingRow(NamedTuple):
    """A PII or injection hit; ``excerpt`` is already redacted."""

    kind: str  # pii | injection
    pattern: str
    trace_id: str | None
    span_id: str | None
    signal: str  # span | log
    location: str
    position: int
    direction: str  # input | output | ""
    excerpt: str
    service: str
    time_ns: int
    received_ns: int
    # A keyed digest of the PII value (None for injection, and for findings imported from
    # a file): the same value in an input and an output of one trace has the same one.
    digest: int | None = None
    # 1: PII in an output whose value was first seen in an input of the same trace (a
    # graph's output repeating the user's message), set by the writer: not PII a model
    # produced.
    echo: int = 0


@dataclass(frozen=True)
class Layout:
    """How one table's rows are inserted: its row type, JSON fields, and duplicate rule."""

    table: str
    row: type
    json: frozenset[str] = frozenset()
    ignore_duplicates: bool = False  # INSERT OR IGNORE: a re-sent row is stored once

    @property
    def columns(self) -> tuple[str, ...]:
        return self.row._fields  # type: ignore[attr-defined]


# In insert order: resources before the rows that name them.
LAYOUTS: dict[str, Layout] = {layout.table: layout for layout in (
    Layout("resources", ResourceRow, frozenset({"attributes"}), ignore_duplicates=True),
    Layout("spans", SpanRow, frozenset({"attributes", "events", "links", "dropped_counts",
                                        "genai"}), ignore_duplicates=True),
    Layout("metric_points", PointRow, frozenset({"bounds", "bucket_counts", "positive_counts",
                                                 "negative_counts", "quantiles",
                                                 "attributes"}), ignore_duplicates=True),
    Layout("logs", LogRecordRow, frozenset({"attributes"}), ignore_duplicates=True),
    Layout("findings", FindingRow, ignore_duplicates=True),
)}

_MAX_REASONS = 3
_NOUNS = {"traces": "spans", "metrics": "data points", "logs": "log records"}


def encode_rows(rows: list) -> bytes:
    """Rows (NamedTuples) as one JSON array of arrays, the writer's bulk-insert input."""
    return orjson.dumps(rows, default=tuple)


@dataclass(slots=True)
class Batch:
    """Rows decoded from one Export request, encoded for one writer transaction."""

    kind: str  # "traces" | "metrics" | "logs"
    tables: dict[str, bytes] = field(default_factory=dict)  # table -> JSON array of rows
    size: int = 0  # spans, data points or log records to store
    trace_ids: set[str] = field(default_factory=set)  # of the spans
    finding_trace_ids: set[str] = field(default_factory=set)  # of the findings
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    skewed: int = 0  # items dated ahead of their arrival, or before 2000

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < _MAX_REASONS and reason not in self.reasons:
            self.reasons.append(reason)

    def seal(self, table: str, rows: list, resources: list[ResourceRow],
             findings: list[FindingRow] = ()) -> Batch:  # type: ignore[assignment]
        self.size = len(rows)
        if rows:
            self.tables = {"resources": encode_rows(resources), table: encode_rows(rows)}
            if findings:
                self.tables["findings"] = encode_rows(findings)
                self.finding_trace_ids = {f.trace_id for f in findings if f.trace_id}
        return self

    @property
    def noun(self) -> str:
        """What this batch's items are: spans, data points or log records."""
        return _NOUNS[self.kind]

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        return f"{self.rejected} {self.noun} rejected: " + "; ".join(self.reasons)
