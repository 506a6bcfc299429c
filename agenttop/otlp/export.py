"""Stored traces back to OTLP Export requests (``agenttop export``), and the log-record form
of findings that carries PII and injection findings through an export.

A trace is rebuilt from its rows as stored: spans with their resources (``resources``),
scopes (``name@version``), attributes, events, links, status, flags and trace state; its
logs with their bodies and attributes. Values are written as stored, so what was redacted
stays redacted; a log body that was a map or a list (stored as its compact JSON) is sent as
a map or a list again.

Findings are not OTLP data. They travel as log records named ``agenttop.finding``, one per
finding, with the finding's columns as ``agenttop.finding.*`` attributes: any OTLP backend
shows them as warnings on the trace, and ``agenttop import`` turns them back into findings
rows (``finding_row``), since the redacted values they were found in cannot be scanned
again. Exporting then importing into an empty database reproduces every stored row of the
trace except arrival times (``received_ns``, ``first_seen_ns``, ``updated_ns``), row ids,
and the limits agenttop applied itself (counts of items past its caps are added to the
span's OTLP dropped counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import apsw
import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from agenttop.store.rows import FindingRow
from agenttop.store.transfer import (
    resource_attributes,
    trace_findings,
    trace_logs_as_stored,
    trace_spans_as_stored,
)

FINDING_EVENT = "agenttop.finding"
_PREFIX = "agenttop.finding."
# Finding columns carried as attributes, with their types.
_FINDING_FIELDS = (("kind", str), ("pattern", str), ("signal", str), ("location", str),
                   ("position", int), ("direction", str), ("excerpt", str), ("echo", int))
# Fields an export from an older agenttop lacks, and their value then.
_FINDING_DEFAULTS = {"echo": 0}
_WARN = 13  # SEVERITY_NUMBER_WARN


def _any(value: Any, out: AnyValue) -> None:
    """A stored JSON value as the AnyValue it was decoded from (None: an empty AnyValue)."""
    if isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, list):
        out.array_value.SetInParent()  # an empty list is still an array
        for item in value:
            _any(item, out.array_value.values.add())
    elif isinstance(value, dict):
        out.kvlist_value.SetInParent()
        _attributes(value, out.kvlist_value.values)


def _attributes(values: dict[str, Any], out: Any) -> None:
    for key, value in values.items():
        kv: KeyValue = out.add()
        kv.key = key
        _any(value, kv.value)


def _scope(text: str) -> tuple[str, str]:
    """``name@version`` as stored -> (name, version); a name may hold "@" itself."""
    name, sep, version = text.rpartition("@")
    return (name, version) if sep and version else (text, "")


class _Grouper:
    """Items grouped by resource, then scope, in first-seen order, as OTLP nests them."""

    def __init__(self, containers: Any, scopes_field: str, items_field: str) -> None:
        self._containers = containers
        self._scopes_field = scopes_field
        self._items_field = items_field
        self._resources: dict[Any, Any] = {}
        self._scopes: dict[tuple[Any, str], Any] = {}

    def items(self, resource_key: Any, resource: dict[str, Any], scope: str) -> Any:
        container = self._resources.get(resource_key)
        if container is None:
            container = self._resources[resource_key] = self._containers.add()
            _attributes(resource, container.resource.attributes)
        scoped = self._scopes.get((resource_key, scope))
        if scoped is None:
            scoped = self._scopes[(resource_key, scope)] = getattr(
                container, self._scopes_field).add()
            scoped.scope.name, scoped.scope.version = _scope(scope)
        return getattr(scoped, self._items_field)


def trace_request(conn: apsw.Connection, trace_ids: Sequence[str]) -> ExportTraceServiceRequest:
    """The spans of ``trace_ids`` (lowercase hex), in the order they were stored."""
    request = ExportTraceServiceRequest()
    spans = trace_spans_as_stored(conn, trace_ids)
    resources = resource_attributes(conn, (s.resource_id for s in spans))
    groups = _Grouper(request.resource_spans, "scope_spans", "spans")
    for row in spans:
        span = groups.items(row.resource_id, resources.get(row.resource_id, {}),
                            row.scope).add()
        span.trace_id = bytes.fromhex(row.trace_id)
        span.span_id = bytes.fromhex(row.span_id)
        if row.parent_span_id:
            span.parent_span_id = bytes.fromhex(row.parent_span_id)
        span.name = row.name
        span.kind = row.kind
        span.start_time_unix_nano = row.start_ns
        span.end_time_unix_nano = row.end_ns
        span.status.code = row.status_code
        span.status.message = row.status_message
        span.trace_state = row.trace_state
        span.flags = row.flags
        _attributes(row.attributes, span.attributes)
        for event in row.events:
            out = span.events.add()
            out.name = event["name"]
            out.time_unix_nano = event["time_ns"]
            _attributes(event["attributes"], out.attributes)
        for link in row.links:
            out = span.links.add()
            out.trace_id = bytes.fromhex(link["trace_id"])
            out.span_id = bytes.fromhex(link["span_id"])
            out.trace_state = link["trace_state"]
            _attributes(link["attributes"], out.attributes)
        if row.dropped_counts:
            counts = row.dropped_counts
            # What agenttop dropped past its own caps counts as dropped for the receiver too.
            span.dropped_attributes_count = (counts.get("attributes", 0)
                                             + counts.get("agenttop.attributes", 0))
            span.dropped_events_count = counts.get("events", 0) + counts.get("agenttop.events", 0)
            span.dropped_links_count = counts.get("links", 0) + counts.get("agenttop.links", 0)
    return request


def _body(text: str, out: AnyValue) -> None:
    """A stored body: a map or list body was stored as its compact JSON; send it as such.

    A string that happens to be exactly that JSON is sent as a map too, which stores the
    same text again."""
    if text[:1] in ("{", "["):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict | list) and orjson.dumps(value).decode() == text:
            _any(value, out)
            return
    out.string_value = text


def logs_request(conn: apsw.Connection, trace_ids: Sequence[str]) -> ExportLogsServiceRequest:
    """The log records of ``trace_ids``, then their findings as ``agenttop.finding`` records."""
    request = ExportLogsServiceRequest()
    logs = trace_logs_as_stored(conn, trace_ids)
    resources = resource_attributes(conn, (row.resource_id for row in logs))
    groups = _Grouper(request.resource_logs, "scope_logs", "log_records")
    for row in logs:
        record: LogRecord = groups.items(row.resource_id, resources.get(row.resource_id, {}),
                                         row.scope).add()
        record.time_unix_nano = row.time_ns
        record.observed_time_unix_nano = row.observed_ns
        record.severity_number = row.severity_number
        record.severity_text = row.severity_text
        if row.body is not None:
            _body(row.body, record.body)
        record.trace_id = bytes.fromhex(row.trace_id)
        if row.span_id:
            record.span_id = bytes.fromhex(row.span_id)
        if row.event_name:
            record.event_name = row.event_name
        record.flags = row.flags
        _attributes(row.attributes, record.attributes)
    for finding in trace_findings(conn, trace_ids):
        finding_record(finding, groups.items(("finding", finding.service),
                                             {"service.name": finding.service},
                                             "agenttop").add())
    return request


def finding_record(row: FindingRow, record: LogRecord) -> None:
    """Fill ``record`` from a finding."""
    record.time_unix_nano = record.observed_time_unix_nano = row.time_ns
    record.severity_number = _WARN
    record.severity_text = "WARN"
    record.event_name = FINDING_EVENT
    record.body.string_value = (f"{row.kind} finding ({row.pattern}) in {row.location}: "
                                f"{row.excerpt}")
    if row.trace_id:
        record.trace_id = bytes.fromhex(row.trace_id)
    if row.span_id:
        record.span_id = bytes.fromhex(row.span_id)
    _attributes({_PREFIX + name: getattr(row, name) for name, _ in _FINDING_FIELDS},
                record.attributes)


def finding_row(record: LogRecord, service: str, received_ns: int) -> FindingRow | None:
    """The finding an ``agenttop.finding`` record stands for, or None when ``record`` is
    not a complete one."""
    if record.event_name != FINDING_EVENT:
        return None
    attributes = {kv.key: kv.value for kv in record.attributes}
    values = {}
    for name, kind in _FINDING_FIELDS:
        value = attributes.get(_PREFIX + name)
        if value is None:
            if name not in _FINDING_DEFAULTS:
                return None
            values[name] = _FINDING_DEFAULTS[name]
            continue
        values[name] = value.int_value if kind is int else value.string_value
    if values["kind"] not in ("pii", "injection") or values["signal"] not in ("span", "log"):
        return None
    trace_id = record.trace_id.hex() if len(record.trace_id) == 16 else None
    span_id = record.span_id.hex() if len(record.span_id) == 8 else None
    return FindingRow(trace_id=trace_id, span_id=span_id, service=service,
                      time_ns=record.time_unix_nano, received_ns=received_ns, **values)
