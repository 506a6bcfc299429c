"""Loading OTLP/JSON files into the database (``agenttop import``).

A file holds either one request (a JSON document, pretty-printed or not) or JSON lines,
one request per line, as ``agenttop export`` and the OpenTelemetry Collector's file
exporter write them. Each request's signal is told by its top-level key
(``resourceSpans``, ``resourceMetrics``, ``resourceLogs``).

Requests take the receiver's own path: OTLP/JSON -> protobuf (``otlp_json``) -> ``decode``
(classification, PII and injection scan, redaction, value limits) -> the ``Writer``
(group commit, trace summaries, rollups). A line that is not a valid request is reported
with its file and line number and skipped; every other line is still imported.

Findings exported as ``agenttop.finding`` log records (see ``export``) are set aside and
written once every file is loaded: for each span or log they describe, they replace the
findings a scan of the (already redacted) values produced, so that a re-imported trace has
exactly its original findings whatever order its lines came in.

Importing while ``agenttop serve`` writes the same file is safe: each side waits for
SQLite's write lock (busy timeout) and holds it for one short transaction at a time.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from agenttop.analysis.cost import DEFAULT_PRICES, PriceBook
from agenttop.otlp.convert import MAX_VALUE_BYTES, UNKNOWN_SERVICE
from agenttop.otlp.decode import decode
from agenttop.otlp.export import finding_row
from agenttop.otlp.otlp_json import parse_message
from agenttop.otlp.selection import EVERYTHING, Selection
from agenttop.store import open_writer
from agenttop.store.redaction import DEFAULT_POLICY, ScanPolicy
from agenttop.store.rows import Batch, FindingRow
from agenttop.store.transfer import replace_findings
from agenttop.store.writer import Writer

SIGNAL_KEYS = {
    "resourceSpans": "traces", "resource_spans": "traces",
    "resourceMetrics": "metrics", "resource_metrics": "metrics",
    "resourceLogs": "logs", "resource_logs": "logs",
}
_NOUNS = {"traces": "spans", "metrics": "points", "logs": "logs"}


@dataclass
class FileResult:
    """What one file added, and what it could not (one ``FILE:LINE: ...`` per problem)."""

    name: str
    requests: int = 0
    spans: int = 0
    points: int = 0
    logs: int = 0
    findings: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.name}: {self.requests:,} requests: {self.spans:,} spans, "
                f"{self.logs:,} log records, {self.points:,} data points, "
                f"{self.findings:,} findings")
        return text + (f"; {len(self.errors):,} problems" if self.errors else "")


def open_input(path: Path) -> IO[bytes]:
    """A file to read, uncompressed on the fly when it is gzip (by its first bytes, so a
    ``.json`` that is compressed, or a ``.gz`` that is not, reads right). OSError as open."""
    stream = path.open("rb")
    if stream.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    return stream


def documents(stream: IO[bytes]) -> Iterator[tuple[int, Any, str | None]]:
    """(line, request document, None) per request in the file, or (line, None, problem).

    JSON lines when the first non-blank line is a JSON value by itself; otherwise the whole
    file is one document.
    """
    line = 0
    first = b""
    for raw in stream:
        line += 1
        if raw.strip():
            first = raw
            break
    if not first:
        return
    try:
        yield line, orjson.loads(first), None
    except orjson.JSONDecodeError:
        start = line
        try:
            document = orjson.loads(first + stream.read())
        except orjson.JSONDecodeError as e:
            yield start + e.lineno - 1, None, f"not valid JSON: {e.msg} (column {e.colno})"
        else:
            yield start, document, None
        return
    for raw in stream:
        line += 1
        if not raw.strip():
            continue
        try:
            yield line, orjson.loads(raw), None
        except orjson.JSONDecodeError as e:
            yield line, None, f"not valid JSON: {e.msg} (column {e.colno})"


def signal_of(document: Any) -> str:
    """"traces", "metrics" or "logs", from the request's top-level key."""
    if not isinstance(document, dict):
        raise ValueError("an OTLP/JSON request must be a JSON object")
    found = {SIGNAL_KEYS[key] for key in document if key in SIGNAL_KEYS}
    if len(found) != 1:
        what = "more than one of" if found else "none of"
        raise ValueError(f"not an OTLP request: it has {what} resourceSpans, resourceMetrics "
                         "and resourceLogs")
    return found.pop()


