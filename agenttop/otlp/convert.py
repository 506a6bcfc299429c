"""Decoded OTLP requests -> batches of rows for the store.

This is the ingest hot path: every span passes through ``spans_batch`` once, so it is
written for speed (plain loops, local names). Each table's rows are encoded as one JSON
array per request, with JSON-typed columns (attributes, events, ...) embedded as objects:
one ``orjson`` call per table instead of several per row, and a compact form to hold in the
writer's queue. Items that cannot be stored (malformed ids, inconsistent histograms) are
counted and described for OTLP partial success; the rest of the request is kept.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import orjson

from agenttop.analysis.cost import DEFAULT_PRICES, PriceBook, Tokens
from agenttop.analysis.layers import classify, named_call, normalise
from agenttop.analysis.quality import signals
from agenttop.analysis.scan import Scanner, direction_of
from agenttop.store.redaction import DEFAULT_POLICY, ScanPolicy, pii_digest
from agenttop.store.rollups import TOKEN_KINDS
from agenttop.store.rows import (
    OLDEST_PLAUSIBLE_NS,
    SKEW_TOLERANCE_NS,
    Batch,
    FindingRow,
    LogRecordRow,
    PointRow,
    ResourceRow,
    SpanRow,
)

MAX_DEPTH = 32
DEPTH_MARKER = f"[truncated: nested deeper than {MAX_DEPTH}]"
INT64_MAX = 2**63 - 1
UNKNOWN_SERVICE = "unknown_service"
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
# Limits on what one span may carry, so one hostile or buggy client cannot make a row (or
# the PII scan over it) arbitrarily large. Strings longer than the value limit keep their
# head and end in a marker; items past a count cap are dropped and counted in the span's
# ``dropped_counts`` under ``agenttop.<what>``.
MAX_VALUE_BYTES = 64 * 1024
MAX_ATTRIBUTES = 1000
MAX_EVENTS = 1000
MAX_LINKS = 1000

def dumps(value: Any) -> str:
    # Stored as TEXT, not BLOB: SQLite >= 3.45 would read a BLOB as binary JSONB.
    return orjson.dumps(value).decode()


_CUT = re.compile(r"…\[truncated [\d,]+ bytes\]\Z")


def clip(text: str, limit: int = MAX_VALUE_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character boundary), plus a marker
    saying how many bytes were cut; returned as is when it fits, or when it was cut already
    (a re-imported export: cutting again would replace the count of bytes lost)."""
    if len(text) <= limit >> 2:  # a character is at most 4 bytes: fits for sure
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    marked = _CUT.search(text)
    if marked and len(text[:marked.start()].encode("utf-8", "surrogatepass")) <= limit:
        return text
    head = data[:limit].decode("utf-8", "ignore")
    cut = len(data) - len(head.encode("utf-8", "surrogatepass"))
    return f"{head}…[truncated {cut:,} bytes]"


def any_value(v: Any, depth: int = 0, limit: int = MAX_VALUE_BYTES) -> Any:
    """An OTLP AnyValue as plain JSON-able Python; nesting is capped at MAX_DEPTH, strings
    (and bytes, base64-encoded) at ``limit`` bytes."""
    which = v.WhichOneof("value")
    if which == "string_value":
        text = v.string_value
        return text if len(text) <= limit >> 2 else clip(text, limit)
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which is None:
        return None
    if depth >= MAX_DEPTH:
        return DEPTH_MARKER
    if which == "array_value":
        return [any_value(x, depth + 1, limit) for x in v.array_value.values]
    if which == "kvlist_value":
        return {clip(kv.key, limit): any_value(kv.value, depth + 1, limit)
                for kv in v.kvlist_value.values}
    return clip(base64.b64encode(v.bytes_value).decode("ascii"), limit)


def attributes(kvs: Any, limit: int = MAX_VALUE_BYTES) -> dict[str, Any]:
    quick = limit >> 2
    return {(key if len(key := kv.key) <= quick else clip(key, limit)): any_value(
        kv.value, 0, limit) for kv in kvs}


