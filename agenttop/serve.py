"""The receiver process: the store's writer and the OTLP servers, started and stopped together.

``Service`` is used by ``agenttop serve`` and, unchanged, by tests and benchmarks, so what
they exercise is what users run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable

from agenttop.analysis.alerts import AlertCommand, Rule, load_rules
from agenttop.analysis.monitor import AlertMonitor
from agenttop.config import ServeSettings, format_address, parse_address
from agenttop.otlp.audit import AuditLog
from agenttop.otlp.decode import DecoderPool
from agenttop.otlp.grpc_server import Receiver, start_server
from agenttop.store import open_writer
from agenttop.store.status import HEARTBEAT_S, write_heartbeat
from agenttop.store.writer import Writer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0


class TLSError(Exception):
    """A TLS file cannot be read; the message names it and says why."""


def _read(path, option: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TLSError(f"{option} {path}: cannot read it ({e.strerror or e})") from None
    if b"-----BEGIN" not in data:
        raise TLSError(f"{option} {path}: not a PEM file") from None
    return data


def server_credentials(settings: ServeSettings):
    """gRPC server credentials from the TLS options, or None for plaintext."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    import grpc

    cert = _read(settings.tls_cert, "--tls-cert")
    key = _read(settings.tls_key, "--tls-key")
    ca = _read(settings.tls_client_ca, "--tls-client-ca") if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable only from this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: ServeSettings) -> str | None:
    """Why listening as configured would let anyone write to the database, or None.

    Loopback is always fine; elsewhere clients must authenticate, with the token or with
    a client certificate (mutual TLS).
    """
    host, _ = parse_address(settings.grpc)
    if is_loopback(host) or settings.token is not None or settings.tls_client_ca is not None:
        return None
    return (f"refusing to listen on {settings.grpc} without --token: anyone who can reach it "
            "could write to your database; pass --token, or --insecure to do it anyway")


def describe_security(settings: ServeSettings) -> str:
    """For the start line: never the token itself."""
    parts = []
    if settings.tls_cert is not None:
        parts.append("mutual TLS" if settings.tls_client_ca is not None else "TLS")
    parts.append("token required" if settings.token is not None else "no token")
    return ", ".join(parts)


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
        self.receiver: Receiver | None = None
        self.audit: AuditLog | None = None
        self._server = None
        self._decoders: DecoderPool | None = None
        self._monitor_task: asyncio.Task | None = None
        self._heartbeat_task: asyncio.Task | None = None
        self.started_ns = time.time_ns()
        # What the heartbeat reports in the ``receiver`` row: part name -> a function
        # returning a JSON-ready dict. Parts add themselves as they start.
        self.status_sources: dict[str, Callable[[], dict]] = {}

    @property
    def grpc_address(self) -> str:
        host, _ = parse_address(self.settings.grpc)
        return format_address(host, self.grpc_port)

    async def start(self) -> None:
        """Open the database and listen; raises StoreError, BindError or TLSError (user message)."""
        credentials = server_credentials(self.settings)
        conn = open_writer(self.settings.db, synchronous=self.settings.sync.upper())
        self.writer = Writer(conn, max_pending=self.settings.queue_spans)
        self.writer.start()
        try:
            self._decoders = DecoderPool(self.settings.decoders,
                                         redact=not self.settings.keep_pii,
                                         max_value_bytes=self.settings.max_value_kb * 1024)
            await asyncio.to_thread(self._decoders.warm_up)
            self.audit = AuditLog(self.writer)
            token = self.settings.token.get_secret_value() if self.settings.token else None
            self.receiver = Receiver(self.writer, self._decoders, token=token,
                                     audit_log=self.audit)
            self._server, self.grpc_port = await start_server(
                self.receiver,
                self.settings.grpc,
                max_message_bytes=self.settings.max_message_bytes,
                credentials=credentials,
            )
            self.monitor = AlertMonitor(self.settings.db, self.writer, self.rules, self.on_alert)
            await asyncio.to_thread(self.monitor.restore)
            self.status_sources["receiver"] = self._receiver_status
            await self.heartbeat()
        except BaseException:
            await self.stop()
            raise
        self._monitor_task = asyncio.create_task(self._watch())
        self._heartbeat_task = asyncio.create_task(self._beat())

    def _receiver_status(self) -> dict:
        assert self.receiver is not None and self.writer is not None
        return {
            "grpc": self.grpc_address,
            "security": describe_security(self.settings),
            "unauthenticated": self.receiver.unauthenticated,
            "malformed": self.receiver.malformed,
            "busy_refusals": self.writer.stats.refused,
        }

    async def heartbeat(self, stopped: bool = False) -> None:
        """Write the ``receiver`` row now (see agenttop/store/status.py)."""
        assert self.writer is not None
        status = {}
        for name, source in self.status_sources.items():
            try:
                status[name] = source()
            except Exception:  # one part's report must not silence the others
                log.exception("status of %s failed", name)
        future = self.writer.call(lambda conn: write_heartbeat(
            conn, started_ns=self.started_ns, now_ns=time.time_ns(), status=status,
            stopped=stopped))
        await asyncio.wrap_future(future)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.heartbeat()
            except Exception:
                log.exception("heartbeat failed")

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
        for task in (self._monitor_task, self._heartbeat_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)
        if self._server is not None:
            await self._server.stop(SHUTDOWN_GRACE_S)
        if self.audit is not None:
            self.audit.close()
        if self._decoders is not None:
            await asyncio.to_thread(self._decoders.close)
        if self.writer is not None:
            if self._heartbeat_task is not None:
                try:
                    await self.heartbeat(stopped=True)
                except Exception:
                    log.exception("final heartbeat failed")
            await asyncio.to_thread(self.writer.close)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _json_logging() -> Callable[[], None]:
    """Send agenttop's messages (info and up) and others' warnings to stderr as JSON lines;
    returns the undo."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root, ours = logging.getLogger(), logging.getLogger("agenttop")
    saved = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours.setLevel(logging.INFO)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        ours.setLevel(saved[1])

    return undo


async def serve_forever(settings: ServeSettings, rules: list[Rule],
                        on_alert: AlertCommand | None = None, log_format: str = "text") -> None:
    """Run until SIGINT or SIGTERM (what ``agenttop serve`` does).

    ``log_format`` "json": the start and stop lines, alert transitions and warnings are
    JSON lines on stderr; "text": plain lines.
    """
    undo = _json_logging() if log_format == "json" else None

    def say(message: str) -> None:
        if undo is not None:
            log.info(message)
        else:
            print(f"agenttop serve: {message}", file=sys.stderr, flush=True)

    try:
        # Handlers first: a signal during start-up must still end in a clean stop. Without
        # them it would kill this process at once and orphan the decoder workers.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        service = Service(settings, rules, on_alert)
        await service.start()
        say(f"OTLP/gRPC on {service.grpc_address} ({describe_security(settings)})")
        say(f"writing {settings.db}")
        say(f"{len(rules)} alert rules from {settings.rules or 'the defaults'}")
        await stop.wait()
        say("stopping, flushing to disk")
        await service.stop()
    finally:
        if undo is not None:
            undo()


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