def take_findings(request: Any, received_ns: int) -> list[FindingRow]:
    """Remove the ``agenttop.finding`` records from a logs request; their findings rows."""
    rows: list[FindingRow] = []
    emptied = []
    for r, rl in enumerate(request.resource_logs):
        service = next((kv.value.string_value for kv in rl.resource.attributes
                        if kv.key == "service.name"), "") or UNKNOWN_SERVICE
        before = len(rows)
        for sl in rl.scope_logs:
            taken = []
            for i, record in enumerate(sl.log_records):
                row = finding_row(record, service, received_ns)
                if row is not None:
                    rows.append(row)
                    taken.append(i)
            for i in reversed(taken):
                del sl.log_records[i]
        if len(rows) > before and not any(sl.log_records for sl in rl.scope_logs):
            emptied.append(r)  # a resource that only carried findings is not stored
    for r in reversed(emptied):
        del request.resource_logs[r]
    return rows


@dataclass
class _Pending:
    line: int
    batch: Batch
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def finished(self, error: BaseException | None) -> None:
        self.error = error
        self.done.set()


class Importer:
    """Loads files into one database through a ``Writer`` of its own; ``close()`` writes
    the findings set aside and closes the file."""

    def __init__(self, db: Path, *, policy: ScanPolicy = DEFAULT_POLICY,
                 max_value_bytes: int = MAX_VALUE_BYTES,
                 prices: PriceBook = DEFAULT_PRICES, selection: Selection = EVERYTHING
                 ) -> None:
        self.policy = policy
        self.selection = selection  # what of each request is loaded
        self.prices = prices
        self.max_value_bytes = max_value_bytes
        self._writer = Writer(open_writer(db))  # StoreError: the file cannot be used
        self._writer.start()
        self._findings: list[FindingRow] = []

    def load(self, stream: IO[bytes], name: str) -> FileResult:
        """Import every request of ``stream``; ``name`` is how problems name the file."""
        result = FileResult(name)
        pending: deque[_Pending] = deque()
        try:
            for line, document, problem in documents(stream):
                if problem is None:
                    try:
                        batch = self._decode(document, result)
                    except Exception as e:  # one bad line must not cost the others
                        problem = str(e)
                if problem is not None:
                    result.errors.append(f"{name}:{line}: {problem}")
                    continue
                result.requests += 1
                if batch.rejected:
                    result.errors.append(f"{name}:{line}: {batch.error_message}")
                if batch.size:
                    self._submit(_Pending(line, batch), pending, result)
        except OSError as e:
            result.errors.append(f"{name}: cannot read: {e.strerror or e}")
        finally:
            while pending:
                self._settle(pending.popleft(), result)
        if not result.requests and not result.errors:
            result.errors.append(f"{name}: no OTLP requests in the file")
        return result

    def load_requests(self, requests: Iterable[tuple[str, Any]], name: str) -> FileResult:
        """Import Export*ServiceRequest messages, (signal, request) each, as ``load`` does
        a file's lines."""
        result = FileResult(name)
        pending: deque[_Pending] = deque()
        try:
            for i, (signal, request) in enumerate(requests, 1):
                result.requests += 1
                batch = self._decode_request(signal, request, result)
                if batch.size:
                    self._submit(_Pending(i, batch), pending, result)
        finally:
            while pending:
                self._settle(pending.popleft(), result)
        return result

    def _decode(self, document: Any, result: FileResult) -> Batch:
        signal = signal_of(document)
        return self._decode_request(signal, parse_message(signal, document), result)

    def _decode_request(self, signal: str, request: Any, result: FileResult) -> Batch:
        received_ns = time.time_ns()
        found = take_findings(request, received_ns) if signal == "logs" else []
        # Exported findings name only their service: selected by time, not resource.
        found = [f for f in found if self.selection.covers(f.time_ns)]
        self.selection.apply(signal, request)
        batch = decode(signal, request.SerializeToString(), received_ns, self.policy,
                       self.max_value_bytes, prices=self.prices)
        self._findings += found
        result.findings += len(found)
        return batch

    def _submit(self, item: _Pending, pending: deque[_Pending], result: FileResult) -> None:
        # Decoding the next line goes on while the writer commits; past its queue's
        # bound, wait for the oldest batch instead.
        while not self._writer.try_submit(item.batch, item.finished):
            if not pending:
                raise RuntimeError("the writer is closed")
            self._settle(pending.popleft(), result)
        pending.append(item)

    @staticmethod
    def _settle(item: _Pending, result: FileResult) -> None:
        item.done.wait()
        if item.error is not None:
            result.errors.append(f"{result.name}:{item.line}: not written: {item.error}")
            return
        noun = _NOUNS[item.batch.kind]
        setattr(result, noun, getattr(result, noun) + item.batch.size)

    def close(self) -> str | None:
        """Write the findings set aside, then close; a problem doing so, or None."""
        problem = None
        try:
            if self._findings:
                self._writer.call(lambda conn: replace_findings(conn, self._findings)).result()
        except Exception as e:
            problem = f"findings not written: {e}"
        finally:
            self._writer.close()
        return problem