def _capped(items: Any, cap: int, what: str, dropped: dict[str, int]) -> Any:
    """The first ``cap`` of a repeated field; the rest are counted in ``dropped``."""
    if len(items) <= cap:
        return items
    dropped[what] = dropped.get(what, 0) + len(items) - cap
    return items[:cap]


# Attributes that name a network endpoint: an IP address there is where a call went (a
# model server, a proxy), not someone's personal data. Other PII in them is still found.
_ENDPOINT_PREFIXES = ("server.", "client.", "network.", "url.", "http.url", "net.peer.",
                      "net.host.")
_ENDPOINT_SUFFIXES = ("api_base", "base_url")
_NOT_IPS = frozenset({"ipv4"})
_NOTHING: frozenset[str] = frozenset()


class Findings:
    """Scans one request's text for PII and injection; collects ``findings`` rows.

    Values are replaced by their redacted form (unless the scanner keeps PII), so raw PII
    never reaches a row, and so never the database file or its WAL.
    """

    __slots__ = ("scanner", "rows", "received_ns", "key")

    def __init__(self, policy: ScanPolicy, received_ns: int) -> None:
        self.scanner = scanner(policy.redact, policy.ignore)
        self.key = policy.key
        self.rows: list[FindingRow] = []
        self.received_ns = received_ns

    def attributes(self, attrs: dict[str, Any], where: tuple, prefix: str = "",
                   direction: str = "") -> tuple[dict[str, Any], int]:
        """Scan every string in ``attrs``; returns the (possibly redacted) dict and hit count."""
        found = 0
        for key, value in attrs.items():
            if isinstance(value, str):
                if len(value) < 6:  # nothing any pattern matches is shorter
                    continue
            elif not isinstance(value, list | dict):
                continue
            side = direction or direction_of(key)
            new, hits = self.scanner.scan_value(
                value, check_injection=side == "input",
                skip=_NOT_IPS if key.startswith(_ENDPOINT_PREFIXES)
                or key.endswith(_ENDPOINT_SUFFIXES) else _NOTHING)
            if hits:
                if new is not value:
                    attrs[key] = new
                found += self._record(hits, where, prefix + key, side)
        return attrs, found

    def text(self, value: str, where: tuple, location: str, direction: str = "",
             check_injection: bool = False) -> tuple[str, int]:
        if len(value) < 6:
            return value, 0
        new, hits = self.scanner.scan_text(value, check_injection=check_injection)
        if not hits:
            return value, 0
        return new, self._record([("", h) for h in hits], where, location, direction)

    def _record(self, hits: list, where: tuple, location: str, direction: str) -> int:
        trace_id, span_id, signal, service, time_ns = where
        for path, hit in hits:
            at = location if not path else (
                f"{location}{path}" if path.startswith("[") else f"{location}.{path}")
            self.rows.append(FindingRow(
                kind=hit.kind, pattern=hit.pattern, trace_id=trace_id, span_id=span_id,
                signal=signal, location=at, position=hit.start, direction=direction,
                excerpt=hit.excerpt, service=service, time_ns=time_ns,
                received_ns=self.received_ns,
                digest=pii_digest(self.key, hit.pattern, hit.value) if hit.value else None))
        return len(hits)


_SCANNERS: dict[tuple[bool, frozenset[str]], Scanner] = {}


def scanner(redact: bool = True, ignore: frozenset[str] = frozenset()) -> Scanner:
    """One Scanner per process and setting: building its pattern tables is not free."""
    if (redact, ignore) not in _SCANNERS:
        _SCANNERS[redact, ignore] = Scanner(redact=redact, ignore=ignore)
    return _SCANNERS[redact, ignore]


def _ns(value: int) -> int:
    # OTLP times are fixed64; SQLite integers are signed 64-bit.
    return value if value <= INT64_MAX else INT64_MAX


