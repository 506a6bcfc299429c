"""Read queries over the store: those more than one command needs, and the TUI's.

Every function takes a connection (a reader's) and returns plain values or dataclasses; no
textual or rich here, so the queries can be tested and benchmarked headless. The TUI's
queries each read through an index and return at most the rows asked for: the trace list
a window of ``traces``, a trace only the tree columns of its spans, and one span's
attributes, events, logs and findings only when that span is selected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import apsw

from agenttop.store.db import scalar
from agenttop.store.rows import (
    FAILURES,
    LAYERS,
    MINUTE_NS,
    OLDEST_PLAUSIBLE_NS,
    SKEW_TOLERANCE_NS,
)


def latest_data_ns(conn: apsw.Connection) -> int | None:
    """The newest span start, log or metric point time in the file, or None when empty."""
    return _newest(conn, "SELECT max(start_ns) FROM traces",
                   "SELECT max(time_ns) FROM logs",
                   # One index seek: metric_points has no index led by time.
                   "SELECT max(last_ns) FROM metric_series")


def earliest_data_ns(conn: apsw.Connection) -> int | None:
    """The oldest span start, log or metric point time in the file, or None when empty."""
    return _newest(conn, "SELECT min(start_ns) FROM traces", "SELECT min(time_ns) FROM logs",
                   "SELECT min(first_ns) FROM metric_series", pick=min)


def latest_arrival_ns(conn: apsw.Connection) -> int | None:
    """When the newest span, log record or metric point arrived, by the receiver's clock,
    or None when the file is empty: the end of a window that no client's clock can move.
    Rows are stored in arrival order, so each table's last row says it."""
    return _newest(conn, "SELECT received_ns FROM spans ORDER BY rowid DESC LIMIT 1",
                   "SELECT received_ns FROM logs ORDER BY log_id DESC LIMIT 1",
                   "SELECT received_ns FROM metric_points ORDER BY point_id DESC LIMIT 1")


def _newest(conn: apsw.Connection, *sqls: str,
            pick: Callable[[list[int]], int] = max) -> int | None:
    """The largest (or ``pick``'s choice) of the times these single-value queries give, or
    None when none does."""
    known = [int(t) for sql in sqls  # type: ignore[call-overload]
             if (t := scalar(conn, sql)) is not None]
    return pick(known) if known else None


@dataclass(frozen=True, slots=True)
class ClockSkew:
    """Records whose own time cannot be right, by what they are and which way."""

    spans_ahead: int = 0  # start more than SKEW_TOLERANCE_NS after arrival
    spans_ancient: int = 0  # start before OLDEST_PLAUSIBLE_NS
    logs_ahead: int = 0
    logs_ancient: int = 0

    @property
    def total(self) -> int:
        return self.spans_ahead + self.spans_ancient + self.logs_ahead + self.logs_ancient


def clock_skew(conn: apsw.Connection) -> ClockSkew:
    """Count the file's records with a skewed clock (a scan: for one-shot reports)."""
    bindings = {"tol": SKEW_TOLERANCE_NS, "old": OLDEST_PLAUSIBLE_NS}
    spans = conn.execute("SELECT count(CASE WHEN start_ns > received_ns + :tol THEN 1 END), "
                         "count(CASE WHEN start_ns < :old THEN 1 END) FROM spans",
                         bindings).fetchall()[0]
    logs = conn.execute("SELECT count(CASE WHEN time_ns > received_ns + :tol THEN 1 END), "
                        "count(CASE WHEN time_ns < :old THEN 1 END) FROM logs",
                        bindings).fetchall()[0]
    return ClockSkew(*map(int, spans), *map(int, logs))


# ------------------------------------------------------------------------- the trace list

# Filter tokens the trace list understands; anything else is free text.
FILTER_HELP = ("text · service:NAME · layer:LAYER · errors · findings · failed:LAYER[:CATEGORY] "
               "· slow:LAYER>5s · agent:NAME · model:NAME · session:ID · skewed")
