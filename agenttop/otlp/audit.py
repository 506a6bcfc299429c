"""The audit trail: refused OTLP calls, recorded in the ``audit`` table.

A refusal is recorded with its time, the client's address, the signal and a reason taken
from a short fixed list, never the token or the payload. Recording must not slow the
handler or let a flood of bad calls flood the disk: refusals are counted in memory per
(peer, signal, reason) and written at most once a second as one row per key with a count,
through at most one ``Writer.call`` in flight at a time. The number of distinct keys per
second is capped; refusals past the cap are counted under ``OTHER_PEERS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future

from agenttop.store.audit import record_refused
from agenttop.store.writer import Writer

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
MAX_KEYS = 256
OTHER_PEERS = "(other peers)"

MISSING_TOKEN = "missing token"
WRONG_TOKEN = "wrong token"
MALFORMED = "malformed request"
TOO_LARGE = "too large"
SLOW = "body too slow"


def peer_host(peer: str) -> str:
    """``ipv4:10.0.0.7:51234`` -> ``ipv4:10.0.0.7``: the ephemeral client port is dropped so
    that repeated calls from one host are counted together."""
    if peer.startswith(("ipv4:", "ipv6:")):
        host, sep, port = peer.rpartition(":")
        if sep and port.isdigit():
            return host
    return peer[:200]


class AuditLog:
    """Coalesces refusals in memory and writes them in the background (event-loop thread)."""

    def __init__(self, writer: Writer, clock: Callable[[], int] = time.time_ns) -> None:
        self.writer = writer
        self.clock = clock
        self._pending: dict[tuple[str, str, str], list[int]] = {}  # key -> [first_ns, count]
        self._timer: asyncio.TimerHandle | None = None
        self._inflight: Future | None = None
        self._closed = False

    def record(self, peer: str, signal: str, reason: str) -> None:
        if self._closed:
            return
        key = (peer_host(peer), signal, reason)
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= MAX_KEYS:
                key = (OTHER_PEERS, signal, reason)
                entry = self._pending.get(key)
            if entry is None:
                entry = self._pending[key] = [self.clock(), 0]
        entry[1] += 1
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._inflight is not None and not self._inflight.done():
            # The previous write is still queued: keep counting, try again later.
            self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL_S, self._tick)
            return
        self.flush()

    def flush(self) -> None:
        """Hand what is pending to the writer (does not wait for the commit)."""
        if not self._pending:
            return
        rows = [(first, peer, signal, reason, count)
                for (peer, signal, reason), (first, count) in self._pending.items()]
        self._pending = {}

        self._inflight = self.writer.call(lambda conn: record_refused(conn, rows))
        self._inflight.add_done_callback(_log_failure)

    def close(self) -> None:
        """Write what is pending (before the writer closes) and stop recording."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        self._closed = True


def _log_failure(future: Future) -> None:
    error = future.exception()
    if error is not None:
        log.warning("could not record refused calls in the audit table: %s", error)
