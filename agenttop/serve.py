"""The receiver process: the store's writer and the OTLP servers, started and stopped together.

``Service`` is used by ``agenttop serve`` and, unchanged, by tests and benchmarks, so what
they exercise is what users run.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading

from agenttop.config import ServeSettings, format_address, parse_address
from agenttop.otlp.decode import DecoderPool
from agenttop.otlp.grpc_server import Receiver, start_server
from agenttop.store import open_writer
from agenttop.store.writer import Writer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0


class Service:
    """One running receiver: writer thread + gRPC server."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.writer: Writer | None = None
        self.grpc_port = 0
        self._server = None
        self._decoders: DecoderPool | None = None

    @property
    def grpc_address(self) -> str:
        host, _ = parse_address(self.settings.grpc)
        return format_address(host, self.grpc_port)

    async def start(self) -> None:
        """Open the database and listen; raises StoreError or BindError with a user message."""
        conn = open_writer(self.settings.db, synchronous=self.settings.sync.upper())
        self.writer = Writer(conn, max_pending=self.settings.queue_spans)
        self.writer.start()
        try:
            self._decoders = DecoderPool(self.settings.decoders)
            await asyncio.to_thread(self._decoders.warm_up)
            self._server, self.grpc_port = await start_server(
                Receiver(self.writer, self._decoders),
                self.settings.grpc,
                max_message_bytes=self.settings.max_message_bytes,
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop accepting, let in-flight exports commit, then flush and close the file."""
        if self._server is not None:
            await self._server.stop(SHUTDOWN_GRACE_S)
        if self._decoders is not None:
            await asyncio.to_thread(self._decoders.close)
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)


async def serve_forever(settings: ServeSettings) -> None:
    """Run until SIGINT or SIGTERM (what ``agenttop serve`` does)."""
    service = Service(settings)
    await service.start()
    print(f"agenttop serve: OTLP/gRPC on {service.grpc_address}", file=sys.stderr, flush=True)
    print(f"agenttop serve: writing {settings.db}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("agenttop serve: stopping, flushing to disk", file=sys.stderr, flush=True)
    await service.stop()


class BackgroundService:
    """A ``Service`` on its own event loop in a thread: for tests, benchmarks and ``run``."""

    def __init__(self, settings: ServeSettings) -> None:
        self.service = Service(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Service:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.service.start(), self._loop).result(30)
        return self.service

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