_SLOW = re.compile(r"([a-z_]+)>(\d+(?:\.\d+)?)(ms|s)?\Z")
# "quoted words", key:"quoted value" (a name with spaces), or a bare token.
_TOKEN = re.compile(r'"([^"]*)"?|(\w+:"[^"]*"?|\S+)')
_LIKE_ESCAPE = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """A parsed trace-list filter; every part must hold (AND)."""

    words: tuple[str, ...] = ()  # free text: root name, trace id prefix or a service
    services: tuple[str, ...] = ()  # service:NAME, a substring of one of its services
    layers: tuple[str, ...] = ()  # layer:LAYER, a layer its spans touch
    errors: bool = False  # errors: traces with at least one failed span
    findings: bool = False  # findings: traces with PII or injection findings
    # failed:LAYER[:CATEGORY]: a span of that layer failed (in that category)
    failed: tuple[tuple[str, str | None], ...] = ()
    slow: tuple[tuple[str, int], ...] = ()  # slow:LAYER>5s: a span of it took longer (ns)
    # Exact names: a span of the trace names this agent / model / tool; the trace is a turn of
    # this conversation.
    agents: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # tokens that cannot match, said in words
    since_ns: int | None = None  # traces started at or after (set by a jump, not typed)
    until_ns: int | None = None  # traces started at or before
    # Traces dated after this (ahead of the clock that reads them: a client's skewed clock)
    # are left out, so that they do not sit on top of a newest-first list for ever;
    # ``skewed`` lists only them.
    horizon_ns: int | None = None
    skewed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.words or self.services or self.layers or self.errors or self.findings
                    or self.failed or self.slow or self.agents or self.models or self.sessions
                    or self.tools                    or self.skewed or self.problems
                    or self.since_ns is not None or self.until_ns is not None)


def parse_trace_filter(query: str) -> TraceFilter:
    """Parse ``checkout service:api layer:tool errors "two words"``.

    Keys are case-insensitive; ``err``/``error``/``errors`` all mean errors only. A layer
    that does not exist is kept (it matches nothing) and reported in ``problems``.
    """
    words: list[str] = []
    services: list[str] = []
    layers: list[str] = []
    problems: list[str] = []
    failed: list[tuple[str, str | None]] = []
    slow: list[tuple[str, int]] = []
    exact: dict[str, list[str]] = {"agent": [], "model": [], "session": [], "tool": []}
    errors = findings = skewed = False
    for match in _TOKEN.finditer(query):
        quoted, bare = match.groups()
        if match.group().startswith('"'):
            if quoted.strip():
                words.append(quoted)
            else:
                problems.append(f"{match.group()} is empty text")
            continue
        key, sep, value = bare.partition(":")
        key = key.lower()
        if value.startswith('"'):
            value = value[1:].removesuffix('"')
        if not sep:
            if key in ("errors", "error", "err"):
                errors = True
            elif key in ("findings", "finding", "pii"):
                findings = True
            elif key in ("skewed", "skew"):
                skewed = True
            else:
                words.append(bare)
        elif key in ("service", "svc", "s") and value:
            services.append(value)
        elif key in ("layer", "l") and value:
            layer = value.lower()
            layers.append(layer)
            problems += _layer_problem(layer)
        elif key == "failed" and value:
            layer, _, category = value.lower().partition(":")
            failed.append((layer, category or None))
            problems += _layer_problem(layer)
            if category and category not in FAILURES:
                problems.append(f"no failure category {category!r} (categories: "
                                f"{', '.join(FAILURES)})")
        elif key in exact and value:
            exact[key].append(value)
        elif key == "slow" and value:
            slow_match = _SLOW.match(value.lower())
            if slow_match is None:
                problems.append(f"slow:{value} is not slow:LAYER>TIME, e.g. slow:runtime>5s")
                continue
            layer, amount, unit = slow_match.groups()
            slow.append((layer, int(float(amount) * (10**9 if unit == "s" else 10**6))))
            problems += _layer_problem(layer)
        else:
            words.append(bare)
    return TraceFilter(tuple(words), tuple(services), tuple(layers), errors, findings,
                       tuple(failed), tuple(slow), tuple(exact["agent"]),
                       tuple(exact["model"]), tuple(exact["session"]), tuple(exact["tool"]),
                       tuple(problems), skewed=skewed)


HINT_NAMES = 12  # names a filter hint lists at most


def filter_hints(conn: apsw.Connection, f: TraceFilter) -> list[str]:
    """For a filter that matched nothing: its services, agents, models and tools that
    nothing received has, each with the names that exist (``no agent 'x' (agents: a,
    b)``). Read only then: the names come from ``resources`` and ``call_minutes``."""
    hints: list[str] = []
    if f.services:
        known = sorted({row[0] for row in conn.execute("SELECT DISTINCT service FROM resources")})
        for service in f.services:
            if not any(service.casefold() in k.casefold() for k in known):
                hints.append(f"no service matching {service!r} ({_listed('services', known)})")
    for kind, names in (("agent", f.agents), ("model", f.models), ("tool", f.tools)):
        if not names:
            continue
        known = [row[0] for row in conn.execute(
            "SELECT DISTINCT name FROM call_minutes WHERE kind = ? ORDER BY name LIMIT ?",
            (kind, HINT_NAMES + 1))]
        for name in names:
            if not scalar(conn, "SELECT EXISTS (SELECT 1 FROM call_minutes WHERE kind = ? "
                                "AND name = ?)", (kind, name)):
                hints.append(f"no {kind} {name!r} ({_listed(kind + 's', known)})")
    return hints