def _resource(resources: list, resource: Any, received_ns: int,
              limit: int = MAX_VALUE_BYTES) -> tuple[int, str]:
    attrs = attributes(resource.attributes, limit)
    service = attrs.get("service.name")
    service = service if isinstance(service, str) and service else UNKNOWN_SERVICE
    encoded = orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS)
    # A content hash as the key: the same resource gets the same id from any request or
    # process, with no lookup and no shared counter between decoder and writer.
    resource_id = int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest()) >> 1
    resources.append(ResourceRow(resource_id=resource_id, service=service,
                                 attributes=orjson.Fragment(encoded), first_seen_ns=received_ns))
    return resource_id, service


def fingerprint(*parts: str | int | bytes) -> int:
    """A 63-bit hash of what identifies a received item: the same item sent again (by a
    retrying exporter, or in a file imported twice) gets the same one."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"\x00")
    return int.from_bytes(digest.digest()) >> 1


def _scope_name(scope: Any) -> str:
    return scope.name if not scope.version else f"{scope.name}@{scope.version}"


def _price(genai: dict[str, Any], prices: PriceBook, start_ns: int) -> float | None:
    """A model call's cost, noted in its GenAI fields (``cost_usd`` and where the price
    came from, or ``unpriced``); None when it has no model and tokens, or no price."""
    model = genai.get("model")
    tokens = Tokens.reported(*(genai.get(f"{kind}_tokens") or 0 for kind in TOKEN_KINDS))
    if not model or not (tokens.input or tokens.output):
        return None
    cost = prices.cost(genai.get("provider"), model, tokens, start_ns)
    if cost is None:
        genai["unpriced"] = True
        return None
    genai["cost_usd"] = cost.usd
    genai["price_source"] = cost.source
    return cost.usd


def spans_batch(request: Any, received_ns: int, policy: ScanPolicy = DEFAULT_POLICY,
                max_value_bytes: int = MAX_VALUE_BYTES, prices: PriceBook = DEFAULT_PRICES
                ) -> Batch:
    """Rows for an ExportTraceServiceRequest, clipped to the limits, then scanned for PII and
    injection; model calls priced with ``prices``."""
    limit = max_value_bytes
    batch = Batch("traces")
    ahead = received_ns + SKEW_TOLERANCE_NS
    found = Findings(policy, received_ns)
    rows: list = []
    resources: list = []
    trace_ids = batch.trace_ids
    for rs in request.resource_spans:
        resource_id, service = _resource(resources, rs.resource, received_ns, limit)
        for ss in rs.scope_spans:
            scope = _scope_name(ss.scope)
            for span in ss.spans:
                tid = span.trace_id
                sid = span.span_id
                pid = span.parent_span_id
                if len(tid) != 16 or tid == _ZERO_TRACE:
                    batch.reject(f"trace_id must be 16 non-zero bytes (got {len(tid)})")
                    continue
                if len(sid) != 8 or sid == _ZERO_SPAN:
                    batch.reject(f"span_id must be 8 non-zero bytes (got {len(sid)})")
                    continue
                if pid and (len(pid) != 8):
                    batch.reject(f"parent_span_id must be empty or 8 bytes (got {len(pid)})")
                    continue
                start = _ns(span.start_time_unix_nano)
                end = _ns(span.end_time_unix_nano) or start
                if end < start:
                    end = start
                if start > ahead or start < OLDEST_PLAUSIBLE_NS:
                    batch.skewed += 1
                trace_id = tid.hex()
                status = span.status
                code = status.code if 0 <= status.code <= 2 else 0
                ours: dict[str, int] = {}
                attrs = attributes(
                    _capped(span.attributes, MAX_ATTRIBUTES, "agenttop.attributes", ours), limit)
                events = [
                    {
                        "name": clip(e.name, limit),
                        "time_ns": _ns(e.time_unix_nano),
                        "attributes": attributes(_capped(
                            e.attributes, MAX_ATTRIBUTES, "agenttop.event_attributes", ours),
                            limit),
                    }
                    for e in _capped(span.events, MAX_EVENTS, "agenttop.events", ours)
                ]
                links = [
                    {
                        "trace_id": link.trace_id.hex(),
                        "span_id": link.span_id.hex(),
                        "trace_state": clip(link.trace_state, limit),
                        "attributes": attributes(_capped(
                            link.attributes, MAX_ATTRIBUTES, "agenttop.link_attributes", ours),
                            limit),
                    }
                    for link in _capped(span.links, MAX_LINKS, "agenttop.links", ours)
                ]
                dropped = None
                if span.dropped_attributes_count or span.dropped_events_count or (
                    span.dropped_links_count
                ):
                    dropped = {
                        "attributes": span.dropped_attributes_count,
                        "events": span.dropped_events_count,
                        "links": span.dropped_links_count,
                    }
                if ours:
                    dropped = {**(dropped or {}), **ours}
                parent = pid.hex() if pid and pid != _ZERO_SPAN else None
                layer, failure = classify(
                    span.name, span.kind, parent is None, code, attrs, events, status.message
                )
                span_id = sid.hex()
                where = (trace_id, span_id, "span", service, start)
                name, hits = found.text(clip(span.name, limit), where, "name")
                message, more = found.text(clip(status.message, limit), where, "status_message")
                hits += more
                attrs, more = found.attributes(attrs, where)
                hits += more
                for i, event in enumerate(events):
                    if event["attributes"]:
                        _, more = found.attributes(
                            event["attributes"], where, f"events[{i}].{event['name']}:",
                            direction_of(event["name"]),
                        )
                        hits += more
                genai = normalise(attrs)
                if "model" not in genai and span.kind == 3:
                    named = named_call(span.name)  # a failed call may have only its name
                    if named is not None:
                        genai.setdefault("operation", named[0].lower())
                        genai["model"] = named[1]
                quality = signals(layer, attrs, events, genai)
                if quality:
                    genai.update(quality)
                cost = _price(genai, prices, start) if "model" in genai else None
                trace_ids.add(trace_id)
                rows.append(SpanRow(
                    trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name,
                    kind=span.kind, service=service, resource_id=resource_id, scope=scope,
                    start_ns=start, end_ns=end, duration_ns=end - start, status_code=code,
                    status_message=message, layer=layer, failure=failure, attributes=attrs,
                    events=events, links=links, trace_state=span.trace_state,
                    flags=span.flags, dropped_counts=dropped, received_ns=received_ns,
                    genai=genai or None, input_tokens=genai.get("input_tokens"),
                    output_tokens=genai.get("output_tokens"), finding_count=hits,
                    cost_usd=cost,
                ))
    return batch.seal("spans", rows, resources, found.rows)


def logs_batch(request: Any, received_ns: int, policy: ScanPolicy = DEFAULT_POLICY,
               max_value_bytes: int = MAX_VALUE_BYTES) -> Batch:
    """Rows for an ExportLogsServiceRequest, clipped to the value limit, then scanned for PII
    and injection."""
    limit = max_value_bytes
    batch = Batch("logs")
    ahead = received_ns + SKEW_TOLERANCE_NS
    found = Findings(policy, received_ns)
    rows: list = []
    resources: list = []
    for rl in request.resource_logs:
        resource_id, service = _resource(resources, rl.resource, received_ns, limit)
        for sl in rl.scope_logs:
            scope = _scope_name(sl.scope)
            for rec in sl.log_records:
                tid = rec.trace_id
                sid = rec.span_id
                if tid and len(tid) != 16:
                    batch.reject(f"trace_id must be empty or 16 bytes (got {len(tid)})")
                    continue
                if sid and len(sid) != 8:
                    batch.reject(f"span_id must be empty or 8 bytes (got {len(sid)})")
                    continue
                observed = _ns(rec.observed_time_unix_nano)
                time_ns = _ns(rec.time_unix_nano) or observed or received_ns
                if time_ns > ahead or time_ns < OLDEST_PLAUSIBLE_NS:
                    batch.skewed += 1
                trace_id = tid.hex() if tid and tid != _ZERO_TRACE else None
                span_id = sid.hex() if sid and sid != _ZERO_SPAN else None
                where = (trace_id, span_id, "log", service, time_ns)
                # GenAI content events say by their name whose words they carry.
                direction = direction_of(rec.event_name) if rec.event_name else ""
                body = any_value(rec.body, 0, limit) if rec.HasField("body") else None
                if isinstance(body, str):
                    body, _ = found.text(body, where, "body", direction,
                                         check_injection=direction == "input")
                elif body is not None:
                    scanned, _ = found.attributes({"body": body}, where, "", direction)
                    body = dumps(scanned["body"])
                attrs, _ = found.attributes(attributes(rec.attributes, limit), where,
                                            "attributes.")
                rows.append(LogRecordRow(
                    time_ns=time_ns, observed_ns=observed or received_ns,
                    severity_number=rec.severity_number, severity_text=rec.severity_text,
                    body=body, trace_id=trace_id, span_id=span_id,
                    event_name=rec.event_name or None, service=service,
                    resource_id=resource_id, scope=scope, attributes=attrs, flags=rec.flags,
                    received_ns=received_ns,
                    fingerprint=fingerprint(resource_id, scope, rec.SerializeToString()),
                ))
    return batch.seal("logs", rows, resources, found.rows)


def _number(point: Any) -> int | float | None:
    which = point.WhichOneof("value")
    return None if which is None else getattr(point, which)


def _opt(point: Any, name: str) -> float | None:
    return getattr(point, name) if point.HasField(name) else None


def metrics_batch(request: Any, received_ns: int, max_value_bytes: int = MAX_VALUE_BYTES) -> Batch:
    """Rows for an ExportMetricsServiceRequest: one row per data point, every point type."""
    limit = max_value_bytes
    batch = Batch("metrics")
    rows: list = []
    resources: list = []
    for rm in request.resource_metrics:
        resource_id, service = _resource(resources, rm.resource, received_ns, limit)
        for sm in rm.scope_metrics:
            scope = _scope_name(sm.scope)
            for metric in sm.metrics:
                which = metric.WhichOneof("data")
                if which is None:
                    continue
                data = getattr(metric, which)
                if not metric.name:
                    for _ in data.data_points:
                        batch.reject("metric name is empty")
                    continue
                temporality = getattr(data, "aggregation_temporality", None)
                monotonic = int(data.is_monotonic) if which == "sum" else None
                for p in data.data_points:
                    values: dict[str, Any]
                    if which in ("gauge", "sum"):
                        values = {"value": _number(p)}
                    elif which == "histogram":
                        bounds = list(p.explicit_bounds)
                        counts = list(p.bucket_counts)
                        if counts and len(counts) != len(bounds) + 1:
                            batch.reject("histogram bucket_counts must have one more entry than "
                                         "explicit_bounds")
                            continue
                        values = {"count": p.count, "sum": _opt(p, "sum"), "min": _opt(p, "min"),
                                  "max": _opt(p, "max"), "bounds": bounds,
                                  "bucket_counts": counts}
                    elif which == "exponential_histogram":
                        values = {"count": p.count, "sum": _opt(p, "sum"), "min": _opt(p, "min"),
                                  "max": _opt(p, "max"), "scale": p.scale,
                                  "zero_count": p.zero_count, "zero_threshold": p.zero_threshold,
                                  "positive_offset": p.positive.offset,
                                  "positive_counts": list(p.positive.bucket_counts),
                                  "negative_offset": p.negative.offset,
                                  "negative_counts": list(p.negative.bucket_counts)}
                    else:  # summary
                        values = {"count": p.count, "sum": p.sum, "quantiles": [
                            [q.quantile, q.value] for q in p.quantile_values]}
                    rows.append(PointRow(
                        name=metric.name, description=metric.description, unit=metric.unit,
                        type=which, temporality=temporality, monotonic=monotonic,
                        service=service, resource_id=resource_id, scope=scope,
                        start_ns=_ns(p.start_time_unix_nano),
                        time_ns=_ns(p.time_unix_nano) or received_ns,
                        # Sorted keys: a series is the same whatever order they came in.
                        attributes=dict(sorted(attributes(p.attributes, limit).items())),
                        flags=p.flags,
                        received_ns=received_ns, fingerprint=fingerprint(
                            resource_id, scope, metric.name, metric.unit, which,
                            p.SerializeToString()),
                        **values,
                    ))
    return batch.seal("metric_points", rows, resources)
