"""What the readiness scorecard counts, read from the whole file in one go."""

from __future__ import annotations

import json
from dataclasses import dataclass

import apsw

from agenttop.store.alerts import count_state
from agenttop.store.db import scalar
from agenttop.store.queries import latest_data_ns


@dataclass(frozen=True, slots=True)
class Observed:
    """How much the scorecard is based on, and when it was received (data times)."""

    first_ns: int | None = None
    last_ns: int | None = None
    traces: int = 0
    spans: int = 0
    logs: int = 0
    metric_points: int = 0




@dataclass
class FileFacts:
    """What the readiness scorecard is decided from, read in one go (``read_facts``)."""

    observed: Observed
    services: list[str]  # root services, busiest first
    service_count: int
    cross_service_traces: int
    structured_logs: int
    log_services: int
    metric_names: int
    layer: dict[str, dict[str, float]]  # layer -> rollup column -> total
    # (kind, direction, pattern) -> count; an output repeating an input's PII is "echo"
    findings: dict[tuple[str, str, str], int]
    auth_failure_records: list[tuple[dict, str]]  # (attributes, status message) of each
    audit: dict[str, int]  # reason -> refused calls
    alerts_firing: list[str]
    alerts_resolved: int
    retryable: int
    retried: int
    degraded_runs: int  # traces with a failed step
    completed_runs: int  # of which the root span did not fail
    checkpoints: int
    checkpoint_failures: int
    health_checks: int
    environments: list[str]

    def total(self, column: str, layer: str | None = None) -> float:
        layers = [layer] if layer else list(self.layer)
        return sum(self.layer.get(name, {}).get(column, 0) for name in layers)

    def count(self, column: str, layer: str | None = None) -> int:
        return int(self.total(column, layer))


_ROLLUP = ("spans", "f_schema", "content_filtered", "eval_score_sum", "eval_score_count")
_CHECKPOINT_KEYS = ("langgraph.checkpoint.ns", "langgraph.checkpoint.id",
                    "langgraph.checkpoint_id", "checkpoint.id")
_HEALTH_NAMES = ("health", "livez", "liveness", "readyz", "readiness")
def _int(conn: apsw.Connection, sql: str, bindings: tuple = ()) -> int:
    return int(scalar(conn, sql, bindings) or 0)  # type: ignore[arg-type]


def read_facts(conn: apsw.Connection) -> FileFacts:
    firsts = [scalar(conn, "SELECT min(start_ns) FROM traces"),
              scalar(conn, "SELECT min(time_ns) FROM logs"),
              scalar(conn, "SELECT min(first_ns) FROM metric_series")]
    known = [int(t) for t in firsts if t is not None]  # type: ignore[call-overload]
    traces, spans, cross = conn.execute(
        "SELECT count(*), coalesce(sum(span_count), 0), count(CASE WHEN instr(services, ',') "
        "THEN 1 END) FROM traces").fetchall()[0]
    logs, structured, log_services = conn.execute(
        "SELECT count(*), count(CASE WHEN attributes != '{}' OR event_name IS NOT NULL "
        "OR trace_id IS NOT NULL THEN 1 END), count(DISTINCT service) FROM logs").fetchall()[0]
    points = _int(conn, "SELECT count(*) FROM metric_points")
    observed = Observed(min(known) if known else None, latest_data_ns(conn), traces, spans,
                        logs, points)

    layer: dict[str, dict[str, float]] = {}
    sums = ", ".join(f"total({c})" for c in _ROLLUP)
    for row in conn.execute(f"SELECT layer, {sums} FROM layer_minutes GROUP BY layer"):
        layer[row[0]] = dict(zip(_ROLLUP, row[1:], strict=True))

    auth_failure_records = [(json.loads(attributes), message) for attributes, message in
                            conn.execute("SELECT attributes, status_message FROM spans "
                                         "WHERE layer = 'auth' AND failure = 'auth'")]

    retryable, retried = conn.execute(
        "SELECT count(*), count(CASE WHEN EXISTS (SELECT 1 FROM spans AS s "
        "  WHERE s.trace_id = f.trace_id AND s.parent_span_id = f.parent_span_id "
        "  AND s.name = f.name AND s.start_ns >= f.end_ns AND s.span_id != f.span_id) "
        "THEN 1 END) FROM spans AS f WHERE f.failure IS NOT NULL AND f.failure != 'auth' "
        "AND f.parent_span_id IS NOT NULL").fetchall()[0]
    degraded, completed = conn.execute(
        "SELECT count(*), count(CASE WHEN r.status_code != 2 AND r.failure IS NULL THEN 1 END) "
        "FROM traces AS t JOIN spans AS r ON r.trace_id = t.trace_id "
        "AND r.span_id = t.root_span_id WHERE t.error_count > 0 AND EXISTS (SELECT 1 "
        "FROM spans AS s WHERE s.trace_id = t.trace_id AND s.parent_span_id IS NOT NULL "
        "AND s.failure IS NOT NULL)").fetchall()[0]
    # A plain text search first: most memory spans have no checkpoint key to parse for.
    keyed = " OR ".join(f"attributes -> '$.\"{k}\"' IS NOT NULL" for k in _CHECKPOINT_KEYS)
    checkpoints, checkpoint_failures = conn.execute(
        "SELECT count(*), count(failure) FROM spans WHERE layer = 'memory' "
        f"AND (instr(lower(name), 'checkpoint') OR (instr(attributes, 'checkpoint') "
        f"AND ({keyed})))").fetchall()[0]
    # A probe is a request of its own: its span is a trace's root.
    health = " OR ".join(f"root_name LIKE '%{word}%'" for word in _HEALTH_NAMES)

    return FileFacts(
        observed=observed,
        services=[r[0] for r in conn.execute(
            "SELECT service FROM traces WHERE service IS NOT NULL GROUP BY service "
            "ORDER BY sum(span_count) DESC, service LIMIT 3")],
        service_count=_int(conn, "SELECT count(DISTINCT service) FROM resources"),
        cross_service_traces=cross,
        structured_logs=structured,
        log_services=log_services,
        metric_names=_int(conn, "SELECT count(*) FROM metric_names"),
        layer=layer,
        findings={(k, d, p): n for k, d, p, n in conn.execute(
            "SELECT kind, CASE WHEN echo THEN 'echo' ELSE direction END AS side, pattern, "
            "count(*) FROM findings GROUP BY kind, side, pattern")},
        auth_failure_records=auth_failure_records,
        audit=dict(conn.execute("SELECT reason, sum(count) FROM audit GROUP BY reason")),
        alerts_firing=[r[0] for r in conn.execute(
            "SELECT rule FROM alerts WHERE state = 'firing' ORDER BY started_ns, rule")],
        alerts_resolved=count_state(conn, "resolved"),
        retryable=retryable,
        retried=retried,
        degraded_runs=degraded,
        completed_runs=completed,
        checkpoints=checkpoints,
        checkpoint_failures=checkpoint_failures,
        health_checks=_int(conn, f"SELECT count(*) FROM traces WHERE {health}"),
        environments=[r[0] for r in conn.execute(
            "SELECT DISTINCT env FROM (SELECT coalesce("
            "attributes ->> '$.\"deployment.environment.name\"', "
            "attributes ->> '$.\"deployment.environment\"') AS env FROM resources) "
            "WHERE env IS NOT NULL ORDER BY env LIMIT 5")],
    )
