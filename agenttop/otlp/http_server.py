"""OTLP/HTTP on aiohttp: ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``, and the
probes ``GET /healthz`` (the process is up) and ``/readyz`` (it can take data now).

It runs on the event loop of the gRPC server and hands bodies to the same ``Receiver``, so
the token, the body budget, decoding, ack-after-commit and partial success are the same
on both transports. Bodies are protobuf or OTLP/JSON, gzip-compressed or not (inflated in
the decoding workers, never in the event loop), and every answer is in the request's
content type: the Export response, or a ``google.rpc.Status`` for an error, as the OTLP
specification asks. Exporters retry 503 (with ``Retry-After``) and give up on the other
errors.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from google.protobuf.message import Message
from google.rpc import status_pb2

from agenttop.config import parse_address
from agenttop.otlp.otlp_json import to_json
from agenttop.otlp.receiver import (
    BUSY,
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

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ACCEPTED_TYPES = {PROTOBUF, "application/protobuf", JSON}
PATHS = {f"/v1/{name}": signal for name, signal in SIGNALS.items()}
_STATUSES = {NOT_AUTHENTICATED: 401, MALFORMED: 400, TOO_LARGE: 413, BUSY: 503, SLOW: 408}


class HttpReceiver:
    """The aiohttp application: the export routes and the probes."""

    def __init__(self, receiver: Receiver, *, max_message_bytes: int,
                 not_ready: Callable[[], str | None]) -> None:
        self.receiver = receiver
        self.max_message_bytes = max_message_bytes
        self.not_ready = not_ready  # why the receiver cannot take data now, or None
        self.responses: Counter[int] = Counter()  # answers to export requests, by status

    def app(self) -> web.Application:
        # Bodies larger than this are refused while being read (413), before any decoding.
        app = web.Application(client_max_size=self.max_message_bytes)
        for path, signal in PATHS.items():
            app.router.add_route("*", path, self._handler(signal))
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    def _handler(self, signal: Signal) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._export(signal, request)

        return handle

    async def _export(self, signal: Signal, request: web.Request) -> web.Response:
        content_type = request.content_type.lower()
        reply_type = content_type if content_type in ACCEPTED_TYPES else PROTOBUF
        if request.method != "POST":
            return self._error(405, f"{request.path} takes POST only", reply_type,
                               {"Allow": "POST"})
        peer = _peer(request)
        try:
            self.receiver.authenticate(signal, peer, request.headers.get("Authorization"))
        except Refused as e:
            return self._refusal(e, reply_type)
        if content_type not in ACCEPTED_TYPES:
            return self._error(415, f"Content-Type must be {PROTOBUF} or {JSON}, "
                               f"not {content_type}", reply_type)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity"):
            return self._error(415, f"Content-Encoding {encoding} is not supported; send gzip "
                               "or uncompressed bodies", reply_type)
        declared = request.content_length  # charged as such: the deadline holds it to it
        try:
            charge = await self.receiver.admit(declared)
        except Refused as e:
            return self._refusal(e, reply_type)
        try:
            body = await self.receiver.read_body(request.read(), signal, peer)
            charge = self.receiver.budget.resize(charge, len(body))
            response = await self.receiver.export(
                signal, body, peer, json=content_type == JSON,
                gunzip_max=self.max_message_bytes if encoding == "gzip" else None)
        except web.HTTPRequestEntityTooLarge:
            return self._refusal(self.receiver.refuse_too_large(
                signal, peer, f"the body is larger than {self.max_message_bytes:,} bytes"),
                reply_type)
        except Refused as e:
            return self._refusal(e, reply_type)
        finally:
            self.receiver.budget.release(charge)
        return self._reply(200, response, reply_type)

    def _reply(self, status: int, message: Message, content_type: str,
               headers: dict[str, str] | None = None) -> web.Response:
        self.responses[status] += 1
        body = (orjson.dumps(to_json(message)) if content_type == JSON
                else message.SerializeToString())
        return web.Response(status=status, body=body, content_type=content_type,
                            headers=headers)

    def _error(self, status: int, message: str, content_type: str,
               headers: dict[str, str] | None = None) -> web.Response:
        return self._reply(status, status_pb2.Status(message=message), content_type, headers)

    def _refusal(self, refused: Refused, content_type: str) -> web.Response:
        headers = {}
        if refused.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(refused.retry_after_s)))
        if refused.reason == NOT_AUTHENTICATED:
            headers["WWW-Authenticate"] = "Bearer"
        return self._error(_STATUSES[refused.reason], refused.message, content_type, headers)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "up"})

    async def _readyz(self, request: web.Request) -> web.Response:
        problem = self.not_ready()
        if problem is None:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready", "reason": problem}, status=503)

    def status(self) -> dict:
        return {"responses": {str(code): n for code, n in sorted(self.responses.items())}}


def _peer(request: web.Request) -> str:
    """The client's address in gRPC's form, so the audit table counts both alike."""
    return _peer_of(request.remote)


def _peer_of(host: object) -> str:
    host = str(host or "")
    if not host:
        return ""
    return f"ipv6:[{host}]" if ":" in host else f"ipv4:{host}"


class ServerLog:
    """The log aiohttp's request handler writes to, for one receiver.

    aiohttp logs a whole traceback for every request it cannot parse (a malformed header,
    say), before any token is checked: any client could fill the log with them. Here each
    is counted as a malformed call (and kept in the audit table) and said in one line, at
    most one every ``QUIET_S`` seconds; the next line says how many more there were.
    Everything else goes on to aiohttp's own logger.
    """

    QUIET_S = 10.0

    def __init__(self, receiver: Receiver, clock: Callable[[], float] = time.monotonic) -> None:
        self.receiver = receiver
        self.clock = clock
        self._logger = logging.getLogger("aiohttp.server")
        self._said_at: float | None = None
        self._unsaid = 0

    def exception(self, message: str, *args: object, exc_info: object = True,
                  **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._unparsable(args[0] if args else "", exc_info)
        else:
            self._logger.exception(message, *args, exc_info=exc_info, **kwargs)

    def debug(self, message: str, *args: object, exc_info: object = None,
              **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError):  # what aiohttp thinks is not HTTP
            self._unparsable(args[0] if args else "", exc_info)
        else:
            self._logger.debug(message, *args, exc_info=exc_info, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._logger, name)

    def _unparsable(self, host: object, error: HttpProcessingError) -> None:
        peer = _peer_of(host)
        self.receiver.refuse_unparsable(peer)
        now = self.clock()
        if self._said_at is not None and now - self._said_at < self.QUIET_S:
            self._unsaid += 1
            return
        more = f" (and {self._unsaid:,} more since the last such line)" if self._unsaid else ""
        reason = (error.message or type(error).__name__).strip().splitlines()[0]
        log.warning("malformed HTTP request from %s refused: %s%s", peer or "?", reason, more)
        self._said_at, self._unsaid = now, 0


def _listen(address: str) -> socket.socket:
    host, port = parse_address(address)
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except OSError as e:
        raise BindError(f"cannot listen on {address}: cannot resolve host ({e})") from None
    sock = socket.socket(family, kind, proto)
    try:
        # As asyncio does: a restart may bind while old connections are in TIME_WAIT, but
        # never while another server listens.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(socket.SOMAXCONN)
    except OSError as e:
        sock.close()
        raise BindError(f"cannot listen on {address}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


HEAD_TIMEOUT_S = 10.0  # a connection's first request head must arrive within this


class _HeadDeadline:
    """The protocol factory of the listening socket: aiohttp's request handler, closed when
    its connection has not sent one whole request head (line and headers) within
    ``HEAD_TIMEOUT_S`` of connecting. aiohttp has no such limit: a client trickling its
    headers (slowloris) would hold a connection for as long as it liked. Bodies have
    ``--body-timeout``; idle connections between requests, aiohttp's keep-alive timeout."""

    def __init__(self, factory: Callable[[], asyncio.Protocol]) -> None:
        self.factory = factory

    def __call__(self) -> asyncio.Protocol:
        handler = self.factory()
        asyncio.get_running_loop().call_later(HEAD_TIMEOUT_S, self._expire, handler)
        return handler

    @staticmethod
    def _expire(handler: Any) -> None:
        # _request_count: requests whose head was parsed on this connection (aiohttp 3.x).
        if getattr(handler, "_request_count", 1) == 0 and handler.transport is not None:
            handler.transport.close()


class _HeadDeadlineSite(web.SockSite):
    """``web.SockSite`` listening through ``_HeadDeadline``."""

    async def start(self) -> None:
        await web.BaseSite.start(self)
        self._server = await asyncio.get_running_loop().create_server(
            _HeadDeadline(self._runner.server), sock=self._sock, ssl=self._ssl_context,
            backlog=self._backlog)


async def start_http_server(
    http: HttpReceiver, address: str, *, ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = 10.0,
) -> tuple[web.AppRunner, int]:
    """Serve on ``address`` (host:port; port 0 picks a free one); returns the runner, whose
    ``cleanup()`` stops it after in-flight exports are answered, and the port.

    With ``ssl_context`` the port speaks HTTPS only.
    """
    sock = _listen(address)
    # Bodies are inflated by the decoding workers, within the size limit (aiohttp would do
    # it here, in the event loop); no access log: the receiver counts what it answers.
    runner = web.AppRunner(http.app(), auto_decompress=False, access_log=None,
                           shutdown_timeout=shutdown_timeout,
                           logger=ServerLog(http.receiver))
    try:
        await runner.setup()
        await _HeadDeadlineSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return runner, sock.getsockname()[1]
