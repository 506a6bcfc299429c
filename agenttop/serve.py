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
import os
import re
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from agenttop.analysis.hooks import AlertCommand
from agenttop.analysis.monitor import AlertMonitor
from agenttop.analysis.prices import load_price_book
from agenttop.analysis.rules import Rule, load_rules
from agenttop.config import (
    ServeSettings,
    format_address,
    format_duration,
    parse_address,
    parse_forward_url,
)
from agenttop.otlp.audit import AuditLog
from agenttop.otlp.budget import BodyBudget
from agenttop.otlp.decode import DecoderPool
from agenttop.otlp.forward import Forwarder
from agenttop.otlp.grpc_server import SERVICES, start_server
from agenttop.otlp.http_server import HttpReceiver, start_http_server
from agenttop.otlp.receiver import Receiver
from agenttop.prometheus import HealthCollector, MetricsServer
from agenttop.store import StoreError, open_writer
from agenttop.store.lock import ReceiverLock
from agenttop.store.retention import Retention, prepare
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


def http_ssl_context(settings: ServeSettings) -> ssl.SSLContext | None:
    """HTTPS with the same certificate, key and client CA as gRPC, or None for plaintext.

    Call after ``server_credentials``, which reports unreadable files by name.
    """
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca is not None:
            context.load_verify_locations(cafile=settings.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as e:
        raise TLSError(f"--tls-cert {settings.tls_cert}, --tls-key {settings.tls_key}: "
                       f"cannot serve HTTPS with them ({e})") from None
    return context


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
    if settings.token is not None or settings.tls_client_ca is not None:
        return None
    for address, could in ((settings.grpc, "write to your database"),
                           (settings.http, "write to your database"),
                           (settings.prometheus, "read your agents' health")):
        if address is not None and not is_loopback(parse_address(address)[0]):
            return (f"refusing to listen on {address} without --token: anyone who can reach "
                    f"it could {could}; pass --token, or --insecure to do it anyway")
    return None


def describe_security(settings: ServeSettings) -> str:
    """For the start line: never the token itself."""
    parts = []
    if settings.tls_cert is not None:
        parts.append("mutual TLS" if settings.tls_client_ca is not None else "TLS")
    parts.append("token required" if settings.token is not None else "no token")
    return ", ".join(parts)


def describe_retention(settings: ServeSettings) -> str:
    """For the start line: "keeping 7d, under 100 MB"."""
    kept = ("keeping everything" if settings.retention_s is None
            else f"keeping {format_duration(settings.retention_s)}")
    return kept if settings.max_db_mb is None else f"{kept}, under {settings.max_db_mb} MB"


def _remove_new(db: Path, created: bool) -> None:
    """A start that failed (a port taken) leaves no database file it created behind."""
    if created:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.remove(f"{db}{suffix}")


class Service:
    """One running receiver: writer thread, decoders, gRPC and HTTP servers, alert monitor."""

    def __init__(self, settings: ServeSettings, rules: list[Rule] | None = None,
                 on_alert: AlertCommand | None = None) -> None:
        self.settings = settings
        self.rules = load_rules(settings.rules) if rules is None else rules
        self.prices = load_price_book(settings.prices)
        self.on_alert = on_alert
        self.writer: Writer | None = None
        self.monitor: AlertMonitor | None = None
        self.grpc_port = 0
        self.http_port = 0
        self.receiver: Receiver | None = None
        self.http: HttpReceiver | None = None
        self.forwarder: Forwarder | None = None
        self.metrics: MetricsServer | None = None  # --prometheus
        self.audit: AuditLog | None = None
        self._server = None
        self._http_runner = None
        self._health: health_aio.HealthServicer | None = None
        self._stopping = False
        self._last_write_ok: bool | None = None  # of the heartbeat; None: none written yet
        self._decoders: DecoderPool | None = None
        self._monitor_task: asyncio.Task | None = None
        self._heartbeat_task: asyncio.Task | None = None
        self.retention: Retention | None = None
        self.retention_note: str | None = None  # about the file's vacuum mode, for the user
        self._maintain_task: asyncio.Task | None = None
        self.started_ns = time.time_ns()
        # What the heartbeat reports in the ``receiver`` row: part name -> a function
        # returning a JSON-ready dict. Parts add themselves as they start.
        self.status_sources: dict[str, Callable[[], dict]] = {}
        self._lock = ReceiverLock(settings.db)
        # Set when the receiver cannot go on (its file was deleted): why, for the exit.
        self.fatal: str | None = None
        self.failed = asyncio.Event()
        self.created_directory = False  # the database's directory did not exist

    @property
    def grpc_address(self) -> str:
        host, _ = parse_address(self.settings.grpc)
        return format_address(host, self.grpc_port)

    @property
    def http_address(self) -> str | None:
        if self.settings.http is None:
            return None
        host, _ = parse_address(self.settings.http)
        return format_address(host, self.http_port)

    async def start(self) -> None:
        """Open the database and listen; raises StoreError, BindError or TLSError (user message)."""
        credentials = server_credentials(self.settings)
        ssl_context = (http_ssl_context(self.settings)
                       if self.settings.http or self.settings.prometheus else None)
        db = self.settings.db.expanduser()
        self.created_directory = not db.parent.exists()
        self._lock.acquire()  # one receiver per file; StoreError names the running one
        created = not db.exists()
        try:
            conn = open_writer(db, synchronous=self.settings.sync.upper())
        except BaseException:
            self._lock.release()
            _remove_new(db, created)
            raise
        max_db_bytes = self.settings.max_db_bytes
        prune = self.settings.retention_s is not None or max_db_bytes is not None
        try:
            self.retention_note = await asyncio.to_thread(
                prepare, conn, prune=prune, max_db_bytes=max_db_bytes)
        except BaseException:
            conn.close()
            self._lock.release()
            _remove_new(db, created)
            raise
        self.writer = Writer(conn, max_pending=self.settings.queue_spans)
        loop = asyncio.get_running_loop()
        self.writer.on_failing_change = lambda: loop.call_soon_threadsafe(
            lambda: loop.create_task(self._report_health()))
        self.writer.start()
        try:
            self.retention = Retention(self.writer, conn.filename, max_db_bytes=max_db_bytes,
                                       retention_s=self.settings.retention_s)
            self.status_sources["retention"] = self.retention.status
            self._decoders = DecoderPool(self.settings.decoders,
                                         policy=self.settings.scan_policy,
                                         prices=self.prices,
                                         max_value_bytes=self.settings.max_value_kb * 1024)
            await asyncio.to_thread(self._decoders.warm_up)
            self.audit = AuditLog(self.writer)
            token = self.settings.token.get_secret_value() if self.settings.token else None
            budget = BodyBudget(self.settings.max_inflight_bytes, self.settings.max_message_bytes)
            if self.settings.forward is not None:
                self.forwarder = Forwarder(parse_forward_url(self.settings.forward),
                                           self.settings.forward_headers,
                                           max_queue_bytes=self.settings.forward_queue_bytes)
                self.forwarder.start()
                self.status_sources["forward"] = self.forwarder.status
            self.receiver = Receiver(self.writer, self._decoders, budget=budget, token=token,
                                     audit_log=self.audit,
                                     body_timeout_s=self.settings.body_timeout_s,
                                     forward=self.forwarder.submit if self.forwarder else None)
            self._health = health_aio.HealthServicer()
            await self._report_health()  # NOT_SERVING until the first heartbeat
            self._server, self.grpc_port = await start_server(
                self.receiver,
                self.settings.grpc,
                max_message_bytes=self.settings.max_message_bytes,
                credentials=credentials,
                health=self._health,
            )
            if self.settings.http is not None:
                self.http = HttpReceiver(self.receiver,
                                         max_message_bytes=self.settings.max_message_bytes,
                                         not_ready=self.not_ready)
                self._http_runner, self.http_port = await start_http_server(
                    self.http, self.settings.http, ssl_context=ssl_context,
                    shutdown_timeout=SHUTDOWN_GRACE_S)
                self.status_sources["http"] = self._http_status
            if self.settings.prometheus is not None:
                self.metrics = MetricsServer(HealthCollector(self.settings.db, self),
                                             token=token, ssl_context=ssl_context)
                await self.metrics.start(self.settings.prometheus)
                self.status_sources["prometheus"] = self._prometheus_status
            self.monitor = AlertMonitor(self.settings.db, self.writer, self.rules, self.on_alert)
            await asyncio.to_thread(self.monitor.restore)
            self.status_sources["alerts"] = self.monitor.status
            self.status_sources["receiver"] = self._receiver_status
            await self.heartbeat()
        except BaseException:
            await self.stop()
            _remove_new(db, created)
            raise
        self._monitor_task = asyncio.create_task(self._watch())
        self._heartbeat_task = asyncio.create_task(self._beat())
        if prune:
            self._maintain_task = asyncio.create_task(self._maintain())

    def _receiver_status(self) -> dict:
        assert self.receiver is not None and self.writer is not None
        return {
            "grpc": self.grpc_address,
            "security": describe_security(self.settings),
            "unauthenticated": self.receiver.unauthenticated,
            "malformed": self.receiver.malformed,
            "too_large": self.receiver.too_large,
            "skewed": self.receiver.skewed,
            "busy_refusals": self.writer.stats.refused,
        }

    def _prometheus_status(self) -> dict:
        assert self.metrics is not None
        return {"address": self.metrics.address}

    def _http_status(self) -> dict:
        assert self.http is not None
        return {"address": self.http_address, **self.http.status()}

    def not_ready(self) -> str | None:
        """Why exports cannot be taken now, or None: for ``/readyz`` and gRPC health."""
        if self._stopping:
            return "shutting down"
        if self.writer is None or not self.writer.accepting:
            return "the database writer is not running"
        if self.writer.failing is not None:
            return f"writes fail: {self.writer.failing}"
        if self._last_write_ok is None:
            return "starting"
        if not self._last_write_ok:
            return "the last write to the database failed"
        return None

    async def _report_health(self) -> None:
        if self._health is None:
            return
        status = (health_pb2.HealthCheckResponse.SERVING if self.not_ready() is None
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for service in ("", *SERVICES):
            await self._health.set(service, status)

    async def heartbeat(self, stopped: bool = False) -> None:
        """Write the ``receiver`` row now (see agenttop/store/status.py); its success is
        what readiness reports."""
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
        try:
            await asyncio.wrap_future(future)
            self._last_write_ok = True
        except Exception:
            self._last_write_ok = False
            raise
        finally:
            await self._report_health()

    async def _beat(self) -> None:
        assert self.writer is not None
        while not self.writer.gone:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.heartbeat()
            except Exception as e:
                if self.writer.failing is None:  # the writer has said why, once
                    log.exception("heartbeat failed: %s", e)
        # Nothing is acknowledged into a file nobody can read: stop, and say so.
        self.fatal = (f"{self.writer.failing}; nothing was acknowledged after that. Start "
                      "agenttop serve again to write a new file")
        self.failed.set()

    async def _watch(self) -> None:
        """Evaluate alerts every few seconds; a failed round is logged, never fatal."""
        assert self.monitor is not None
        while True:
            await asyncio.sleep(self.settings.alert_interval_s)
            try:
                await asyncio.to_thread(self.monitor.tick)
            except Exception:
                log.exception("alert evaluation failed")

    async def _maintain(self) -> None:
        """Prune and give space back now and every few seconds (agenttop/store/retention.py);
        a failed round is logged, never fatal."""
        assert self.retention is not None
        while True:
            try:
                await asyncio.to_thread(self.retention.run_once)
            except Exception:
                log.exception("pruning failed")
            await asyncio.sleep(self.retention.interval_s)

    async def stop(self) -> None:
        """Stop accepting, let in-flight exports commit, then flush and close the file."""
        self._stopping = True
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        for task in (self._monitor_task, self._heartbeat_task, self._maintain_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.retention is not None:
            await asyncio.to_thread(self.retention.close)  # its thread outlives the task
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)
        servers = []
        if self._server is not None:
            servers.append(self._server.stop(SHUTDOWN_GRACE_S))
        if self._http_runner is not None:
            servers.append(self._http_runner.cleanup())
        if self.metrics is not None:
            servers.append(self.metrics.stop())
        await asyncio.gather(*servers)
        if self.forwarder is not None:  # after the servers: every stored body is queued
            await self.forwarder.close()
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
        self._lock.release()


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


# What a client could use to forge or hide log lines: C0 and C1 controls (CR, LF, ESC, NUL),
# DEL, line and paragraph separators, and bidirectional overrides.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape (``\\x1b``, ``\\n``)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """Plain lines whose message can hold client-supplied text (service names, attribute
    values in alert messages): control characters are escaped, so that no client can
    write a line of its own or colour the terminal. A traceback stays as it is."""

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)
        safe.msg, safe.args = escape_controls(record.getMessage()), None
        return super().format(safe)


def _logging(formatter: logging.Formatter, ours: int) -> Callable[[], None]:
    """Send agenttop's messages (``ours`` and up) and others' warnings to stderr through
    ``formatter``; returns the undo."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root, agenttop = logging.getLogger(), logging.getLogger("agenttop")
    saved = root.level, agenttop.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    agenttop.setLevel(ours)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        agenttop.setLevel(saved[1])

    return undo


async def serve_forever(settings: ServeSettings, rules: list[Rule],
                        on_alert: AlertCommand | None = None, log_format: str = "text") -> None:
    """Run until SIGINT or SIGTERM (what ``agenttop serve`` does).

    ``log_format`` "json": the start and stop lines, alert transitions and warnings are
    JSON lines on stderr; "text": plain lines.
    """
    json_lines = log_format == "json"
    undo = (_logging(JsonFormatter(), logging.INFO) if json_lines
            else _logging(TextFormatter(), logging.WARNING))

    def say(message: str) -> None:
        if json_lines:
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
        if service.http_address is not None:
            say(f"OTLP/HTTP on {service.http_address} ({describe_security(settings)})")
        if service.forwarder is not None:
            say(f"forwarding everything received to {service.forwarder.target.url}")
        if service.metrics is not None:
            scheme = "https" if settings.tls_cert else "http"
            say(f"Prometheus metrics on {scheme}://{service.metrics.address}/metrics")
        if service.created_directory:
            say(f"created the directory {settings.db.expanduser().parent}")
        say(f"writing {settings.db} ({describe_retention(settings)})")
        if service.retention_note:
            say(service.retention_note)
        say(f"{len(rules)} alert rules from {settings.rules or 'the defaults'}")
        waits = [asyncio.create_task(event.wait()) for event in (stop, service.failed)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        say("stopping, flushing to disk")
        await service.stop()
        if service.fatal is not None:
            raise StoreError(service.fatal)
    finally:
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
