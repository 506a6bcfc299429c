"""The ``--on-alert`` command: run for each alert transition, bounded, off the caller's
thread."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from agenttop.analysis.evaluator import Transition

log = logging.getLogger(__name__)


_STDERR_TAIL = 500


@dataclass
class _Job:
    payload: bytes
    key: str
    state: str
    env: dict[str, str] = field(default_factory=dict)


class AlertCommand:
    """Runs the ``--on-alert`` command for each transition, off the caller's thread.

    The command (split with ``shlex``, run without a shell) gets the transition as one
    JSON object on stdin (see ``Transition.as_dict``) and in ``AGENTTOP_ALERT_*``
    environment variables. At most ``max_running`` commands run at once; up to
    ``max_queued`` more wait; beyond that a notification is dropped and logged, so a flood
    of alerts cannot fork-bomb the machine. A command is killed (with its process group)
    after ``timeout_s``. Failures are logged with the tail of the command's stderr, never
    raised.
    """

    def __init__(self, command: str, timeout_s: float = 10, *, max_running: int = 4,
                 max_queued: int = 100) -> None:
        self.argv = shlex.split(command)  # bad quoting raises ValueError: a usage error
        if not self.argv:
            raise ValueError("the alert command is empty")
        self.timeout_s = timeout_s
        self._max_running = max_running
        self._max_queued = max_queued
        self._queue: deque[_Job] = deque()
        self._workers = 0
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0
        self.failed = 0

    def notify(self, transition: Transition) -> None:
        """Queue the command for this transition and return at once."""
        job = _Job(payload=json.dumps(transition.as_dict()).encode(), key=str(transition.key),
                   state=transition.state, env={
                       "AGENTTOP_ALERT_KEY": str(transition.key),
                       "AGENTTOP_ALERT_STATE": transition.state,
                       "AGENTTOP_ALERT_MESSAGE": transition.message,
                   })
        with self._cond:
            if self._closed or len(self._queue) >= self._max_queued:
                self.dropped += 1
                log.warning("alert command not run for %s %s: %s", job.key, job.state,
                            "closed" if self._closed else "too many alert commands pending")
                return
            self._queue.append(job)
            if self._workers < self._max_running:
                self._workers += 1
                threading.Thread(target=self._work, name="agenttop-on-alert",
                                 daemon=True).start()

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting notifications and wait (up to ``timeout``) for queued ones."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._closed = True
            while self._workers:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    log.warning("%d alert commands still running at close", self._workers)
                    return
                self._cond.wait(left)

    def _work(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._workers -= 1
                    self._cond.notify_all()
                    return
                job = self._queue.popleft()
            try:
                self._run(job)
            except Exception:  # a worker must survive anything to drain the queue
                self.failed += 1
                log.exception("alert command failed for %s", job.key)

    def _run(self, job: _Job) -> None:
        name = self.argv[0]
        try:
            # A session of its own, so a timeout kills the whole process group (a shell
            # script's children too), not only the direct child.
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True,
                                    env={**os.environ, **job.env})
        except FileNotFoundError:
            self.failed += 1
            log.error("alert command %s not found (alert %s %s)", name, job.key, job.state)
            return
        except OSError as e:
            self.failed += 1
            log.error("alert command %s could not start: %s (alert %s %s)", name,
                      e.strerror or e, job.key, job.state)
            return
        try:
            _, stderr = proc.communicate(job.payload, timeout=self.timeout_s)
        except subprocess.TimeoutExpired as e:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                _, rest = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # a grandchild left the group holding stderr
                proc.kill()
                rest = b""
            self.failed += 1
            log.error("alert command %s timed out after %gs and was killed (alert %s %s)%s",
                      name, self.timeout_s, job.key, job.state,
                      _tail((e.stderr or b"") + (rest or b"")))
            return
        if proc.returncode != 0:
            self.failed += 1
            log.error("alert command %s exited with status %s (alert %s %s)%s", name,
                      proc.returncode, job.key, job.state, _tail(stderr))


def _tail(stderr: bytes | None) -> str:
    text = (stderr or b"").decode(errors="replace").strip()
    if not text:
        return ""
    return ": " + (text if len(text) <= _STDERR_TAIL else "..." + text[-_STDERR_TAIL:])
