"""OTLP's JSON encoding of Export requests, to and from protobuf.

OTLP/JSON is protobuf's canonical JSON mapping with one exception: trace and span ids are
hex strings, not base64. Enums are integers and 64-bit integers may be strings; readers
ignore unknown fields and accept both lowerCamelCase and the original field names. See
https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

REQUESTS: dict[str, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}

# Every bytes field of the OTLP data model that holds an id (spans, links, log records,
# exemplars); no other field has these names.
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id",
                        "parent_span_id"})


def _convert_ids(node: Any, convert) -> Any:
    if isinstance(node, dict):
        return {k: convert(k, v) if k in _ID_FIELDS and isinstance(v, str)
                else _convert_ids(v, convert) for k, v in node.items()}
    if isinstance(node, list):
        return [_convert_ids(v, convert) for v in node]
    return node


def _hex_to_b64(key: str, value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError:
        raise ValueError(f"{key} {value[:40]!r} is not a hex string") from None


def _b64_to_hex(key: str, value: str) -> str:
    return base64.b64decode(value).hex()


def parse_message(signal: str, document: Any) -> Message:
    """A decoded JSON document (dict) -> the signal's Export request message.

    Raises ValueError with a message fit for the user when it is not a valid request.
    """
    if not isinstance(document, dict):
        raise ValueError("an OTLP/JSON request must be a JSON object")
    message = REQUESTS[signal]()
    try:
        json_format.ParseDict(_convert_ids(document, _hex_to_b64), message,
                              ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, RecursionError) as e:
        raise ValueError(f"not a valid OTLP/JSON {signal} request: {e}") from None
    return message


def read_request(signal: str, body: bytes) -> Message:
    """An OTLP/JSON request body -> the signal's Export request message."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e}") from None
    return parse_message(signal, document)


def parse_request(signal: str, body: bytes) -> bytes:
    """An OTLP/JSON request body -> the serialized protobuf Export request."""
    return read_request(signal, body).SerializeToString()


def to_json(message: Message) -> dict:
    """A protobuf OTLP message -> its OTLP/JSON form (hex ids, integer enums)."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    return _convert_ids(document, _b64_to_hex)
