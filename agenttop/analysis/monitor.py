"""The alert evaluator as it runs inside ``agenttop serve``.

Every few seconds: read each layer's and metric's figures for the windows the rules use,
step the alert state machine, write new episodes (and the current values of firing ones)
through the single writer, and hand each transition to the ``--on-alert`` command.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import apsw

from agenttop.analysis.evaluator import AlertEvaluator, Transition
from agenttop.analysis.health import evaluation_health, layer_health, metric_health
from agenttop.analysis.hooks import AlertCommand
from agenttop.analysis.rules import Rule
from agenttop.store import open_reader
from agenttop.store.alerts import load_firing, refresh_episode, resolve_episode, start_episode
from agenttop.store.writer import Writer

log = logging.getLogger(__name__)


def record(conn: apsw.Connection, transitions: Iterable[Transition]) -> None:
    """Write episodes: a firing transition opens one, a resolved one closes it."""
    for t in transitions:
        if t.state == "firing":
            start_episode(conn, t.key, layer=t.rule.layer, metric=t.rule.metric,
                          measure=t.rule.measure, op=t.rule.op, value=t.value,
                          threshold=t.threshold, window_s=t.rule.window_s,
                          started_ns=t.started_ns, message=t.message)
        elif not resolve_episode(conn, t.key, at_ns=t.at_ns, value=t.value, message=t.message):
            log.debug("no firing row to resolve for alert %s", t.key)


def update_values(conn: apsw.Connection, firing: Mapping[object, Transition]) -> None:
    """Refresh the value of firing episodes (``AlertEvaluator.firing``)."""
    for t in firing.values():
        refresh_episode(conn, t.key, started_ns=t.started_ns, value=t.value, at_ns=t.at_ns)


class AlertMonitor:
    """Evaluates ``rules`` against the database that ``writer`` writes."""

    def __init__(
        self,
        db: Path,
        writer: Writer,
        rules: list[Rule],
        command: AlertCommand | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.db = db
        self.writer = writer
        self.evaluator = AlertEvaluator(rules)
        self.command = command
        self.clock = clock
        self._reader = None
        self._metric_names = sorted({r.metric for r in rules if r.metric})
        # The pending alerts after the last evaluation, as the receiver row reports them
        # (replaced whole, so another thread reads one consistent list).
        self.pending: list[dict] = []

    def restore(self) -> None:
        """Resume the episodes that were firing when the receiver last stopped."""
        self.evaluator.restore(self.writer.call(load_firing).result(30))

    def tick(self) -> list[Transition]:
        """One evaluation; blocking (SQLite), so callers run it in a thread."""
        if not self.evaluator.rules:
            return []
        if self._reader is None:
            self._reader = open_reader(self.db)
        now = self.clock()
        windows = sorted(self.evaluator.windows)
        layers = layer_health(self._reader, now, windows)
        metrics = (metric_health(self._reader, now, windows, self._metric_names)
                   if self._metric_names else {})
        evals = (evaluation_health(self._reader, now, windows)
                 if any(r.evaluation for r in self.evaluator.rules) else None)
        transitions = self.evaluator.evaluate(layers, metrics, now, evals)
        firing = self.evaluator.firing
        self.pending = [{"key": str(p.key), "since_ns": p.since_ns, "for_s": p.rule.for_s,
                         "message": p.message} for p in self.evaluator.pending]

        def write(conn) -> None:
            record(conn, transitions)
            update_values(conn, firing)

        self.writer.call(write).result(30)
        for transition in transitions:
            log.warning("alert %s: %s", transition.state, transition.message)
            if self.command is not None:
                self.command.notify(transition)
        return transitions

    def status(self) -> dict:
        """For the receiver row: alerts whose breach has not yet lasted their ``for``."""
        return {"pending": self.pending}

    def close(self) -> None:
        if self.command is not None:
            self.command.close(10)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
