"""OTLP/gRPC: TraceService, MetricsService and LogsService on one asyncio gRPC server, with
the standard health service (``grpc.health.v1.Health``) beside them.

Requests arrive as raw bytes (no deserializer is registered) so that an undecodable body
is answered with INVALID_ARGUMENT by us, rather than with a generic error by the library.
What happens to a body is ``agenttop.otlp.receiver``'s, shared with OTLP/HTTP; here its
refusals become statuses. When the writer's queue is full, or the bodies held in memory
reach their budget (``agenttop.otlp.budget``), it answers UNAVAILABLE with a RetryInfo
detail, which OTLP exporters honour by backing off and sending again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_status import rpc_status

from agenttop.config import bind_error
from agenttop.otlp.receiver import (
    MALFORMED,
    NOT_AUTHENTICATED,
    SIGNALS,
    SLOW,
    TOO_LARGE,
    BindError,
    Receiver,
    Refused,
    Signal,
)

NO_MESSAGE = "the call carried no request message"

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": SIGNALS["traces"],
    "opentelemetry.proto.collector.metrics.v1.MetricsService": SIGNALS["metrics"],
    "opentelemetry.proto.collector.logs.v1.LogsService": SIGNALS["logs"],
}


class _Status(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def retry_status(message: str, delay_s: float) -> _Status:
    """UNAVAILABLE with a RetryInfo saying when to come back.

    The delay is carried twice: in the standard status details (read by the Collector and
    the Go and Java exporters) and in the ``google.rpc.retryinfo-bin`` trailer (the only
    place the Python exporter looks).
    """
    nanos = int(delay_s * 1e9)
    retry = error_details_pb2.RetryInfo(
        retry_delay=Duration(seconds=nanos // 10**9, nanos=nanos % 10**9)
    )
    detail = AnyProto()
    detail.Pack(retry)
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    )
    metadata = (*status.trailing_metadata, ("google.rpc.retryinfo-bin", retry.SerializeToString()))
    return _Status(status.code, status.details, metadata)


_CODES = {
    NOT_AUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    SLOW: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _refusal_status(refused: Refused) -> _Status:
    if refused.retry_after_s is not None:
        return retry_status(refused.message, refused.retry_after_s)
    return _Status(_CODES[refused.reason], refused.message, ())


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def handlers(receiver: Receiver) -> list[grpc.GenericRpcHandler]:
    # Stream-unary on our side (the wire is the same for unary clients): a unary handler
    # is called only once the body is read, too late to bound the bodies in memory.
    return [
        grpc.method_handlers_generic_handler(
            service,
            {"Export": grpc.stream_unary_rpc_method_handler(_handler(receiver, signal))},
        )
        for service, signal in SERVICES.items()
    ]


def _handler(receiver: Receiver, signal: Signal) -> Callable[[Any, Any], Any]:
    async def export(_requests: Any, context: grpc.aio.ServicerContext) -> bytes:
        peer = context.peer() or ""
        try:
            receiver.authenticate(signal, peer, _authorization(context))
            charge = await receiver.admit()
            try:
                data = await receiver.read_body(context.read(), signal, peer)
                if data is grpc.aio.EOF:
                    # gRPC ends the stream without a message when the body is over
                    # max_receive_message_length, having answered RESOURCE_EXHAUSTED
                    # itself; as unary clients always send one message, that is the
                    # refusal to record (only a hand-made stream can send none).
                    receiver.refuse_too_large(signal, peer, NO_MESSAGE)
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, NO_MESSAGE)
                charge = receiver.budget.resize(charge, len(data))
                return (await receiver.export(signal, data, peer)).SerializeToString()
            finally:
                receiver.budget.release(charge)
        except Refused as e:
            # Not context.abort(): the exception it raises is kept in a reference cycle
            # with gRPC's call state and this frame, so every refused call's body and
            # decoded batch stayed in memory until Python's next full garbage collection
            # (100 MB and more under sustained overload). With the status set, the
            # returned message is discarded.
            status = _refusal_status(e)
            context.set_code(status.code)
            context.set_details(status.details)
            context.set_trailing_metadata(status.trailing_metadata)
            return b""

    return export


def _bind_problem(address: str) -> str:
    """Why ``address`` cannot be bound, in the operating system's words."""
    host, _, port = address.rpartition(":")
    try:
        error = bind_error(host.strip("[]"), int(port))
    except (OSError, ValueError) as e:
        return f"cannot resolve host ({e})"
    return (error.strerror or str(error)) if error else "the address is not available"


async def start_server(
    receiver: Receiver, address: str, *, max_message_bytes: int,
    credentials: grpc.ServerCredentials | None = None,
    health: health_aio.HealthServicer | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start serving on ``address`` (host:port; port 0 picks a free one); returns the port.

    With ``credentials`` the port speaks TLS only. ``health`` answers health checks on the
    same port, without the token.
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            # Without this Linux lets a second server bind the same port silently.
            ("grpc.so_reuseport", 0),
            # Bandwidth probing widens every stream's flow-control window, letting clients
            # push megabytes into calls not yet admitted (see agenttop.otlp.budget); without
            # it an unread stream buffers 64 KiB, and a read one still gets its whole body.
            ("grpc.http2.bdp_probe", 0),
        ],
    )
    server.add_generic_rpc_handlers(handlers(receiver))
    if health is not None:
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        port = 0
    if not port:
        raise BindError(f"cannot listen on {address}: {_bind_problem(address)}")
    await server.start()
    return server, port