def _listed(what: str, names: list[str]) -> str:
    if not names:
        return f"no {what} yet"
    shown = ", ".join(names[:HINT_NAMES])
    return f"{what}: {shown}" + (", …" if len(names) > HINT_NAMES else "")


def exact_token(key: str, value: str) -> str:
    """The filter token matching ``value`` exactly (``agent:NAME``), quoted when the value
    has spaces."""
    return f'{key}:"{value}"' if not value or any(c.isspace() for c in value) else \
        f"{key}:{value}"


def _layer_problem(layer: str) -> list[str]:
    return [] if layer in LAYERS else [f"no layer {layer!r} (layers: {', '.join(LAYERS)})"]


def like(value: str, prefix_only: bool = False) -> str:
    """A LIKE pattern (ESCAPE '\\') matching ``value`` anywhere, or as a prefix."""
    escaped = value.translate(_LIKE_ESCAPE)
    return f"{escaped}%" if prefix_only else f"%{escaped}%"


def _trace_where(f: TraceFilter) -> tuple[str, dict[str, object]]:
    """SQL conditions over ``traces`` for a filter, and their bindings."""
    # A filter that did not parse lists nothing, under what was wrong with it, rather than
    # every trace under a "filter:" label.
    parts: list[str] = ["0"] if f.problems else []
    bindings: dict[str, object] = {}
    for i, word in enumerate(f.words):
        bindings[f"w{i}"] = like(word)
        bindings[f"p{i}"] = like(word.lower(), prefix_only=True)
        parts.append(f"(root_name LIKE :w{i} ESCAPE '\\' OR services LIKE :w{i} ESCAPE '\\' "
                     f"OR trace_id LIKE :p{i} ESCAPE '\\')")
    for i, service in enumerate(f.services):
        bindings[f"s{i}"] = like(service)
        parts.append(f"services LIKE :s{i} ESCAPE '\\'")
    for i, layer in enumerate(f.layers):
        # layers is a sorted comma-separated list: match one whole element.
        bindings[f"l{i}"] = f",{layer},"
        parts.append(f"instr(',' || layers || ',', :l{i}) > 0")
    for column, values in (("agents", f.agents), ("models", f.models), ("tools", f.tools)):
        for i, name in enumerate(values):
            # A sorted comma-separated list: match one whole element.
            bindings[f"{column}{i}"] = f",{name},"
            parts.append(f"instr(',' || {column} || ',', :{column}{i}) > 0")
    for i, session in enumerate(f.sessions):
        bindings[f"session{i}"] = session
        parts.append(f"session = :session{i}")
    if f.errors:
        parts.append("error_count > 0")
    if f.findings:
        parts.append("finding_count > 0")
    # Through spans_layer_time: the spans of one layer, from the range's start on.
    since = "" if f.since_ns is None else " AND start_ns >= :since"
    for i, (layer, category) in enumerate(f.failed):
        bindings[f"fl{i}"] = layer
        which = "failure IS NOT NULL"
        if category is not None:
            bindings[f"fc{i}"] = category
            which = f"failure = :fc{i}"
        parts.append(f"trace_id IN (SELECT trace_id FROM spans WHERE layer = :fl{i}{since} "
                     f"AND {which})")
    for i, (layer, over_ns) in enumerate(f.slow):
        bindings[f"sl{i}"], bindings[f"sd{i}"] = layer, over_ns
        parts.append(f"trace_id IN (SELECT trace_id FROM spans WHERE layer = :sl{i}{since} "
                     f"AND duration_ns > :sd{i})")
    if f.since_ns is not None:
        bindings["since"] = f.since_ns
        parts.append("start_ns >= :since")
    if f.until_ns is not None:
        bindings["until"] = f.until_ns
        parts.append("start_ns <= :until")
    if f.horizon_ns is not None:
        bindings["horizon"] = f.horizon_ns
        parts.append("start_ns > :horizon" if f.skewed else "start_ns <= :horizon")
    elif f.skewed:
        parts.append("start_ns > updated_ns + :tolerance")
        bindings["tolerance"] = SKEW_TOLERANCE_NS
    return (" AND ".join(parts) or "1"), bindings


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One row of ``traces``: what the trace list shows."""

    trace_id: str
    root_span_id: str | None
    root_name: str | None  # None while the root span has not arrived
    service: str | None
    start_ns: int
    duration_ns: int
    span_count: int
    error_count: int
    layers: tuple[str, ...]
    services: tuple[str, ...]
    finding_count: int
    updated_ns: int
    cost_usd: float | None = None  # of its priced model calls; None: none priced
    unpriced: int = 0  # model calls with tokens but no price
    input_tokens: int = 0
    output_tokens: int = 0
    session: str | None = None  # the conversation it is a turn of


_TRACE_COLUMNS = ("trace_id, root_span_id, root_name, service, start_ns, duration_ns, "
                  "span_count, error_count, layers, services, finding_count, updated_ns, "
                  "cost_usd, unpriced, input_tokens, output_tokens, session")


def _trace_row(row: tuple) -> TraceRow:
    values = list(row)
    values[8] = tuple(values[8].split(",")) if values[8] else ()
    values[9] = tuple(values[9].split(",")) if values[9] else ()
    return TraceRow(*values)


def list_traces(conn: apsw.Connection, f: TraceFilter | None = None, *, limit: int = 200,
                offset: int = 0) -> list[TraceRow]:
    """Traces newest first (by start time, through ``traces_start``), one window of them."""
    where, bindings = _trace_where(f or TraceFilter())
    bindings.update(limit=limit, offset=offset)
    sql = (f"SELECT {_TRACE_COLUMNS} FROM traces WHERE {where} "
           "ORDER BY start_ns DESC, trace_id DESC LIMIT :limit OFFSET :offset")
    return [_trace_row(row) for row in conn.execute(sql, bindings)]


def count_traces(conn: apsw.Connection, f: TraceFilter | None = None, *,
                 cap: int = 10_000) -> int:
    """How many traces match, counting no further than ``cap`` (a filter scans rows)."""
    return count_capped(conn, "traces", *_trace_where(f or TraceFilter()), cap)


def count_capped(conn: apsw.Connection, table: str, where: str, bindings: dict,
                  cap: int) -> int:
    """How many rows of ``table`` match ``where``, counting no further than ``cap``."""
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT :cap)"
    return int(scalar(conn, sql, {**bindings, "cap": cap}) or 0)  # type: ignore[arg-type]


def get_trace(conn: apsw.Connection, trace_id: str) -> TraceRow | None:
    for row in conn.execute(f"SELECT {_TRACE_COLUMNS} FROM traces WHERE trace_id = ?",
                            (trace_id,)):
        return _trace_row(row)
    return None


# ------------------------------------------------------------------------ one trace's spans

@dataclass(frozen=True, slots=True)
class SpanNode:
    """The columns of a span that its line in the trace tree needs, and no more."""

    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    service: str
    start_ns: int
    duration_ns: int
    status_code: int
    layer: str
    failure: str | None
    finding_count: int


def trace_spans(conn: apsw.Connection, trace_id: str, *,
                limit: int | None = None) -> list[SpanNode]:
    """A trace's spans in start order, through the ``(trace_id, span_id)`` index."""
    sql = ("SELECT span_id, parent_span_id, name, kind, service, start_ns, duration_ns, "
           "status_code, layer, failure, finding_count FROM spans WHERE trace_id = ? "
           "ORDER BY start_ns, span_id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [SpanNode(*row) for row in conn.execute(sql, (trace_id,))]


def matching_spans(conn: apsw.Connection, trace_id: str, text: str) -> set[str]:
    """The spans of a trace whose name, service, status message, attribute keys or values
    or event names hold ``text`` (any case): the trace screen's ``/`` search."""
    needle = text.casefold()
    rows = conn.execute("SELECT span_id, name, service, status_message, attributes, events "
                        "FROM spans WHERE trace_id = ?", (trace_id,))
    return {span_id for span_id, *fields in rows
            if any(needle in field.casefold() for field in fields)}


@dataclass(frozen=True, slots=True)
class LogRow:
    time_ns: int
    severity_number: int
    severity_text: str
    body: str | None
    event_name: str | None
    attributes: dict


@dataclass(frozen=True, slots=True)
class FindingRow:
    kind: str  # pii | injection
    pattern: str
    location: str
    direction: str
    excerpt: str  # already redacted at ingest
    time_ns: int


@dataclass(frozen=True, slots=True)
class SpanDetail:
    """Everything stored about one span, for the detail pane (loaded when selected)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    service: str
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
    dropped_counts: dict | None
    genai: dict | None
    resource: dict
    logs: list[LogRow]
    logs_total: int
    findings: list[FindingRow]
    # What the span does not say itself but its nearest ancestor does: field (agent,
    # session) -> (value, that ancestor's name).
    inherited: dict[str, tuple[str, str]]


# Fields a span without its own takes from its nearest ancestor that has one: an LLM call
# inside an agent's run belongs to that agent and conversation.
INHERITED = ("agent", "session")
_MAX_DEPTH = 256  # a parent cycle (a broken client) ends here


def inherited_context(conn: apsw.Connection, trace_id: str, span_id: str,
                      own: dict | None) -> dict[str, tuple[str, str]]:
    """The ``INHERITED`` fields ``span_id`` lacks, from its nearest ancestors."""
    wanted = [f for f in INHERITED if not (own or {}).get(f)]
    if not wanted:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for name, agent, session in conn.execute(
            "WITH RECURSIVE up(parent, depth) AS ("
            " SELECT parent_span_id, 0 FROM spans WHERE trace_id = :t AND span_id = :s"
            " UNION ALL SELECT p.parent_span_id, up.depth + 1 FROM up JOIN spans AS p"
            " ON p.trace_id = :t AND p.span_id = up.parent WHERE up.depth < :max)"
            " SELECT a.name, a.genai ->> '$.agent', a.genai ->> '$.session'"
            " FROM up JOIN spans AS a ON a.trace_id = :t AND a.span_id = up.parent"
            " ORDER BY up.depth", {"t": trace_id, "s": span_id, "max": _MAX_DEPTH}):
        for field, value in (("agent", agent), ("session", session)):
            if field in wanted and field not in out and value:
                out[field] = (str(value), name)
        if len(out) == len(wanted):
            break
    return out


def _json(text: str | None, default: object) -> object:
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except ValueError:  # stored by us, so this is not expected; show nothing, not a crash
        return default


# A finding's side as shown: "echo" for output PII that an input of its trace held first.
_SIDE = "CASE WHEN echo THEN 'echo' ELSE direction END"


def span_detail(conn: apsw.Connection, trace_id: str, span_id: str, *,
                log_limit: int = 200) -> SpanDetail | None:
    """One span with its attributes, events, links, resource, linked logs and findings."""
    rows = conn.execute(
        "SELECT s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.service, s.scope, "
        "s.start_ns, s.end_ns, s.duration_ns, s.status_code, s.status_message, s.layer, "
        "s.failure, s.attributes, s.events, s.links, s.dropped_counts, s.genai, r.attributes "
        "FROM spans AS s LEFT JOIN resources AS r ON r.resource_id = s.resource_id "
        "WHERE s.trace_id = ? AND s.span_id = ?", (trace_id, span_id)).fetchall()
    if not rows:
        return None
    row = rows[0]
    logs = [
        LogRow(t, sev, sev_text, body, event, _json(attrs, {}))  # type: ignore[arg-type]
        for t, sev, sev_text, body, event, attrs in conn.execute(
            "SELECT time_ns, severity_number, severity_text, body, event_name, attributes "
            "FROM logs WHERE trace_id = ? AND span_id = ? ORDER BY time_ns, log_id LIMIT ?",
            (trace_id, span_id, log_limit))
    ]
    logs_total = len(logs)
    if logs_total == log_limit:
        logs_total = int(scalar(conn, "SELECT count(*) FROM logs WHERE trace_id = ? AND "
                                "span_id = ?", (trace_id, span_id)) or 0)  # type: ignore[arg-type]
    # The span's own findings, then those of its log records ("log body", ...).
    findings = [FindingRow(*r) for r in conn.execute(
        "SELECT kind, pattern, iif(signal = 'log', 'log ' || location, location), "
        f"{_SIDE}, excerpt, time_ns FROM findings WHERE trace_id = ? AND span_id = ? "
        "ORDER BY signal = 'log', location, position", (trace_id, span_id))]
    genai = _json(row[18], None)
    return SpanDetail(
        *row[:14],
        attributes=_json(row[14], {}),  # type: ignore[arg-type]
        events=_json(row[15], []),  # type: ignore[arg-type]
        links=_json(row[16], []),  # type: ignore[arg-type]
        dropped_counts=_json(row[17], None),  # type: ignore[arg-type]
        genai=genai,  # type: ignore[arg-type]
        resource=_json(row[19], {}),  # type: ignore[arg-type]
        logs=logs,
        logs_total=logs_total,
        findings=findings,
        inherited=inherited_context(conn, trace_id, span_id, genai),  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------ dashboard

def count_findings(conn: apsw.Connection, since_ns: int | None = None) -> int:
    """Findings (PII and injection) found at or after ``since_ns`` (all when None)."""
    if since_ns is None:
        return int(scalar(conn, "SELECT count(*) FROM findings") or 0)  # type: ignore[arg-type]
    return int(scalar(conn, "SELECT count(*) FROM findings WHERE time_ns >= ?",  # type: ignore[arg-type]
                      (since_ns,)) or 0)


def span_mark(conn: apsw.Connection) -> int:
    """The newest span's rowid: spans stored so far, for an ingest rate between two reads."""
    return int(scalar(conn, "SELECT coalesce(max(rowid), 0) FROM spans") or 0)  # type: ignore[arg-type]


# --- the security screen

FINDING_KINDS = ("pii", "injection")
FINDING_DIRECTIONS = ("input", "output", "echo")
FINDING_FILTER_HELP = (f"text · kind:{'|'.join(FINDING_KINDS)} · pattern:NAME · "
                       f"direction:{'|'.join(FINDING_DIRECTIONS)} · service:NAME")


@dataclass(frozen=True, slots=True)
class FindingFilter:
    """A parsed findings filter: values of one key are alternatives (OR), keys AND."""

    words: tuple[str, ...] = ()  # free text: a substring of the location or excerpt
    kinds: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # substrings of the service

    @property
    def empty(self) -> bool:
        return not (self.words or self.kinds or self.patterns or self.directions
                    or self.services)

    @property
    def problems(self) -> list[str]:
        """Values no finding can have, each with the values that exist."""
        return [f"no {key} {value!r} ({'|'.join(known)})"
                for key, values, known in (("kind", self.kinds, FINDING_KINDS),
                                           ("direction", self.directions, FINDING_DIRECTIONS))
                for value in values if value not in known]


def parse_finding_filter(query: str) -> FindingFilter:
    """Parse ``kind:pii pattern:ssn direction:output service:api "free text"``."""
    parts: dict[str, list[str]] = {"words": [], "kinds": [], "patterns": [],
                                   "directions": [], "services": []}
    keys = {"kind": "kinds", "k": "kinds", "pattern": "patterns", "p": "patterns",
            "direction": "directions", "dir": "directions", "d": "directions",
            "service": "services", "svc": "services", "s": "services"}
    for quoted, bare in _TOKEN.findall(query):
        if quoted:
            parts["words"].append(quoted)
            continue
        if not bare:
            continue
        key, sep, value = bare.partition(":")
        field = keys.get(key.lower()) if sep and value else None
        if field is None:
            parts["words"].append(bare)
        else:
            parts[field].append(value if field == "services" else value.lower())
    return FindingFilter(*(tuple(parts[k]) for k in ("words", "kinds", "patterns",
                                                      "directions", "services")))


def _finding_where(f: FindingFilter) -> tuple[str, dict[str, object]]:
    parts: list[str] = []
    bindings: dict[str, object] = {}
    for name, column, expression in (("kinds", "kind", "kind"),
                                     ("patterns", "pattern", "pattern"),
                                     ("directions", "direction", _SIDE)):
        values = getattr(f, name)
        if values:
            names = [f"{column}{i}" for i in range(len(values))]
            bindings.update(zip(names, values, strict=True))
            parts.append(f"{expression} IN ({', '.join(':' + n for n in names)})")
    if f.services:
        alternatives = []
        for i, service in enumerate(f.services):
            bindings[f"s{i}"] = like(service)
            alternatives.append(f"service LIKE :s{i} ESCAPE '\\'")
        parts.append("(" + " OR ".join(alternatives) + ")")
    for i, word in enumerate(f.words):
        bindings[f"w{i}"] = like(word)
        parts.append(f"(location LIKE :w{i} ESCAPE '\\' OR excerpt LIKE :w{i} ESCAPE '\\')")
    return (" AND ".join(parts) or "1"), bindings


@dataclass(frozen=True, slots=True)
class FindingListRow:
    """One finding, for the security screen."""

    finding_id: int
    kind: str
    pattern: str
    trace_id: str | None
    span_id: str | None
    signal: str  # span | log
    location: str
    direction: str  # input | output | echo (output repeating an input's PII) | ""
    excerpt: str  # already redacted at ingest
    service: str
    time_ns: int
    # Where the same value was found in this trace (``list_finding_groups``): (signal,
    # span name or "", how many findings there), this one included; empty when only here.
    seen: tuple[tuple[str, str, int], ...] = ()

    @property
    def found(self) -> int:
        """How many findings of the trace this row stands for."""
        return sum(n for *_, n in self.seen) or 1


def count_matching_findings(conn: apsw.Connection, f: FindingFilter | None = None, *,
                            cap: int = 10_000) -> int:
    """How many findings match, counting no further than ``cap``."""
    return count_capped(conn, "findings", *_finding_where(f or FindingFilter()), cap)


# The value a finding is grouped by within its trace: a PII value's keyed digest (its
# excerpt when it has none), nothing for an injection (its pattern is the group).
_VALUE = "coalesce(digest, CASE WHEN kind = 'injection' THEN '' ELSE excerpt END)"
GROUP_PAGES = 25  # pages of findings read at most to fill one page of groups


def list_finding_groups(conn: apsw.Connection, f: FindingFilter | None = None, *,
                        limit: int = 200) -> list[FindingListRow]:
    """Matching findings newest first, one row per value found in a trace (its newest
    finding, with ``seen`` counting where in the trace it was found), at most ``limit``
    rows: pages of findings through ``findings_time`` (``GROUP_PAGES`` at most), then the
    rows' traces' findings counted by place through ``findings_unique``."""
    where, bindings = _finding_where(f or FindingFilter())
    groups: dict[tuple[object, ...], FindingListRow] = {}
    after: tuple[int, int] | None = None
    for _ in range(GROUP_PAGES):
        page = list(conn.execute(
            f"SELECT finding_id, kind, pattern, trace_id, span_id, signal, location, {_SIDE}, "
            f"excerpt, service, time_ns, {_VALUE} FROM findings WHERE {where} "
            + ("AND (time_ns, finding_id) < (:t, :id) " if after else "")
            + "ORDER BY time_ns DESC, finding_id DESC LIMIT :limit",
            {**bindings, "limit": limit, **({"t": after[0], "id": after[1]} if after else {})}))
        for *row, value in page:
            # A finding of no trace is a group of its own.
            key = (row[3], row[1], row[2], value) if row[3] else (row[0],)
            if key not in groups and len(groups) < limit:
                groups[key] = FindingListRow(*row)
        if len(page) < limit or len(groups) >= limit:
            break
        after = (page[-1][10], page[-1][0])
    traces = sorted({key[0] for key in groups if len(key) > 1})
    seen: dict[tuple[object, ...], list[tuple[str, str, int]]] = {}
    for trace_id, kind, pattern, value, signal, name, count in conn.execute(
            f"SELECT trace_id, kind, pattern, {_VALUE}, signal, "
            "(SELECT s.name FROM spans AS s WHERE s.trace_id = findings.trace_id "
            " AND s.span_id = findings.span_id), count(*) FROM findings "
            f"WHERE trace_id IN (SELECT value FROM json_each(:traces)) AND {where} "
            "GROUP BY 1, 2, 3, 4, 5, 6", {**bindings, "traces": json.dumps(traces)}):
        key = (trace_id, kind, pattern, value)
        if key in groups:
            seen.setdefault(key, []).append((signal, name or "", count))
    return [replace(row, seen=tuple(sorted(seen[key])))
            if sum(n for *_, n in seen.get(key, ())) > 1 else row
            for key, row in groups.items()]


def findings_summary(conn: apsw.Connection, f: FindingFilter | None, now_ns: int,
                     minutes: int = 15) -> tuple[list[int], dict[str, int]]:
    """Matching findings per minute over the last ``minutes`` (oldest first), and per
    pattern over the same window; a range of ``findings_time``."""
    where, bindings = _finding_where(f or FindingFilter())
    last = now_ns // MINUTE_NS
    first = last - minutes + 1
    bindings.update(since=first * MINUTE_NS, until=(last + 1) * MINUTE_NS, minute=MINUTE_NS)
    per_minute = [0] * minutes
    per_pattern: dict[str, int] = {}
    for minute, pattern, n in conn.execute(
            "SELECT time_ns / :minute, pattern, count(*) FROM findings "
            f"WHERE time_ns >= :since AND time_ns < :until AND {where} GROUP BY 1, 2",
            bindings):
        per_minute[int(minute) - first] += int(n)
        per_pattern[pattern] = per_pattern.get(pattern, 0) + int(n)
    return per_minute, per_pattern


# --- metrics and logs screens

# Minimum severity numbers the log list filters by (OTel: 9 INFO, 13 WARN, 17 ERROR).
SEVERITY_LEVELS: tuple[tuple[int, str], ...] = ((0, "all"), (9, "INFO+"), (13, "WARN+"),
                                                 (17, "ERROR+"))
LOG_BODY_CHARS = 16 * 1024  # of a body read for the list and its detail pane


@dataclass(frozen=True, slots=True)
class LogListRow:
    """One log record as the log list shows it (the body cut at ``LOG_BODY_CHARS``)."""

    log_id: int
    time_ns: int
    severity_number: int
    severity_text: str
    body: str | None
    body_chars: int  # the whole body's length
    trace_id: str | None
    span_id: str | None
    event_name: str | None
    service: str
    # A GenAI event sent with an empty body: its message attributes, as one JSON object.
    event_messages: str | None = None


# Attributes that hold a conversation (on spans, and on GenAI events sent with no body).
MESSAGE_KEYS = ("gen_ai.system_instructions", "gen_ai.input.messages",
                       "gen_ai.output.messages")
_NO_BODY = "coalesce(body, '') = '' AND event_name LIKE 'gen\\_ai.%' ESCAPE '\\'"
_EVENT_MESSAGES = (
    f"CASE WHEN {_NO_BODY} AND ("
    + " OR ".join(f"attributes -> '$.\"{k}\"' IS NOT NULL" for k in MESSAGE_KEYS)
    + ") THEN json_object("
    + ", ".join(f"'{k}', attributes -> '$.\"{k}\"'" for k in MESSAGE_KEYS)
    + ") END")


def _log_where(min_severity: int, text: str) -> tuple[str, dict[str, object]]:
    parts: list[str] = []
    bindings: dict[str, object] = {}
    if min_severity > 0:
        parts.append("severity_number >= :sev")
        bindings["sev"] = min_severity
    for i, word in enumerate(w for quoted, bare in _TOKEN.findall(text) for w in (quoted or bare,)
                             if w):
        bindings[f"t{i}"] = like(word)
        parts.append(f"(body LIKE :t{i} ESCAPE '\\' OR event_name LIKE :t{i} ESCAPE '\\' "
                     f"OR service LIKE :t{i} ESCAPE '\\' "
                     f"OR ({_NO_BODY} AND attributes LIKE :t{i} ESCAPE '\\'))")
    return (" AND ".join(parts) or "1"), bindings


def list_logs(conn: apsw.Connection, *, min_severity: int = 0, text: str = "",
              limit: int = 200) -> list[LogListRow]:
    """Logs newest first (through ``logs_time``), at least ``min_severity``, every word of
    ``text`` in the body, event name or service; at most ``limit`` of them."""
    where, bindings = _log_where(min_severity, text)
    bindings.update(limit=limit, chars=LOG_BODY_CHARS)
    sql = ("SELECT log_id, time_ns, severity_number, severity_text, substr(body, 1, :chars), "
           f"length(body), trace_id, span_id, event_name, service, {_EVENT_MESSAGES} FROM logs "
           f"WHERE {where} ORDER BY time_ns DESC, log_id DESC LIMIT :limit")
    return [LogListRow(*row[:5], int(row[5] or 0), *row[6:])  # type: ignore[arg-type]
            for row in conn.execute(sql, bindings)]


def count_logs(conn: apsw.Connection, *, min_severity: int = 0, text: str = "",
               cap: int = 10_000) -> int:
    """How many logs match, counting no further than ``cap``."""
    return count_capped(conn, "logs", *_log_where(min_severity, text), cap)


def find_trace_ids(conn: apsw.Connection, prefix: str, limit: int = 2) -> list[str]:
    """Trace ids starting with ``prefix`` (lower-case hex), newest first, through the
    primary key; a whole id is found exactly."""
    prefix = prefix.strip().lower()
    if not prefix or not re.fullmatch(r"[0-9a-f]+", prefix):
        return []
    upper = prefix + "g"  # every hex id with this prefix sorts below it
    return [row[0] for row in conn.execute(
        "SELECT trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? "
        "ORDER BY start_ns DESC LIMIT ?", (prefix, upper, limit))]


def run_figures(conn: apsw.Connection, first_ns: int, last_ns: int
                ) -> list[tuple[int, float | None, int]]:
    """Per trace started in the range: its tokens (input + output), its cost (None when
    nothing was priced or some call could not be) and its findings."""
    return [(int(tokens), None if unpriced else cost, int(findings))
            for tokens, cost, unpriced, findings in conn.execute(
                "SELECT input_tokens + output_tokens, cost_usd, unpriced, finding_count "
                "FROM traces WHERE start_ns BETWEEN ? AND ?", (first_ns, last_ns))]
