"""The receiver process: the store's writer and the OTLP servers, started and stopped together.

``Service`` is used by ``agenttop serve`` and, unchanged, by tests and benchmarks, so what
they exercise is what users run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading

from agenttop.analysis.alerts import AlertCommand, Rule, load_rules
from agenttop.analysis.monitor import AlertMonitor
from agenttop.config import ServeSettings, format_address, parse_address
from agenttop.otlp.decode import DecoderPool
from agenttop.otlp.grpc_server import Receiver, start_server
from agenttop.store import open_writer
from agenttop.store.writer import Writer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0


class Service:
    """One running receiver: writer thread, decoders, gRPC server and alert monitor."""

    def __init__(self, settings: ServeSettings, rules: list[Rule] | None = None,
                 on_alert: AlertCommand | None = None) -> None:
        self.settings = settings
        self.rules = load_rules(settings.rules) if rules is None else rules
        self.on_alert = on_alert
        self.writer: Writer | None = None
        self.monitor: AlertMonitor | None = None
        self.grpc_port = 0
        self._server = None
        self._decoders: DecoderPool | None = None
        self._monitor_task: asyncio.Task | None = None

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
            self._decoders = DecoderPool(self.settings.decoders,
                                         redact=not self.settings.keep_pii)
            await asyncio.to_thread(self._decoders.warm_up)
            self._server, self.grpc_port = await start_server(
                Receiver(self.writer, self._decoders),
                self.settings.grpc,
                max_message_bytes=self.settings.max_message_bytes,
            )
            self.monitor = AlertMonitor(self.settings.db, self.writer, self.rules, self.on_alert)
            await asyncio.to_thread(self.monitor.restore)
        except BaseException:
            await self.stop()
            raise
        self._monitor_task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Evaluate alerts every few seconds; a failed round is logged, never fatal."""
        assert self.monitor is not None
        while True:
            await asyncio.sleep(self.settings.alert_interval_s)
            try:
                await asyncio.to_thread(self.monitor.tick)
            except Exception:
                log.exception("alert evaluation failed")

    async def stop(self) -> None:
        """Stop accepting, let in-flight exports commit, then flush and close the file."""
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor_task
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)
        if self._server is not None:
            await self._server.stop(SHUTDOWN_GRACE_S)
        if self._decoders is not None:
            await asyncio.to_thread(self._decoders.close)
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)


async def serve_forever(settings: ServeSettings, rules: list[Rule],
                        on_alert: AlertCommand | None = None) -> None:
    """Run until SIGINT or SIGTERM (what ``agenttop serve`` does)."""
    service = Service(settings, rules, on_alert)
    await service.start()
    print(f"agenttop serve: OTLP/gRPC on {service.grpc_address}", file=sys.stderr, flush=True)
    print(f"agenttop serve: writing {settings.db}", file=sys.stderr, flush=True)
    print(f"agenttop serve: {len(rules)} alert rules from {settings.rules or 'the defaults'}",
          file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("agenttop serve: stopping, flushing to disk", file=sys.stderr, flush=True)
    await service.stop()


class BackgroundService:
    """A ``Service`` on its own event loop in a thread: for tests, benchmarks and ``run``."""

    def __init__(self, settings: ServeSettings, rules: list[Rule] | None = None,
                 on_alert: AlertCommand | None = None) -> None:
        self.service = Service(settings, rules, on_alert)
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
